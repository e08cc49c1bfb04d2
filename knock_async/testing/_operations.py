"""Bulk operations processed over time, computed lazily. Pure: no aiohttp, no tasks.

An operation is a timeline fixed when it is submitted: it waits ``queue_delay`` seconds
(``queued``), then selects the matching messages (``processing``) and works through them in
batches of ``batch_size`` at ``rows_per_second``; the batch ending at row ``r`` is applied at
``start + r / rows_per_second``. Nothing runs in the background: every read calls
``advance(now)``, which applies all events due by ``now`` in time order (across operations), each
stamped with its own scheduled time. The result does not depend on how often anyone looks, so
with a ``ManualClock`` every count and timestamp is exact, and with the system clock operations
finish by themselves.

Each batch re-checks every row against the filters (and retention) when it is applied, as a
database job updating batch by batch would: a row that another operation changed or deleted
meanwhile is skipped. ``success_count`` counts rows updated (or already in the target state),
``error_count`` rows that failed, and ``processed_rows`` their sum, as Knock reports it: a
skipped row is walked but not processed.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from .._models import (
    ArchivedFilter,
    BulkAction,
    BulkOperation,
    BulkOperationStatus,
    BulkUpdateMessagesForChannelRequest,
    ErrorItem,
)
from .._validate import attrs_check, non_negative, positive, positive_int
from ._actions import apply_action
from ._clock import Clock
from ._filters import compile_filters, within_retention
from ._store import ChannelType, Message, MessageStore

__all__ = ["OperationEngine", "OperationPlan", "ProcessingSettings"]

TYPENAME = "BulkOperation"
_EPSILON = 1e-9


def _rate(name: str, value: object) -> float:
    # math.inf is a documented setting here: every batch applied at once.
    return math.inf if value == math.inf and isinstance(value, float) else positive(name, value)


@attrs.frozen(kw_only=True)
class ProcessingSettings:
    """How the emulator processes bulk operations.

    ``rows_per_second`` may be ``math.inf`` (every batch applied as soon as processing starts).
    ``estimate_jitter`` perturbs ``estimated_total_rows`` by up to that fraction (0.1: +-10%).
    ``retention`` is the account's retention window for non-in-app channels (``None``: no
    limit). ``default_archived`` is the ``archived`` filter used when a body leaves it out.
    """

    rows_per_second: float = attrs.field(default=10_000.0, validator=attrs_check(_rate))
    batch_size: int = attrs.field(default=500, validator=attrs_check(positive_int))
    queue_delay: float = attrs.field(default=0.05, validator=attrs_check(non_negative))
    retention: timedelta | None = timedelta(days=30)
    estimate_jitter: float = attrs.field(default=0.0, validator=attrs_check(non_negative))
    default_archived: ArchivedFilter = ArchivedFilter.INCLUDE


@attrs.frozen(kw_only=True)
class OperationPlan:
    """Faults planned for one operation.

    ``fail_after_rows``: after that many rows the next row (if any) is reported in
    ``error_items`` and the operation ends ``failed``. ``stuck_after_rows``: after that many rows
    (or all rows, if fewer) processing stops for good and the status stays ``processing``.
    Either takes effect even when the operation has fewer rows; with both, the smaller wins.
    """

    fail_after_rows: int | None = None
    stuck_after_rows: int | None = None


@attrs.define(kw_only=True)
class _Operation:
    id: str
    channel_id: str
    action: BulkAction
    filters: BulkUpdateMessagesForChannelRequest
    matches: Callable[[Message], bool]
    plan: OperationPlan
    progress_path: str | None
    inserted_at: datetime
    estimated_total_rows: int
    status: BulkOperationStatus = BulkOperationStatus.QUEUED
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    processed_rows: int = 0
    walked_rows: int = 0
    success_count: int = 0
    error_count: int = 0
    error_items: list[ErrorItem] = attrs.Factory(list)
    rows: list[str] = attrs.Factory(list)
    start_time: float = 0.0

    def snapshot(self) -> BulkOperation:
        return BulkOperation(
            id=self.id,
            typename=TYPENAME,
            name=f"messages.{self.action.value}",
            status=self.status,
            estimated_total_rows=self.estimated_total_rows,
            processed_rows=self.processed_rows,
            success_count=self.success_count,
            inserted_at=self.inserted_at,
            updated_at=self.updated_at,
            error_count=self.error_count,
            error_items=tuple(self.error_items),
            progress_path=self.progress_path,
            started_at=self.started_at,
            completed_at=self.completed_at,
            failed_at=self.failed_at,
        )

    @property
    def stop_row(self) -> int:
        """Where processing ends: the last row, or where a planned fault stops it."""
        stop = len(self.rows)
        for limit in (self.plan.fail_after_rows, self.plan.stuck_after_rows):
            if limit is not None:
                stop = min(stop, limit)
        return stop


class OperationEngine:
    """Submits, advances and reports bulk operations over a ``MessageStore``."""

    def __init__(
        self,
        store: MessageStore,
        clock: Clock,
        settings: ProcessingSettings,
        *,
        message_fails: Callable[[str], bool] = lambda _: False,
        seed: int = 0,
    ) -> None:
        self._store = store
        self._clock = clock
        self.settings = settings
        self._message_fails = message_fails
        self._rng = random.Random(seed)
        self._operations: dict[str, _Operation] = {}
        self._events: list[tuple[float, int, str]] = []
        self._seq = 0
        self._now = clock.monotonic()

    # Submitting and reading ---------------------------------------------------------------

    def submit(
        self,
        channel_id: str,
        action: BulkAction,
        filters: BulkUpdateMessagesForChannelRequest,
        *,
        progress_base: str | None = None,
        plan: OperationPlan | None = None,
    ) -> BulkOperation:
        """Queue an operation now. ``progress_base`` is prefixed to ``progress_path``
        (an origin makes it absolute; ``None`` leaves the operation without one)."""
        self.advance()
        self._store.channel(channel_id)
        now = self._now
        at = self._clock.to_datetime(now)
        selected = compile_filters(filters, default_archived=self.settings.default_archived)
        estimate = len(self._select(channel_id, filters, selected, at))
        if self.settings.estimate_jitter and estimate:
            jitter = self._rng.uniform(
                -self.settings.estimate_jitter, self.settings.estimate_jitter
            )
            estimate = max(0, round(estimate * (1 + jitter)))
        op_id = str(uuid.uuid4())
        path = f"/v1/bulk_operations/{op_id}"
        operation = _Operation(
            id=op_id,
            channel_id=channel_id,
            action=action,
            filters=filters,
            matches=selected,
            plan=plan or OperationPlan(),
            progress_path=None if progress_base is None else progress_base.rstrip("/") + path,
            inserted_at=at,
            updated_at=at,
            estimated_total_rows=estimate,
        )
        self._operations[op_id] = operation
        self._schedule(now + self.settings.queue_delay, operation)
        return operation.snapshot()

    def get(self, operation_id: str) -> BulkOperation | None:
        """The operation as it stands now, or ``None`` for an unknown id."""
        self.advance()
        operation = self._operations.get(operation_id)
        return None if operation is None else operation.snapshot()

    def operations(self) -> list[BulkOperation]:
        """Every operation, oldest first, as it stands now."""
        self.advance()
        return [operation.snapshot() for operation in self._operations.values()]

    def next_event_time(self) -> float | None:
        """When the next change is due (monotonic), ``None`` if nothing will ever change."""
        return self._events[0][0] if self._events else None

    # Time --------------------------------------------------------------------------------

    def advance(self, now: float | None = None) -> None:
        """Apply every event due by ``now`` (default: the clock's time), in time order."""
        now = self._clock.monotonic() if now is None else now
        self._now = max(self._now, now)
        # Float sums (0.1 + 0.05) must not leave an event due "now" a hair in the future.
        while self._events and self._events[0][0] <= self._now + _EPSILON:
            when, _, op_id = heapq.heappop(self._events)
            self._step(self._operations[op_id], when)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _schedule(self, when: float, operation: _Operation) -> None:
        # Microseconds, as timestamps are: 0.05 + 10/100 is due at 0.15, not 0.15000000000000002.
        heapq.heappush(self._events, (round(when, 6), self._next_seq(), operation.id))

    def _row_time(self, operation: _Operation, row: int) -> float:
        rate = self.settings.rows_per_second
        return operation.start_time if math.isinf(rate) else operation.start_time + row / rate

    def _step(self, operation: _Operation, when: float) -> None:
        at = self._clock.to_datetime(when)
        operation.updated_at = at
        if operation.status is BulkOperationStatus.QUEUED:
            self._start(operation, when, at)
        else:
            self._process_batch(operation, at)
        self._after_rows(operation, at)

    def _select(
        self,
        channel_id: str,
        filters: BulkUpdateMessagesForChannelRequest,
        matches: Callable[[Message], bool],
        at: datetime,
    ) -> list[str]:
        """Ids of the channel's messages an operation would update at ``at``, in store order."""
        messages = self._store.iter_messages(channel_id, recipient_ids=filters.recipient_ids)
        retention = self.settings.retention
        if retention is None or self._store.channel(channel_id).type is ChannelType.IN_APP_FEED:
            return [message.id for message in messages if matches(message)]
        cutoff = at - retention
        return [m.id for m in messages if m.inserted_at >= cutoff and matches(m)]

    def _start(self, operation: _Operation, when: float, at: datetime) -> None:
        operation.rows = self._select(
            operation.channel_id, operation.filters, operation.matches, at
        )
        operation.status = BulkOperationStatus.PROCESSING
        operation.started_at = at
        operation.start_time = when

    def _process_batch(self, operation: _Operation, at: datetime) -> None:
        begin = operation.walked_rows
        end = min(begin + self.settings.batch_size, operation.stop_row)
        for message_id in operation.rows[begin:end]:
            self._process_row(operation, message_id, at)

    def _process_row(self, operation: _Operation, message_id: str, at: datetime) -> None:
        operation.walked_rows += 1
        message = self._store.get(message_id)
        if (
            message is None
            or not within_retention(message, at=at, retention=self.settings.retention)
            or not operation.matches(message)
        ):
            return  # gone or changed since the selection: nothing to update
        if self._message_fails(message_id):
            self._record_error(operation, message_id)
            return
        updated = apply_action(message, operation.action, at)
        if updated is None:
            self._store.delete(message_id)
        elif updated is not message:
            self._store.replace(updated)
        operation.success_count += 1
        operation.processed_rows += 1

    def _record_error(self, operation: _Operation, message_id: str) -> None:
        operation.error_count += 1
        operation.processed_rows += 1
        operation.error_items.append(ErrorItem(id=message_id, collection=None))

    def _after_rows(self, operation: _Operation, at: datetime) -> None:
        """Schedule the next batch, or end the operation where its rows or its plan end."""
        done = operation.walked_rows
        stop = operation.stop_row
        if done < stop:
            next_row = min(done + self.settings.batch_size, stop)
            self._schedule(self._row_time(operation, next_row), operation)
            return
        fail, stuck = operation.plan.fail_after_rows, operation.plan.stuck_after_rows
        if fail is not None and (stuck is None or fail <= stuck):
            if done < len(operation.rows):
                # The row the job failed on.
                operation.walked_rows += 1
                self._record_error(operation, operation.rows[done])
            operation.status = BulkOperationStatus.FAILED
            operation.failed_at = at
        elif stuck is not None:
            pass  # stuck: stays ``processing`` with no further event
        else:
            operation.status = BulkOperationStatus.COMPLETED
            operation.completed_at = at
