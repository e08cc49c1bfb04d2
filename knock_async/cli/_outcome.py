"""What the library's results mean on the command line, pure (no ``rich``, no I/O): the table
from outcome to exit code, the NDJSON fields, the stderr lines. An event is shown as the result
it leaves (``result_of``): every status and outcome shown is the library's."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from .._errors import KnockError, NotFoundError
from .._fanout import ChannelResult, FanOutEvent, FanOutSummary, FanOutTotals, Outcome
from .._models import BulkOperation
from .._progress import Progress
from ._args import PROG, ExitCode

__all__ = ["Report", "error_lines", "exit_code", "name", "result_of"]

# The one table from outcome to exit code: the library's outcomes, and how a run can stop before
# its operations end. A name it does not know (a status Knock may add) is a failure.
EXIT_CODES: Mapping[str, ExitCode] = {
    Outcome.COMPLETED: ExitCode.OK,
    Outcome.FAILED: ExitCode.FAILED,
    Outcome.ERROR: ExitCode.API_ERROR,
    "timeout": ExitCode.TIMEOUT,  # Outcome.TIMED_OUT
    "submitted": ExitCode.OK,  # --no-wait
    "queued": ExitCode.OK,  # status without --watch: the API's status
    "processing": ExitCode.OK,
    "interrupted": ExitCode.INTERRUPTED,
    "bad_line": ExitCode.USAGE,  # bulk from stdin: stopped at a bad line
}
_NOT_ENDED = (Outcome.PENDING, Outcome.RUNNING)


def name(outcome: Outcome) -> str | None:
    """The command line's name for an outcome (``timeout``); ``None`` while not ended."""
    if outcome in _NOT_ENDED:
        return None
    return "timeout" if outcome is Outcome.TIMED_OUT else outcome.value


def exit_code(outcome: str) -> ExitCode:
    return EXIT_CODES.get(outcome, ExitCode.FAILED)


def result_of(event: FanOutEvent) -> ChannelResult:
    """Where ``event`` leaves its operation, as the library's result (status, outcome)."""
    op = None if event.progress is None else event.progress.operation
    channel, operation_id, error = event.channel_id, event.operation_id, event.error
    return ChannelResult(
        channel_id=channel, operation=op, error=error, operation_id=operation_id, items=event.items
    )


def plural(count: int, noun: str) -> str:
    """``1 row``, ``2 rows``, ``1,024 errors``."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def duration_seconds(op: BulkOperation | None) -> float | None:
    """From the operation's creation to its end, by the server's timestamps."""
    end = None if op is None else op.completed_at or op.failed_at
    return None if op is None or end is None else max(0.0, (end - op.inserted_at).total_seconds())


def key_of(result: ChannelResult) -> str:
    """What a result is shown under: its channel, its chunk's items (``0-999``), its operation."""
    if result.items is not None:
        return f"{result.items.start}-{result.items.stop - 1}"
    return result.channel_id or result.operation_id or "?"


@attrs.frozen(kw_only=True)
class Report:
    """The end of a run as the summary shows it: the library's summary, the latest snapshot
    of each operation (by id) and the run's outcome (a key of ``EXIT_CODES``)."""

    command: str
    action: str | None
    outcome: str
    summary: FanOutSummary
    progress: Mapping[str, Progress] = attrs.field(factory=dict)
    elapsed: float
    # The demo's store check: extra columns per channel ((json name, header)), notes, result.
    columns: tuple[tuple[str, str], ...] = ()
    values: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    notes: tuple[str, ...] = ()
    verified: bool | None = None
    stopped: str | None = None  # the bad line that stopped a bulk run
    unsent: str | None = None  # what of a bulk run's input was not sent

    @property
    def results(self) -> tuple[ChannelResult, ...]:
        return self.summary.results

    @property
    def what(self) -> str:
        """What each result is shown as: a channel, a chunk of items (bulk), else an operation."""
        channels = any(r.channel_id is not None for r in self.results)
        return "channel" if channels else "chunk" if self.command == "bulk" else "operation"

    @property
    def code(self) -> ExitCode:
        return exit_code(self.outcome)

    @property
    def resume(self) -> list[str]:
        """A ``status --watch`` command per operation not seen to its end (but the demo's)."""
        unended = (*_NOT_ENDED, Outcome.TIMED_OUT)
        return [
            f"{PROG} status {r.operation_id} --watch"
            for r in self.results
            if self.command != "demo" and r.operation_id is not None and r.outcome in unended
        ]


COUNTS = ("processed_rows", "success_count", "error_count")  # an operation's, exact


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def operation_json(result: ChannelResult, progress: Progress | None) -> dict[str, Any]:
    """An operation's stable NDJSON fields (documented in the README)."""
    op, error = result.operation, result.error
    eta = None if progress is None or progress.eta is None else progress.eta.total_seconds()
    return {
        "channel_id": result.channel_id,
        "operation_id": result.operation_id,
        "status": op.status.value if op else "pending" if error is None else "error",
        "outcome": name(result.outcome),
        **{field: getattr(op, field, 0) for field in COUNTS},  # 0 before the operation exists
        "estimated_total_rows": None if op is None else op.estimated_total_rows,
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


def progress_json(event: FanOutEvent, elapsed: float) -> dict[str, Any]:
    return {
        "type": "progress",
        "event": event.kind.value,
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        **operation_json(result_of(event), event.progress),
        "totals": totals_json(event.totals, elapsed),
    }


def report_json(report: Report) -> dict[str, Any]:
    operations = [
        operation_json(r, report.progress.get(r.operation_id or ""))
        | ({} if r.items is None else {"items": [r.items.start, r.items.stop]})
        | {"error_items": [attrs.asdict(e) for e in getattr(r.operation, "error_items", ())]}
        | dict(report.values.get(key_of(r), {}))
        for r in report.results
    ]
    return {
        "type": "summary",
        **{field: getattr(report, field) for field in ("command", "action", "outcome")},
        "exit_code": int(report.code),
        "duration_seconds": round(report.elapsed, 3),
        "totals": totals_json(report.summary.totals, report.elapsed),
        "operations": operations,
        "resume": report.resume,
        **({} if report.verified is None else {"verified": report.verified}),
    }


def error_json(error: KnockError) -> dict[str, Any]:
    return {"name": type(error).__name__, "status": error.status, "code": error.code,
            "message": one_line(error.message), "request_id": error.request_id}  # fmt: skip


def one_line(text: str) -> str:
    return " ".join(text.split())


# What to do about an error, in the command line's words, under the most specific of its
# classes that has an entry (a line starting with spaces continues the one above).
_HINT_LINES = """\
AuthenticationError: check the API key in KNOCK_API_KEY or --api-key-file: it must be a
  secret (sk_...) key of this Knock environment
PermissionDeniedError: use a secret (sk_...) key: public pk_ keys cannot run bulk updates
NotFoundError: check the {what} id and that it belongs to this environment (and --branch)
UnprocessableEntityError: check the filters or items given
BadRequestError: check the filters or items given
RateLimitError: Knock's rate limit was hit: wait and retry, or lower --concurrency
InternalServerError: Knock had a problem: retry later, quoting the request_id to support
APIConnectionError: check the network and --base-url (now {base_url})
APIResponseValidationError: the response broke the API contract; rerun with --debug
APIError: see Knock's message
"""
_HINTS = dict(line.split(": ", 1) for line in re.sub(r"\n +", " ", _HINT_LINES).splitlines())


def hint(error: KnockError, *, what: str, base_url: str) -> str:
    """What to do about ``error`` (a 404 but not Knock's error JSON: the base URL is wrong)."""
    if isinstance(error, NotFoundError) and error.code is None and error.type is None:
        return f"this is not Knock's API at {base_url}: check --base-url (or KNOCK_BASE_URL)"
    kinds = [kind.__name__ for kind in type(error).__mro__ if kind.__name__ in _HINTS]
    text = _HINTS[kinds[0]] if kinds else "rerun with --debug"
    return text.format(what=what, base_url=base_url)


def _rows(op: BulkOperation | None) -> str:
    if op is None:
        return "0/? rows"
    return f"{op.processed_rows:,}/{plural(op.estimated_total_rows, 'row')}"


def error_lines(report: Report, *, base_url: str) -> list[str]:
    """The stderr lines: per failed or timed-out operation, per distinct error, what is left."""
    what, lines = report.what, list[str]()
    groups: dict[tuple[str, int | None, str | None], tuple[KnockError, list[str]]] = {}
    for result in report.results:
        outcome, op, error = result.outcome, result.operation, result.error
        where = f"channel {result.channel_id}: " if what == "channel" else ""
        if outcome is Outcome.FAILED and op is not None:
            lines.append(
                f"{PROG}: failed: {where}operation {op.id} failed after {_rows(op)} "
                f"({op.success_count:,} updated, {plural(op.error_count, 'error')}); the rows "
                "before the failure stay updated, and running the same command again retries "
                "the rest"
            )
        elif outcome is Outcome.TIMED_OUT:
            operation_id = result.operation_id or "?"
            status = "never seen" if op is None else f"last seen {op.status.value}"
            stall = getattr(error, "stalled_for", None)  # None: --timeout ended it
            limit = f"change for {stall:g}s" if stall else "finish within --timeout"
            lines.append(
                f"{PROG}: timeout: {where}operation {operation_id} did not {limit} ({status}, "
                f"{_rows(op)}); it goes on server-side: follow it with `{PROG} status "
                f"{operation_id} --watch`"
            )
        elif outcome is Outcome.ERROR and error is not None:
            group = (type(error).__name__, error.status, error.code)
            groups.setdefault(group, (error, []))[1].append(key_of(result))
    for first, keys in groups.values():
        subject = f"{what} {keys[0]}"
        if len(keys) > 1:
            subject = f"{len(keys)} {what}s ({keys[0]} and {len(keys) - 1} more)"
        advice = hint(first, what=what, base_url=base_url)
        lines.append(f"{PROG}: error: {subject}: {one_line(str(first))}; {advice}")
    # What Ctrl-C or a bad line left behind: each resume command on its own (indented) line.
    if report.outcome not in ("interrupted", "bad_line"):
        return lines + [f"{PROG}: {report.unsent}"] * bool(report.unsent)
    if report.command == "demo":  # its emulator, and its operations, end with it
        return [*lines, f"{PROG}: interrupted"]
    lines.append(
        f"{PROG}: interrupted: stopped following; operations already started go on "
        "server-side (Ctrl-C does not cancel them)."
    )
    if report.stopped is not None:  # a bad line: the chunks before it were sent, in order
        sent = sum(len(r.items or ()) for r in report.results if r.operation_id is not None)
        went = f"items 0-{sent - 1} went in operations that go on server-side; " if sent else ""
        lines[-1] = f"{PROG}: error: {report.stopped}; {went}nothing from item {sent} on was sent"
    if report.resume:
        lines += ["Resume following with:", *(f"  {command}" for command in report.resume)]
    # Channels (or chunks read) with no operation and no error: never sent, or no answer yet.
    unsent = [key_of(r) for r in report.results if r.status == "pending" and not r.operation_id]
    if unsent:
        more = f" and {len(unsent) - 10} more" if len(unsent) > 10 else ""
        lines.append(
            f"{plural(len(unsent), report.what)} got no operation id (not sent, or interrupted "
            f"while sending, so an update may have started): {' '.join(unsent[:10])}{more}"
        )
    return lines + [f"{PROG}: {report.unsent}"] * bool(report.unsent)
