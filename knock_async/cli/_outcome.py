"""What the command line knows about each operation, how that becomes an exit code, and the
one-line error messages. Pure: no ``rich``, no I/O."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import attrs

from .._errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    BulkOperationFailedError,
    InternalServerError,
    KnockError,
    NotFoundError,
    PermissionDeniedError,
    PollTimeoutError,
    RateLimitError,
    ResponseValidationError,
    UnprocessableEntityError,
)
from .._fanout import FanOutEventKind, FanOutTotals
from .._models import BulkOperation, BulkOperationStatus
from .._progress import Progress
from ._args import PROG, ExitCode

__all__ = [
    "Outcome",
    "Row",
    "Summary",
    "Totals",
    "Tracker",
    "error_lines",
    "resume_command",
    "worst",
]

Kind = FanOutEventKind


class Outcome:
    """How one operation (row) ended, as written in the summary and the NDJSON."""

    COMPLETED = "completed"
    FAILED = "failed"
    ERROR = "error"
    TIMEOUT = "timeout"


# The worst outcome decides the exit code; this is the order, worst first.
_SEVERITY = (ExitCode.API_ERROR, ExitCode.FAILED, ExitCode.TIMEOUT, ExitCode.OK)


def worst(codes: Iterable[ExitCode]) -> ExitCode:
    """The exit code for several outcomes: ``3`` over ``1`` over ``4`` over ``0``."""
    present = set(codes)
    for code in _SEVERITY:
        if code in present:
            return code
    return ExitCode.OK


def resume_command(operation_id: str) -> str:
    return f"{PROG} status {operation_id} --watch"


@dataclass
class Row:
    """One operation: a channel's bulk update, or the operation ``status`` follows."""

    key: str
    channel_id: str | None
    operation_id: str | None = None
    status: str = "pending"  # the API's status once known; "pending" before
    outcome: str | None = None  # set when finished: completed, failed, error, timeout
    processed_rows: int = 0
    estimated_total_rows: int | None = None
    success_count: int = 0
    error_count: int = 0
    fraction: float | None = None
    rows_per_second: float | None = None
    eta: timedelta | None = None
    error: KnockError | None = None
    operation: BulkOperation | None = None
    baseline_rows: int | None = None  # processed rows when first seen (for the overall rate)

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def label(self) -> str:
        if self.channel_id is not None:
            return self.channel_id
        return self.operation_id or self.key

    def apply_operation(self, operation: BulkOperation) -> None:
        self.operation = operation
        self.operation_id = operation.id
        self.status = operation.status.value
        self.processed_rows = operation.processed_rows
        self.estimated_total_rows = operation.estimated_total_rows
        self.success_count = operation.success_count
        self.error_count = operation.error_count
        if self.baseline_rows is None:
            self.baseline_rows = operation.processed_rows
        if operation.status == BulkOperationStatus.COMPLETED:
            self.fraction = 1.0
        elif operation.estimated_total_rows > 0:
            self.fraction = min(1.0, operation.processed_rows / operation.estimated_total_rows)
        else:
            self.fraction = None
        if operation.is_terminal:
            self.eta = timedelta(0)

    def apply_progress(self, progress: Progress) -> None:
        self.apply_operation(progress.operation)
        self.fraction = progress.fraction
        self.rows_per_second = progress.rows_per_second
        self.eta = progress.eta

    @property
    def duration_seconds(self) -> float | None:
        """From the operation's creation to its end, by the server's timestamps."""
        op = self.operation
        if op is None:
            return None
        end = op.completed_at or op.failed_at
        if end is None:
            return None
        return max(0.0, (end - op.inserted_at).total_seconds())

    @property
    def exit_code(self) -> ExitCode:
        return {
            Outcome.COMPLETED: ExitCode.OK,
            Outcome.FAILED: ExitCode.FAILED,
            Outcome.TIMEOUT: ExitCode.TIMEOUT,
            Outcome.ERROR: ExitCode.API_ERROR,
        }.get(self.outcome or "", ExitCode.OK)

    def to_json(self) -> dict[str, Any]:
        """The row's stable NDJSON fields (documented in the README)."""
        return {
            "channel_id": self.channel_id,
            "operation_id": self.operation_id,
            "status": self.status,
            "outcome": self.outcome,
            "processed_rows": self.processed_rows,
            "estimated_total_rows": self.estimated_total_rows,
            "success_count": self.success_count,
            "error_count": self.error_count,
            "fraction": _round(self.fraction, 4),
            "rows_per_second": _round(self.rows_per_second, 1),
            "eta_seconds": None if self.eta is None else _round(self.eta.total_seconds(), 1),
            "duration_seconds": _round(self.duration_seconds, 3),
            "error": None if self.error is None else error_json(self.error),
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@attrs.frozen(kw_only=True)
class Totals(FanOutTotals):
    """Every row at a glance, for one overall progress bar: the library's fan-out totals plus
    the command's own running time."""

    elapsed_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "channels": self.channels,
            "submitted": self.submitted,
            "completed": self.completed,
            "failed": self.failed,
            "errored": self.errored,
            "processed_rows": self.processed_rows,
            "estimated_total_rows": self.estimated_total_rows,
            "fraction": _round(self.fraction, 4),
            "rows_per_second": _round(self.rows_per_second, 1),
            "eta_seconds": None if self.eta is None else _round(self.eta.total_seconds(), 1),
            "elapsed_seconds": round(self.elapsed_seconds, 3),
        }


class Tracker:
    """The rows, updated from the library's events."""

    def __init__(self, rows: Iterable[Row], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rows: dict[str, Row] = {row.key: row for row in rows}
        self._clock = clock
        self.started = clock()
        self.started_at = datetime.now(UTC)
        # Running sums, kept up to date row by row: a display refreshed on every event of a
        # 10,000-channel fan-out must not add up 10,000 rows each time.
        self._sums = [0] * len(_Contribution._fields)
        for row in self.rows.values():
            self._add(_contribution(row), 1)

    def _add(self, contribution: _Contribution, sign: int) -> None:
        for index, value in enumerate(contribution):
            self._sums[index] += sign * value

    def apply(
        self,
        kind: FanOutEventKind,
        key: str,
        progress: Progress | None = None,
        error: KnockError | None = None,
        operation: BulkOperation | None = None,
    ) -> Row:
        row = self.rows[key]
        self._add(_contribution(row), -1)
        try:
            self._apply(row, kind, progress, error, operation)
        finally:
            self._add(_contribution(row), 1)
        return row

    @staticmethod
    def _apply(
        row: Row,
        kind: FanOutEventKind,
        progress: Progress | None,
        error: KnockError | None,
        operation: BulkOperation | None,
    ) -> None:
        if progress is not None:
            row.apply_progress(progress)
        elif operation is not None:
            row.apply_operation(operation)
        if kind is Kind.COMPLETED:
            row.outcome = Outcome.COMPLETED
        elif kind is Kind.FAILED:
            row.outcome = Outcome.FAILED
            row.error = error
        elif kind is Kind.ERROR:
            row.error = error
            row.outcome = Outcome.TIMEOUT if isinstance(error, PollTimeoutError) else Outcome.ERROR
            if row.operation_id is None and isinstance(error, PollTimeoutError):
                row.operation_id = error.operation_id
            if row.status == "pending" and not isinstance(error, PollTimeoutError):
                row.status = "error"

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    def totals(self) -> Totals:
        sums = _Contribution(*self._sums)
        elapsed = self.elapsed
        rate: float | None = None
        eta: timedelta | None = None
        if elapsed > 0 and sums.done_here > 0:
            rate = sums.done_here / elapsed
            if sums.estimated > sums.processed:
                eta = timedelta(seconds=(sums.estimated - sums.processed) / rate)
        return Totals(
            channels=len(self.rows),
            submitted=sums.submitted,
            completed=sums.completed,
            failed=sums.failed,
            errored=sums.errored,
            processed_rows=sums.processed,
            estimated_total_rows=sums.estimated,
            rows_per_second=rate,
            eta=eta,
            elapsed_seconds=elapsed,
        )

    def all_submitted(self) -> bool:
        """Every row has an operation or has finished (an error before submission)."""
        return _Contribution(*self._sums).unsubmitted == 0

    def exit_code(self) -> ExitCode:
        return worst(row.exit_code for row in self.rows.values() if row.finished)

    def resumable(self) -> list[Row]:
        """Rows whose operation was last seen running: not followed to its end (Ctrl-C,
        --timeout, --no-wait, or an error while polling)."""
        return [r for r in self.rows.values() if r.operation_id is not None and _running(r)]

    def unsubmitted(self) -> list[Row]:
        """Rows with no operation and no error: never sent, or sent with no answer yet."""
        return [r for r in self.rows.values() if r.operation_id is None and not r.finished]


class _Contribution(NamedTuple):
    """What one row adds to the totals."""

    processed: int
    estimated: int
    done_here: int
    submitted: int
    completed: int
    failed: int
    errored: int
    unsubmitted: int


def _contribution(row: Row) -> _Contribution:
    if row.operation is not None and row.operation.is_terminal:
        estimated = row.processed_rows
    else:
        estimated = max(row.estimated_total_rows or 0, row.processed_rows)
    return _Contribution(
        processed=row.processed_rows,
        estimated=estimated,
        done_here=row.processed_rows - (row.baseline_rows or 0),
        submitted=int(row.operation_id is not None),
        completed=int(row.outcome == Outcome.COMPLETED),
        failed=int(row.outcome == Outcome.FAILED),
        errored=int(row.outcome in (Outcome.ERROR, Outcome.TIMEOUT)),
        unsubmitted=int(row.operation_id is None and not row.finished),
    )


def _running(row: Row) -> bool:
    if row.operation is None:  # never seen: only if nothing went wrong (status, interrupted)
        return row.outcome is None
    return not row.operation.is_terminal


@dataclass(kw_only=True)
class Summary:
    """The end of a run: printed as a table, or as the final NDJSON object."""

    command: str
    action: str | None
    outcome: str
    exit_code: int
    totals: Totals
    rows: list[Row]
    resume: list[str] = field(default_factory=list)
    # Extra per-row columns (the demo's store check): (json name, header), values by row key.
    columns: list[tuple[str, str]] = field(default_factory=list)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        operations = []
        for row in self.rows:
            record = row.to_json()
            record.update(self.values.get(row.key, {}))
            operations.append(record)
        return {
            "type": "summary",
            "command": self.command,
            "action": self.action,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "duration_seconds": round(self.totals.elapsed_seconds, 3),
            "totals": self.totals.to_json(),
            "operations": operations,
            "resume": self.resume,
            **self.extra,
        }


def overall_outcome(code: ExitCode) -> str:
    return {
        ExitCode.OK: Outcome.COMPLETED,
        ExitCode.FAILED: Outcome.FAILED,
        ExitCode.API_ERROR: Outcome.ERROR,
        ExitCode.TIMEOUT: Outcome.TIMEOUT,
        ExitCode.INTERRUPTED: "interrupted",
    }.get(code, "error")


# -- errors ----------------------------------------------------------------------------------


def error_json(error: KnockError) -> dict[str, Any]:
    return {
        "name": type(error).__name__,
        "status": error.status,
        "code": error.code,
        "message": _one_line(error.message),
        "request_id": error.request_id,
    }


def _one_line(text: str) -> str:
    return " ".join(text.split())


def hint(error: KnockError, *, operation_known: bool) -> str:
    """What to do about ``error``, in a few words."""
    if isinstance(error, AuthenticationError):
        return (
            "check the API key in KNOCK_API_KEY or --api-key-file: it must be a secret (sk_...) "
            "key of this Knock environment"
        )
    if isinstance(error, PermissionDeniedError):
        return "use a secret (sk_...) key: public pk_ keys cannot run bulk updates"
    if isinstance(error, NotFoundError):
        if operation_known:
            return "check the operation id, the base URL and KNOCK_BRANCH"
        return "check the channel id and that it belongs to this environment (and KNOCK_BRANCH)"
    if isinstance(error, UnprocessableEntityError | BadRequestError):
        return "check the filters given"
    if isinstance(error, RateLimitError):
        return "Knock's rate limit was hit: wait and retry, or lower --concurrency"
    if isinstance(error, InternalServerError):
        return "Knock had a problem: retry later, quoting the request_id to Knock support"
    if isinstance(error, PollTimeoutError):
        return f"it goes on server-side; follow it with `{resume_command(error.operation_id)}`"
    if isinstance(error, BulkOperationFailedError):
        return "see error_count and error_items in `--json` output; the rows before it were updated"
    if isinstance(error, APIConnectionError):
        return "check the network and the base URL (KNOCK_BASE_URL or --base-url)"
    if isinstance(error, ResponseValidationError):
        return "the response broke the API contract; rerun with --debug and report it"
    if isinstance(error, APIError):
        return "see Knock's message"
    return "rerun with --debug for details"


def describe(error: KnockError) -> str:
    """The error itself: HTTP status, Knock's code and message, request id."""
    return _one_line(str(error))


def error_lines(rows: Iterable[Row], *, what: str) -> list[str]:
    """One line per distinct error (grouped by kind, status and code), for stderr."""
    groups: dict[tuple[str, int | None, str | None], list[Row]] = {}
    failed: list[str] = []
    for row in rows:
        if row.outcome == Outcome.FAILED:
            failed.append(_failed_line(row, what))
            continue
        if row.error is None or row.outcome not in (Outcome.ERROR, Outcome.TIMEOUT):
            continue
        error = row.error
        groups.setdefault((type(error).__name__, error.status, error.code), []).append(row)
    lines: list[str] = failed
    for members in groups.values():
        if isinstance(members[0].error, PollTimeoutError):
            lines.extend(_timeout_line(row, what) for row in members)
            continue
        first = members[0]
        assert first.error is not None
        if len(members) == 1:
            subject = f"{what} {first.label}"
        else:
            more = f" and {len(members) - 1} more"
            subject = f"{len(members)} {what}s ({first.label}{more})"
        known = first.operation_id is not None
        lines.append(
            f"{PROG}: error: {subject}: {describe(first.error)}; "
            f"{hint(first.error, operation_known=known)}"
        )
    return lines


def _timeout_line(row: Row, what: str) -> str:
    operation = row.operation_id or "?"
    where = f"{what} {row.channel_id}: " if row.channel_id else ""
    seen = f"last seen {row.status}, {row.processed_rows:,}/{row.estimated_total_rows or 0:,} rows"
    return (
        f"{PROG}: timeout: {where}operation {operation} did not finish within --timeout "
        f"({seen}); it goes on server-side: follow it with `{resume_command(operation)}`"
    )


def _failed_line(row: Row, what: str) -> str:
    where = f"{what} {row.channel_id}: " if row.channel_id else ""
    estimate = row.estimated_total_rows or 0
    return (
        f"{PROG}: failed: {where}operation {row.operation_id} failed after "
        f"{row.processed_rows:,}/{estimate:,} rows ({row.success_count:,} updated, "
        f"{row.error_count:,} errors); the rows before the failure stay updated, and running "
        "the same command again retries the rest"
    )
