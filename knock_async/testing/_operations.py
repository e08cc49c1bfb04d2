"""Bulk operations processed over time. Pure: no aiohttp, no tasks.

An operation is a timeline fixed when it is submitted: it waits ``queue_delay`` seconds
(``queued``), then walks the channel's messages as they stood when processing started
(``processing``), in batches of ``batch_size`` at ``rows_per_second``; the batch ending at row
``r`` is applied at ``start + r / rows_per_second``. ``advance(now)`` applies the events due by
``now`` in time order (across operations), each stamped with its own scheduled time, so the
result does not depend on when anyone looks: with a ``ManualClock`` every count and timestamp
is exact. ``advance(budget=...)`` does at most that many rows and says whether more is due, so
that a caller (the emulator's background task, on a clock that moves by itself) can process in
bounded slices between requests.

Nothing scans the channel when an operation is created: the estimate starts at the number of
candidate rows (the channel's messages, or those of the ``recipient_ids`` from an index). When
it starts, the operation counts its matching rows (in slices under a budget, all at the start's
time) and that count, perturbed by ``estimate_jitter``, is its estimate until it ends: fixed, so
that a progress bar does not jump and an ETA does not rise. A ``completed`` operation reports
the exact count (its rows processed); a failed or stuck one keeps its estimate. Each batch
checks every row against the filters (and retention) when it is applied, as a database job
updating batch by batch would: a row that another operation changed or deleted meanwhile is
skipped. ``success_count`` counts rows updated (or already in the
target state), ``error_count`` rows that failed, and ``processed_rows`` their sum, as Knock
reports it: a skipped row is walked but not processed.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

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
from ._store import Message, MessageStore

__all__ = ["OperationEngine", "OperationPlan", "ProcessingSettings"]

TYPENAME = "BulkOperation"
_ENDED = (BulkOperationStatus.COMPLETED, BulkOperationStatus.FAILED)
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


# A job's step: apply one row (a tuple whose first value is the ErrorItem naming it, should
# it fail) at a time; ``None`` when it succeeded, else its error item.
ApplyRow = Callable[[Any, datetime], ErrorItem | None]


@attrs.define(kw_only=True)
class _Operation:
    id: str
    name: str
    channel_id: str = ""
    action: BulkAction | None = None
    filters: BulkUpdateMessagesForChannelRequest = attrs.Factory(
        BulkUpdateMessagesForChannelRequest
    )
    matches: Callable[[Message], bool] = bool
    # A job (the other bulk endpoints): rows fixed when submitted, each applied by `apply`.
    apply: ApplyRow | None = None
    plan: OperationPlan
    progress_path: str | None
    inserted_at: datetime
    estimated_total_rows: int
    estimate_factor: float = 1.0
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
    # The candidate rows: the channel's append-only id list (read up to row_count), or the
    # ids of the requested recipients' messages.
    rows: Sequence[Any] = ()
    row_count: int = 0
    batch_end: float | None = None  # processed_rows at which the current batch ends
    start_time: float = 0.0
    # Counting the matching rows when processing starts: rows counted, and matches among them.
    counted_rows: int = 0
    matching_rows: int = 0
    body: bytes | None = None  # the JSON answer, built once per change

    def snapshot(self) -> BulkOperation:
        return BulkOperation(
            id=self.id,
            typename=TYPENAME,
            name=self.name,
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
    def plan_stop(self) -> float:
        """After how many processed rows a planned fault stops processing (or never)."""
        stop = math.inf
        for limit in (self.plan.fail_after_rows, self.plan.stuck_after_rows):
            if limit is not None:
                stop = min(stop, limit)
        return stop

    @property
    def finished_walking(self) -> bool:
        return self.walked_rows >= self.row_count or self.processed_rows >= self.plan_stop

    @property
    def counting(self) -> bool:
        """Whether the rows are still being counted (the operation has started)."""
        return self.counted_rows < self.row_count

    def estimate(self, rows: int) -> None:
        """The estimate: ``rows``, perturbed by the operation's jitter factor."""
        self.estimated_total_rows = max(0, round(max(0, rows) * self.estimate_factor))


class OperationEngine:
    """Submits, advances and reports bulk operations over a ``MessageStore``.

    ``render`` turns an operation into its JSON answer (cached until the operation changes).
    """

    def __init__(
        self,
        store: MessageStore,
        clock: Clock,
        settings: ProcessingSettings,
        *,
        message_fails: Callable[[str], bool] = lambda _: False,
        seed: int = 0,
        render: Callable[[BulkOperation], bytes] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.settings = settings
        self._message_fails = message_fails
        self._rng = random.Random(seed)
        self._render = render
        self._operations: dict[str, _Operation] = {}
        self._events: list[tuple[float, int, str]] = []
        self._seq = 0
        self._now = clock.monotonic()
        self.on_schedule: Callable[[], None] | None = None

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
        (an origin makes it absolute; ``None`` leaves the operation without one).

        Events already due are not applied here (the caller decides when: ``advance``); the
        operation is stamped with the clock's time."""
        self._store.channel(channel_id)
        now = self._now = max(self._now, self._clock.monotonic())
        at = self._clock.to_datetime(now)
        selected = compile_filters(filters, default_archived=self.settings.default_archived)
        factor = 1.0
        if self.settings.estimate_jitter:
            jitter = self.settings.estimate_jitter
            factor = 1 + self._rng.uniform(-jitter, jitter)
        op_id = str(uuid.uuid4())
        path = f"/v1/bulk_operations/{op_id}"
        operation = _Operation(
            id=op_id,
            name=f"messages.{action.value}",
            channel_id=channel_id,
            action=action,
            filters=filters,
            matches=selected,
            plan=plan or OperationPlan(),
            progress_path=None if progress_base is None else progress_base.rstrip("/") + path,
            inserted_at=at,
            updated_at=at,
            estimated_total_rows=0,
            estimate_factor=factor,
        )
        operation.estimate(self._store.count_candidates(channel_id, filters.recipient_ids))
        return self._queue(operation, now)

    def submit_job(
        self,
        name: str,
        rows: Sequence[Any],
        apply: ApplyRow,
        *,
        progress_base: str | None = None,
        plan: OperationPlan | None = None,
    ) -> BulkOperation:
        """Queue an operation named ``name`` over ``rows``, each applied by ``apply`` when its
        batch comes (over time, as a channel update's messages are)."""
        now = self._now = max(self._now, self._clock.monotonic())
        at = self._clock.to_datetime(now)
        op_id = str(uuid.uuid4())
        path = f"/v1/bulk_operations/{op_id}"
        operation = _Operation(
            id=op_id,
            name=name,
            apply=apply,
            rows=rows,
            row_count=len(rows),
            plan=plan or OperationPlan(),
            progress_path=None if progress_base is None else progress_base.rstrip("/") + path,
            inserted_at=at,
            updated_at=at,
            estimated_total_rows=len(rows),
        )
        return self._queue(operation, now)

    def _queue(self, operation: _Operation, now: float) -> BulkOperation:
        self._operations[operation.id] = operation
        self._schedule(now + self.settings.queue_delay, operation)
        if self.on_schedule is not None:
            self.on_schedule()
        return operation.snapshot()

    def get(self, operation_id: str) -> BulkOperation | None:
        """The operation as it stands (after the last ``advance``), ``None`` for an unknown id."""
        operation = self._operations.get(operation_id)
        return None if operation is None else operation.snapshot()

    def body(self, operation_id: str) -> bytes | None:
        """The operation's JSON answer as it stands, ``None`` for an unknown id."""
        operation = self._operations.get(operation_id)
        if operation is None:
            return None
        if operation.body is None:
            assert self._render is not None, "OperationEngine(render=...) is needed for bodies"
            operation.body = self._render(operation.snapshot())
        return operation.body

    def finished(self, operation_id: str) -> bool:
        """Whether the operation has ended (``completed`` or ``failed``); an unknown id has."""
        operation = self._operations.get(operation_id)
        return operation is None or operation.status in _ENDED

    def operations(self) -> list[BulkOperation]:
        """Every operation, oldest first, as it stands (after the last ``advance``)."""
        return [operation.snapshot() for operation in self._operations.values()]

    def next_event_time(self) -> float | None:
        """When the next change is due (monotonic), ``None`` if nothing will ever change."""
        return self._events[0][0] if self._events else None

    # Time --------------------------------------------------------------------------------

    def advance(self, now: float | None = None, *, budget: int | None = None) -> bool:
        """Apply the events due by ``now`` (default: the clock's time), in time order; with a
        ``budget``, stop after about that many rows. Whether events due by ``now`` remain."""
        now = self._clock.monotonic() if now is None else now
        self._now = max(self._now, now)
        left = math.inf if budget is None else budget
        events = self._events
        # Float sums (0.1 + 0.05) must not leave an event due "now" a hair in the future.
        while events and events[0][0] <= self._now + _EPSILON:
            if left <= 0:
                return True
            when, _, op_id = heapq.heappop(events)
            left -= self._step(self._operations[op_id], when, left)
        return False

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _schedule(self, when: float, operation: _Operation) -> None:
        # Microseconds, as timestamps are: 0.05 + 10/100 is due at 0.15, not 0.15000000000000002.
        heapq.heappush(self._events, (round(when, 6), self._next_seq(), operation.id))

    def _row_time(self, operation: _Operation, row: float) -> float:
        rate = self.settings.rows_per_second
        return operation.start_time if math.isinf(rate) else operation.start_time + row / rate

    def _step(self, operation: _Operation, when: float, budget: float) -> int:
        """Apply ``operation``'s event due at ``when``, walking at most ``budget`` rows (the
        rest stays due at ``when``); the rows walked."""
        at = self._clock.to_datetime(when)
        operation.updated_at = at
        operation.body = None
        if operation.status is BulkOperationStatus.QUEUED:
            self._start(operation, when, at)
            return self._count(operation, when, at, budget) + 1
        if operation.counting:
            return self._count(operation, when, at, budget)
        if operation.batch_end is None:
            operation.batch_end = min(
                operation.processed_rows + self.settings.batch_size, operation.plan_stop
            )
        walked = self._process_batch(operation, operation.batch_end, at, budget)
        if operation.processed_rows < operation.batch_end and not operation.finished_walking:
            heapq.heappush(self._events, (when, self._next_seq(), operation.id))
            return walked
        operation.batch_end = None
        self._after_rows(operation, at)
        return walked

    def _start(self, operation: _Operation, when: float, at: datetime) -> None:
        if operation.apply is not None:
            # Every item is a row to apply: nothing to count, the estimate is the item count.
            operation.counted_rows = operation.matching_rows = operation.row_count
            operation.status = BulkOperationStatus.PROCESSING
            operation.started_at = at
            operation.start_time = when
            return
        operation.rows = self._store.row_ids(operation.channel_id, operation.filters.recipient_ids)
        operation.row_count = len(operation.rows)
        operation.status = BulkOperationStatus.PROCESSING
        operation.started_at = at
        operation.start_time = when

    def _count(self, operation: _Operation, when: float, at: datetime, budget: float) -> int:
        """Count matching rows, at most ``budget`` of them (the rest stays due at ``when``);
        once all are counted, fix the estimate and schedule the first batch. The rows looked
        at."""
        rows, count = operation.rows, operation.row_count
        looked = 0
        while operation.counted_rows < count and looked < budget:
            if self._matching(operation, rows[operation.counted_rows], at):
                operation.matching_rows += 1
            operation.counted_rows += 1
            looked += 1
        if operation.counting:
            heapq.heappush(self._events, (when, self._next_seq(), operation.id))
            return looked
        operation.estimate(operation.matching_rows)
        self._after_rows(operation, at)
        return looked

    def _matching(self, operation: _Operation, message_id: str, at: datetime) -> bool:
        message = self._store.get(message_id)
        return (
            message is not None
            and within_retention(message, at=at, retention=self.settings.retention)
            and operation.matches(message)
        )

    def _process_batch(
        self, operation: _Operation, batch_end: float, at: datetime, budget: float
    ) -> int:
        """Walk rows until ``batch_end`` rows are processed, the rows run out or ``budget``
        rows were walked (rows that do not match are skipped: they take no time)."""
        rows, count = operation.rows, operation.row_count
        walked = 0
        while operation.processed_rows < batch_end and operation.walked_rows < count:
            if walked >= budget:
                break
            self._process_row(operation, rows[operation.walked_rows], at)
            walked += 1
        return walked

    def _process_row(self, operation: _Operation, message_id: Any, at: datetime) -> None:
        operation.walked_rows += 1
        if operation.apply is not None:
            error = operation.apply(message_id, at)
            if error is None:
                operation.success_count += 1
                operation.processed_rows += 1
            else:
                operation.error_count += 1
                operation.processed_rows += 1
                operation.error_items.append(error)
            return
        if not self._matching(operation, message_id, at):
            return  # gone or changed since the operation began, or never a match
        message = self._store.get(message_id)
        assert message is not None
        if self._message_fails(message_id):
            self._record_error(operation, message_id)
            return
        assert operation.action is not None  # a channel update's
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
        if not operation.finished_walking:
            # The batch ends at the row it reaches: at most batch_size more, fewer if fewer
            # candidate rows are left (exact when every candidate matches).
            size = min(
                self.settings.batch_size,
                operation.row_count - operation.walked_rows,
                operation.plan_stop - operation.processed_rows,
            )
            self._schedule(self._row_time(operation, operation.processed_rows + size), operation)
            return
        fail, stuck = operation.plan.fail_after_rows, operation.plan.stuck_after_rows
        if fail is not None and (stuck is None or fail <= stuck):
            if operation.walked_rows < operation.row_count:
                # The row the job failed on.
                failed_row = operation.rows[operation.walked_rows]
                operation.walked_rows += 1
                if operation.apply is not None:  # a job's row names its item first
                    operation.error_count += 1
                    operation.processed_rows += 1
                    operation.error_items.append(failed_row[0])
                else:
                    self._record_error(operation, failed_row)
            operation.status = BulkOperationStatus.FAILED
            operation.failed_at = at
        elif stuck is not None:
            pass  # stuck: stays ``processing`` with no further event
        else:
            operation.status = BulkOperationStatus.COMPLETED
            operation.completed_at = at
            operation.estimate(operation.processed_rows)
