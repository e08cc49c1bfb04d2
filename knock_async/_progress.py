"""Progress snapshots and the arithmetic behind them (fraction, rate, ETA). Pure, no I/O.

A server's counts are data, whatever they say (negative, processed above the estimate): the
fields derived from them stay in range all the same. A fraction is in ``[0, 1]`` or ``None``,
a rate and an ETA are non-negative or ``None``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from ._handle import BulkOperationHandle
from ._models import BulkOperation, BulkOperationStatus

__all__ = ["Progress", "RowTally", "heartbeat", "observe", "pace", "seconds"]


@attrs.frozen(kw_only=True)
class Progress:
    """One observation of a bulk operation.

    ``fraction`` is ``processed_rows / estimated_total_rows`` clamped to ``[0, 1]`` (``1.0``
    once ``completed``; ``None`` while the estimate is 0). ``rows_per_second`` and ``eta`` are
    ``None`` until two observations some time apart allow an estimate; ``eta`` is zero once the
    operation has finished.
    """

    operation: BulkOperation
    observed_at: datetime
    fraction: float | None
    rows_per_second: float | None
    eta: timedelta | None
    # Where the rate is measured from: the first observation of this operation.
    _baseline_at: datetime = attrs.field(repr=False, eq=False, alias="baseline_at")
    _baseline_rows: int = attrs.field(repr=False, eq=False, alias="baseline_rows")

    @property
    def operation_id(self) -> str:
        """The bulk operation's id (``operation.id``)."""
        return self.operation.id

    @property
    def status(self) -> BulkOperationStatus:
        """The operation's status when this snapshot was taken."""
        return self.operation.status

    @property
    def is_terminal(self) -> bool:
        """Whether the operation had ended (``completed`` or ``failed``)."""
        return self.operation.is_terminal

    @property
    def handle(self) -> BulkOperationHandle:
        """What ``bulk_operations.poll`` needs to follow this operation, from anywhere."""
        return self.operation.handle

    @property
    def heartbeat(self) -> bool:
        """``True`` for a snapshot handed out again because ``max_silence`` passed with
        nothing new (no request was made for it); ``False`` for a new observation."""
        return False


@attrs.frozen
class _Heartbeat(Progress):
    # A subclass, not a field: the mark costs the snapshots every follow keeps nothing.

    @property
    def heartbeat(self) -> bool:
        return True


def heartbeat(progress: Progress) -> Progress:
    """``progress`` again, marked as a heartbeat (``Progress.heartbeat``)."""
    return _Heartbeat(
        operation=progress.operation,
        observed_at=progress.observed_at,
        fraction=progress.fraction,
        rows_per_second=progress.rows_per_second,
        eta=progress.eta,
        baseline_at=progress._baseline_at,
        baseline_rows=progress._baseline_rows,
    )


_MAX_SECONDS = timedelta.max.total_seconds()


def seconds(value: float) -> timedelta | None:
    """A duration, or ``None`` when a server's absurd numbers put it past what one can hold."""
    return timedelta(seconds=value) if value < _MAX_SECONDS else None


def _fraction(op: BulkOperation) -> float | None:
    if op.status == BulkOperationStatus.COMPLETED:
        return 1.0
    if op.estimated_total_rows <= 0:
        return None
    return min(1.0, max(0.0, op.processed_rows / op.estimated_total_rows))


def observe(
    operation: BulkOperation, observed_at: datetime, previous: Progress | None = None
) -> Progress:
    """The ``Progress`` for ``operation`` seen at ``observed_at``, after ``previous`` if any."""
    if previous is None or previous.operation.id != operation.id:
        baseline_at, baseline_rows = observed_at, operation.processed_rows
    else:
        baseline_at, baseline_rows = previous._baseline_at, previous._baseline_rows

    rate: float | None = None
    elapsed = (observed_at - baseline_at).total_seconds()
    if elapsed > 0:
        rate = max(0.0, (operation.processed_rows - baseline_rows) / elapsed)

    eta: timedelta | None = None
    if operation.is_terminal:
        eta = timedelta(0)
    elif rate:
        remaining = operation.estimated_total_rows - operation.processed_rows
        # Past the estimate the server has not said how much is left: no honest ETA.
        if remaining > 0:
            eta = seconds(remaining / rate)

    return Progress(
        operation=operation,
        observed_at=observed_at,
        fraction=_fraction(operation),
        rows_per_second=rate,
        eta=eta,
        baseline_at=baseline_at,
        baseline_rows=baseline_rows,
    )


def pace(
    done: int, total: int, elapsed: float, *, running: bool, before: int = 0
) -> tuple[float | None, timedelta | None]:
    """``(rows_per_second, eta)`` for ``done`` of ``total`` rows, ``before`` of them done
    before the ``elapsed`` seconds measured; the ETA only while something is ``running``.
    ``None`` where nothing allows an estimate (no row done in the time measured)."""
    gained = done - before
    if not elapsed > 0 or gained <= 0:
        return None, None
    rate = gained / elapsed
    remaining = total - done
    return rate, seconds(remaining / rate) if running and remaining > 0 else None


class RowTally:
    """Rows across many operations, for one set of totals: each key's latest rows done and
    estimated, and their sums. Each operation counts ``0 <= processed <= estimate`` whatever
    its snapshot says, so the sums give a fraction in ``[0, 1]``; one that is over (ended, or
    stopped by an error) has no more rows coming: its estimate is what it processed.

    ``before`` is the rows done before they were watched: with ``baseline`` (operations
    another run started), each operation's rows in its first snapshot; without (operations
    this run started, from nothing), 0. ``processed - before`` is the rows done while watched.
    A snapshot the run was ``given`` (not fetched: of unknown age) counts in the sums, but the
    operation's first fetched snapshot is its baseline; an operation whose rows go back below
    its baseline lowers it, so its drop does not cancel the others' progress.
    """

    __slots__ = ("_base", "_baseline", "_given", "_rows", "before", "estimated", "processed")

    def __len__(self) -> int:
        """How many operations are counted."""
        return len(self._rows)

    def __init__(self, *, baseline: bool = False) -> None:
        self._rows: dict[str, tuple[int, int]] = {}
        self._baseline = baseline
        self._base: dict[str, int] = {}  # each operation's share of ``before``
        self._given: set[str] = set()
        self.processed = 0
        self.estimated = 0
        self.before = 0

    def update(
        self, key: str, operation: BulkOperation, *, over: bool, given: bool = False
    ) -> None:
        """Count ``operation``'s latest snapshot for ``key`` instead of its previous one
        (``given``: handed to the run, not fetched by it)."""
        processed = max(0, operation.processed_rows)
        estimate = processed
        if not (over or operation.is_terminal):
            estimate = max(processed, operation.estimated_total_rows)
        before = self._rows.get(key)
        if before is None:
            before = (0, 0)
            if self._baseline:
                self._rebase(key, processed)
                if given:
                    self._given.add(key)
        elif key in self._given and not given:
            self._given.discard(key)
            self._rebase(key, processed)  # what it did before this fetch is not timed
        elif self._baseline and processed < self._base[key]:
            self._rebase(key, processed)
        self._rows[key] = (processed, estimate)
        self.processed += processed - before[0]
        self.estimated += estimate - before[1]

    def _rebase(self, key: str, processed: int) -> None:
        """``key``'s rows before watching are ``processed`` from now on."""
        self.before += processed - self._base.get(key, 0)
        self._base[key] = processed
