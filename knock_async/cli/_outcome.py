"""What the library's events mean on the command line: each operation's outcome, the one table
from outcome to exit code, the NDJSON fields and the one-line errors. Pure: no ``rich``, no I/O.

A run's state is the latest ``FanOutEvent`` per key (a channel id, or the operation id that
``status`` follows) and the latest ``event.totals``; everything shown is derived from those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from .. import _errors as errors
from .._errors import KnockError, NotFoundError, PollTimeoutError
from .._fanout import FanOutEvent, FanOutEventKind, FanOutTotals
from .._models import BulkOperation
from ._args import PROG, ExitCode

__all__ = ["NO_TOTALS", "Report", "error_lines", "exit_code", "outcome", "overall", "plural"]

Kind = FanOutEventKind

# The one table from outcome to exit code. The overall outcome of many operations is the first
# of ``_WORST_FIRST`` that any of them has; ``status`` without --watch reports the API's status.
EXIT_CODES: Mapping[str, ExitCode] = {
    "error": ExitCode.API_ERROR,
    "failed": ExitCode.FAILED,
    "timeout": ExitCode.TIMEOUT,
    "completed": ExitCode.OK,
    "submitted": ExitCode.OK,
    "queued": ExitCode.OK,
    "processing": ExitCode.OK,
    "interrupted": ExitCode.INTERRUPTED,
}
_WORST_FIRST = ("error", "failed", "timeout", "completed")
NO_TOTALS = FanOutTotals(
    channels=0,
    submitted=0,
    completed=0,
    failed=0,
    errored=0,
    processed_rows=0,
    estimated_total_rows=0,
    rows_per_second=None,
    eta=None,
)


def outcome(event: FanOutEvent | None) -> str | None:
    """How the operation ended: completed, failed, error, timeout; ``None`` while running."""
    if event is None or event.kind not in (Kind.COMPLETED, Kind.FAILED, Kind.ERROR):
        return None
    if event.kind is Kind.ERROR:
        return "timeout" if isinstance(event.error, PollTimeoutError) else "error"
    return event.kind.value


def overall(outcomes: Iterable[str | None]) -> str:
    """The worst of several outcomes (``error`` over ``failed`` over ``timeout``)."""
    present = set(outcomes)
    return next((name for name in _WORST_FIRST if name in present), "completed")


def exit_code(name: str) -> ExitCode:
    """The exit code of an outcome; one the table does not know (a status Knock added) is a
    failure, not a success."""
    return EXIT_CODES.get(name, ExitCode.FAILED)


def resume_command(operation_id: str) -> str:
    return f"{PROG} status {operation_id} --watch"


def plural(count: int, noun: str) -> str:
    """``1 row``, ``2 rows``, ``1,024 errors``."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def operation_of(event: FanOutEvent | None) -> BulkOperation | None:
    return None if event is None or event.progress is None else event.progress.operation


def duration_seconds(operation: BulkOperation | None) -> float | None:
    """From the operation's creation to its end, by the server's timestamps."""
    end = None if operation is None else operation.completed_at or operation.failed_at
    if operation is None or end is None:
        return None
    return max(0.0, (end - operation.inserted_at).total_seconds())


@attrs.frozen(kw_only=True)
class Report:
    """The end of a run, as the summary shows it (a table, or the last NDJSON object). Its keys
    are channel ids, except for ``status``: the operation id it follows."""

    command: str
    action: str | None
    outcome: str
    keys: tuple[str, ...]
    latest: Mapping[str, FanOutEvent]
    totals: FanOutTotals
    elapsed: float
    # The demo's store check: extra columns per key ((json name, header)), its notes and result.
    columns: tuple[tuple[str, str], ...] = ()
    values: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    notes: tuple[str, ...] = ()
    verified: bool | None = None

    @property
    def channels(self) -> bool:
        return self.command != "status"

    @property
    def code(self) -> ExitCode:
        return exit_code(self.outcome)

    def operation_id(self, key: str) -> str | None:
        operation = operation_of(self.latest.get(key))
        if operation is not None:
            return operation.id
        return None if self.channels else key  # status: the key is the operation id

    @property
    def resume(self) -> list[str]:
        """A ``status --watch`` command for each operation not seen to its end (none for the
        demo: its emulator, and its operations, end with its process)."""

        if self.command == "demo":
            return []
        commands = []
        for key in self.keys:
            event = self.latest.get(key)
            op, ended, operation_id = operation_of(event), outcome(event), self.operation_id(key)
            running = op is not None and not op.is_terminal
            unseen = op is None and ended is None
            if operation_id is not None and ended != "error" and (running or unseen):
                commands.append(resume_command(operation_id))
        return commands

    def count(self, name: str) -> int:
        return sum(outcome(self.latest.get(key)) == name for key in self.keys)


# -- NDJSON ----------------------------------------------------------------------------------


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def operation_json(key: str, event: FanOutEvent | None, *, channels: bool) -> dict[str, Any]:
    """An operation's stable NDJSON fields (documented in the README)."""
    progress, error = (None, None) if event is None else (event.progress, event.error)
    op, ended = operation_of(event), outcome(event)
    status = op.status.value if op is not None else "error" if ended == "error" else "pending"
    eta = None if progress is None or progress.eta is None else progress.eta.total_seconds()
    return {
        "channel_id": key if channels else None,
        "operation_id": op.id if op is not None else None if channels else key,
        "status": status,
        "outcome": ended,
        "processed_rows": 0 if op is None else op.processed_rows,
        "estimated_total_rows": None if op is None else op.estimated_total_rows,
        "success_count": 0 if op is None else op.success_count,
        "error_count": 0 if op is None else op.error_count,
        "fraction": None if progress is None else _round(progress.fraction, 4),
        "rows_per_second": None if progress is None else _round(progress.rows_per_second, 1),
        "eta_seconds": _round(eta, 1),
        "duration_seconds": _round(duration_seconds(op), 3),
        "error": None if error is None else error_json(error),
    }


def totals_json(totals: FanOutTotals, elapsed: float) -> dict[str, Any]:
    return {
        **{f.name: getattr(totals, f.name) for f in attrs.fields(FanOutTotals) if f.name != "eta"},
        "fraction": _round(totals.fraction, 4),
        "rows_per_second": _round(totals.rows_per_second, 1),
        "eta_seconds": None if totals.eta is None else _round(totals.eta.total_seconds(), 1),
        "elapsed_seconds": round(elapsed, 3),
    }


def progress_json(event: FanOutEvent, elapsed: float, *, channels: bool) -> dict[str, Any]:
    return {
        "type": "progress",
        "event": event.kind.value,
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        **operation_json(event.channel_id or "", event, channels=channels),
        "totals": totals_json(event.totals, elapsed),
    }


def report_json(report: Report) -> dict[str, Any]:
    operations = [
        operation_json(key, report.latest.get(key), channels=report.channels)
        | dict(report.values.get(key, {}))
        for key in report.keys
    ]
    verified = {} if report.verified is None else {"verified": report.verified}
    return {
        "type": "summary",
        "command": report.command,
        "action": report.action,
        "outcome": report.outcome,
        "exit_code": int(report.code),
        "duration_seconds": round(report.elapsed, 3),
        "totals": totals_json(report.totals, report.elapsed),
        "operations": operations,
        "resume": report.resume,
        **verified,
    }


def error_json(error: KnockError) -> dict[str, Any]:
    return {
        "name": type(error).__name__,
        "status": error.status,
        "code": error.code,
        "message": one_line(error.message),
        "request_id": error.request_id,
    }


def one_line(text: str) -> str:
    return " ".join(text.split())


# -- errors ----------------------------------------------------------------------------------

# What to do about an error, in the command line's words: the first entry it is an instance of.
_HINTS: tuple[tuple[type[KnockError] | tuple[type[KnockError], ...], str], ...] = (
    (
        errors.AuthenticationError,
        "check the API key in KNOCK_API_KEY or --api-key-file: it must be a secret (sk_...) key "
        "of this Knock environment",
    ),
    (
        errors.PermissionDeniedError,
        "use a secret (sk_...) key: public pk_ keys cannot run bulk updates",
    ),
    (NotFoundError, "check the {what} id and that it belongs to this environment (and --branch)"),
    ((errors.UnprocessableEntityError, errors.BadRequestError), "check the filters given"),
    (errors.RateLimitError, "Knock's rate limit was hit: wait and retry, or lower --concurrency"),
    (
        errors.InternalServerError,
        "Knock had a problem: retry later, quoting the request_id to support",
    ),
    (errors.APIConnectionError, "check the network and --base-url (now {base_url})"),
    (errors.ResponseValidationError, "the response broke the API contract; rerun with --debug"),
    (errors.APIError, "see Knock's message"),
)


def hint(error: KnockError, *, what: str, base_url: str) -> str:
    """What to do about ``error``. A 404 whose body is not Knock's error JSON means the base
    URL points at something else."""
    if isinstance(error, NotFoundError) and error.code is None and error.type is None:
        return f"this is not Knock's API at {base_url}: check --base-url (or KNOCK_BASE_URL)"
    text = next((t for kind, t in _HINTS if isinstance(error, kind)), "rerun with --debug")
    return text.format(what=what, base_url=base_url)


def _rows(op: BulkOperation | None) -> str:
    if op is None:
        return "0/? rows"
    return f"{op.processed_rows:,}/{plural(op.estimated_total_rows, 'row')}"


def error_lines(report: Report, *, base_url: str) -> list[str]:
    """One stderr line per failed or timed-out operation, and per distinct error (grouped by
    kind, status and code)."""
    what = "channel" if report.channels else "operation"
    lines: list[str] = []
    groups: dict[tuple[str, int | None, str | None], tuple[KnockError, list[str]]] = {}
    for key in report.keys:
        event = report.latest.get(key)
        ended, op = outcome(event), operation_of(event)
        where = f"{what} {key}: " if report.channels else ""
        if ended == "failed" and op is not None:
            lines.append(
                f"{PROG}: failed: {where}operation {op.id} failed after {_rows(op)} "
                f"({op.success_count:,} updated, {plural(op.error_count, 'error')}); the rows "
                "before the failure stay updated, and running the same command again retries "
                "the rest"
            )
        elif ended == "timeout":
            operation_id = report.operation_id(key) or "?"
            status = "never seen" if op is None else f"last seen {op.status.value}"
            lines.append(
                f"{PROG}: timeout: {where}operation {operation_id} did not finish within "
                f"--timeout ({status}, {_rows(op)}); it goes on server-side: follow it with "
                f"`{resume_command(operation_id)}`"
            )
        elif ended == "error" and event is not None and event.error is not None:
            error = event.error
            group = (type(error).__name__, error.status, error.code)
            groups.setdefault(group, (error, []))[1].append(key)
    for first, keys in groups.values():
        subject = f"{what} {keys[0]}"
        if len(keys) > 1:
            subject = f"{len(keys)} {what}s ({keys[0]} and {len(keys) - 1} more)"
        advice = hint(first, what=what, base_url=base_url)
        lines.append(f"{PROG}: error: {subject}: {one_line(str(first))}; {advice}")
    return lines
