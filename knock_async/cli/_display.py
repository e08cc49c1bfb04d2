"""Rendering the library's events: a ``rich`` live display on a terminal, plain lines
otherwise, NDJSON with ``--json``: three ``Display``s, one chosen per run (``make_display``)."""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol, TextIO

from rich.console import Console, RenderableType
from rich.constrain import Constrain
from rich.padding import PaddingDimensions
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Column, Table
from rich.text import Text

from .._fanout import ChannelResult, FanOutEvent, Outcome
from . import _outcome as out
from ._outcome import Report, key_of, name, result_of
from ._wrap import for_people, prose

__all__ = ["Display", "JsonDisplay", "PlainDisplay", "RichDisplay", "abbreviate", "make_display"]

Lines = Sequence[str]
_STYLE = {"pending": "dim", "queued": "yellow", "processing": "cyan", "completed": "green"}
_STYLE |= {"failed": "bold red", "error": "bold red", "timeout": "bold yellow"}
_compact = json.JSONEncoder(separators=(",", ":")).encode  # one NDJSON line


class Display(Protocol):
    """What every renderer takes: ``start`` (``header``: the NDJSON ``start`` object, ``intro``:
    lines, ``rows``: keys shown before any event), ``update``, ``stop`` (idempotent), ``summary``"""

    def start(self, header: Mapping[str, Any], intro: Lines, rows: Lines) -> None: ...
    def update(self, event: FanOutEvent) -> None: ...
    def summary(self, report: Report) -> None: ...
    def stop(self) -> None:  # nothing live: nothing to stop
        return None


def abbreviate(value: float | None) -> str:
    """A count in at most about six characters: ``950``, ``12.3k``, ``4.5M``, ``1.0e+22``."""
    if value is None or value < 1000:
        return "?" if value is None else f"{value:.0f}"
    for unit in "kMBT":
        value /= 1000
        if value < 999.5:
            return f"{value:.1f}{unit}" if value < 99.95 else f"{value:.0f}{unit}"
    return f"{value * 1e12:.1e}"


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 60:
        return "-" if seconds is None else f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def format_eta(eta: timedelta | None) -> str:
    seconds = None if eta is None else eta.total_seconds()
    return "?" if seconds is None else format_duration(seconds) if seconds >= 1 else "<1s"


def _percent(fraction: float | None) -> str:
    return "" if fraction is None else f" ({fraction:.0%})"


def _status(result: ChannelResult) -> str:
    """The status shown for an operation: its outcome once ended, else the API's status."""
    op, error = result.operation, result.error
    if result.outcome is Outcome.ERROR and error is not None:
        return f"error {error.status or ''}".strip()
    return name(result.outcome) or ("pending" if op is None else op.status.value)


def say(console: Console, line: str) -> None:
    """A line for people at the console's width (``for_people``)."""
    for text in for_people(line, console.width):
        console.print(text, highlight=False, markup=False, soft_wrap=True)


class _Lines(Display):
    """A display that writes whole lines to a stream (a pipe, a file, a log): nothing live."""

    def __init__(self, out: TextIO) -> None:
        self._out, self._started = out, time.monotonic()

    def _print(self, line: str) -> None:
        print(line, file=self._out, flush=True)


class JsonDisplay(_Lines):
    """One JSON object per line: ``start``, a ``progress`` per event, then ``summary``."""

    def start(self, header: Mapping[str, Any], intro: Lines, rows: Lines) -> None:
        self._print(_compact({"type": "start", **header}))

    def update(self, event: FanOutEvent) -> None:
        self._print(_compact(out.progress_json(event, time.monotonic() - self._started)))

    def summary(self, report: Report) -> None:
        self._print(_compact(out.report_json(report)))


class PlainDisplay(_Lines):
    """One line per change, ``key=value`` fields: easy to read in a CI log and to grep."""

    def start(self, header: Mapping[str, Any], intro: Lines, rows: Lines) -> None:
        self._out.writelines(f"{line}\n" for line in intro)  # flushed with the next line

    def update(self, event: FanOutEvent) -> None:
        result, progress = result_of(event), event.progress
        op, ended = result.operation, name(result.outcome)
        ids = {"channel": event.channel_id, "operation": event.operation_id}
        fields: dict[str, object] = {k: v for k, v in ids.items() if v is not None}
        if ended == "error":
            # The error itself is one line on stderr, said once (with what to do about it).
            fields["status"] = "error"
        else:
            fraction = None if progress is None else progress.fraction
            rows = "0/?" if op is None else f"{op.processed_rows}/{op.estimated_total_rows}"
            fields.update(status=_status(result), rows=rows + _percent(fraction))
            if ended is None and progress is not None:
                if progress.rows_per_second is not None:
                    fields["rate"] = f"{progress.rows_per_second:.0f}/s"
                fields["eta"] = format_eta(progress.eta)
            elif op is not None and event.channel_id is not None:  # else in the summary line
                fields.update(updated=op.success_count, errors=op.error_count)
                if ended != "timeout":
                    fields["duration"] = format_duration(out.duration_seconds(op))
        self._print(" ".join([f"{event.kind.value:<9}", *(f"{k}={v}" for k, v in fields.items())]))
        totals = event.totals
        if totals.channels > 1 and ended is not None:
            rate = "" if totals.rows_per_second is None else f" rate={totals.rows_per_second:.0f}/s"
            self._print(
                f"total     finished={totals.finished}/{totals.channels} "
                f"completed={totals.completed} failed={totals.failed} errored={totals.errored} "
                f"rows={totals.processed_rows}/"  # the rows its fraction counts: unsent ones too
                f"{totals.estimated_total_rows + totals.estimated_unsubmitted_rows}"
                f"{_percent(totals.fraction)}{rate}"
            )

    def summary(self, report: Report) -> None:
        # Wide enough that nothing wraps (a log has no width), the last column's padding cut.
        buffer = io.StringIO()
        print_summary(Console(file=buffer, width=10_000, color_system=None), report)
        for line in buffer.getvalue().splitlines():
            self._print(line.rstrip())


def print_summary(console: Console, report: Report, *, limit: int | None = None) -> None:
    """The summary: per channel a row of exact numbers under its id's first 8 characters, then
    the full ids (both never fit 80 columns beside the numbers), then one line for the run."""
    if report.what == "channel" or len(report.results) > 1:
        results = list(report.results)
        if limit is not None and len(results) > limit:  # the channels not completed first
            results = sorted(results, key=lambda r: r.outcome is Outcome.COMPLETED)[:limit]
        # The numbers, exact: with thousands separators if they fit, else without, else with
        # one space between columns (a measure is clamped to the width: hence unbounded).
        unbounded = console.options.update_width(10_000)
        for separator, padding in ((",", (0, 1)), ("", (0, 1)), ("", (0, 1, 0, 0))):
            numbers = _number_table(report, results, separator, padding)
            if console.measure(numbers, options=unbounded).maximum <= console.width:
                break
        console.print()
        console.print(numbers)
        if more := len(report.results) - len(results):
            console.print(f"  … and {out.plural(more, f'more {report.what}')}")
        console.print()
        ids = Table(report.what, "operation", box=None, header_style="bold", pad_edge=False)
        for result in results:
            ids.add_row(key_of(result), result.operation_id or "-")
        console.print(ids)
    style = "bold green" if report.code == 0 else "bold red"
    console.print(Text(prose(_summary_line(report), console.width), style=style), soft_wrap=True)
    for line in report.notes:
        say(console, line)
    if report.outcome in ("submitted", "queued", "processing") and report.resume:
        console.print("follow with:")
        for command in report.resume:
            say(console, f"  {command}")


def _number_table(
    report: Report, results: list[ChannelResult], separator: str, padding: PaddingDimensions
) -> Table:
    def count(value: object) -> str:
        return format(value, separator or "d") if isinstance(value, int) else str(value)

    did = "succeeded" if report.what == "chunk" else "updated"
    headers = [report.what, "status", "rows", did, "errors", "time"]
    table = Table(box=None, header_style="bold", pad_edge=False, padding=padding)
    for index, header in enumerate(headers + [header for _, header in report.columns]):
        table.add_column(header, justify="right" if index >= 2 else "left", no_wrap=True)
    for result in results:
        op, key = result.operation, key_of(result)
        status, extra = _status(result), report.values.get(key, {})
        table.add_row(
            key if result.items else key[:8],
            Text(status, style=_STYLE.get(status.split(" ")[0], "")),
            *(count(getattr(op, field, 0)) for field in out.COUNTS),
            format_duration(out.duration_seconds(op)),
            *(count(extra.get(field, "")) for field, _ in report.columns),
        )
    return table


def _summary_line(report: Report) -> str:
    code = f"(exit {int(report.code)})"
    if report.what == "operation" and len(report.results) == 1:  # status: the one operation
        result = report.results[0]
        op, took = result.operation, out.duration_seconds(result.operation)
        if op is None:
            return f"{report.outcome}: operation {key_of(result)} {code}"
        return (
            f"{report.outcome}: operation {op.id}: {out.plural(op.success_count, 'row')} "
            f"{'updated' if 'message' in op.name else 'succeeded'}, "  # a message, or an item
            f"{out.plural(op.error_count, 'error')}"
            + ("" if took is None else f", in {format_duration(took)}")
            + f" {code}"
        )
    what = f"{report.action} on " if report.action else ""
    ended = collections.Counter(result.outcome for result in report.results)
    count = len(report.results)  # and a file's chunks not read yet:
    count = max(count, report.summary.totals.channels) if report.what == "chunk" else count
    return (
        f"{report.outcome}: {what}{out.plural(count, report.what)}: "
        f"{ended[Outcome.COMPLETED]} completed, {ended[Outcome.FAILED]} failed, "
        f"{ended[Outcome.ERROR]} errored"
        + (f", {ended[Outcome.TIMED_OUT]} timed out" if ended[Outcome.TIMED_OUT] else "")
        + f"; {out.plural(report.summary.totals.processed_rows, 'row')} processed in "
        f"{format_duration(report.elapsed)} {code}"
    )


def _bar(done: int = 0, total: int | None = None, rate: float | None = None,
         eta: timedelta | None = None, status: str = "pending") -> dict[str, Any]:  # fmt: skip
    """The fields of one bar, numbers abbreviated (``12.3k/50.0k  1.2k/s``)."""
    return {
        "rows": f"{abbreviate(done)}/{abbreviate(total)}",
        "rate": f"{abbreviate(rate)}/s",
        "eta": f"ETA {format_eta(eta)}",
        "status": f"[{_STYLE.get(status.split(' ')[0], 'default')}]{status}[/]",
    }


_FIELDS = (("rows", "download"), ("rate", "data.speed"), ("eta", "remaining"), ("status", ""))


class _Bars(Progress):
    """Rich's progress display kept 3 columns short of the terminal's width: a Ctrl-C echoed as
    ``^C`` after the last line then wraps nothing, so the redraw stays in place."""

    def get_renderable(self) -> RenderableType:  # at each refresh (and once before ``live``)
        width = self.live.console.width if hasattr(self, "live") else 80
        return Constrain(super().get_renderable(), width=max(20, width - 3))


class RichDisplay(Display):
    """A live bar per operation (``MAX_ROWS`` at once), an overall one atop; then a summary."""

    MAX_ROWS = 12

    def __init__(self, console: Console) -> None:
        def text(template: str, style: str = "") -> TextColumn:  # never wrapped: one line each
            return TextColumn(template, style=style, table_column=Column(no_wrap=True))

        self.console = console
        self._progress = _Bars(
            text("{task.description}"),
            BarColumn(bar_width=None),
            text("{task.percentage:>3.0f}%"),
            *(text(f"{{task.fields[{f}]}}", s and f"progress.{s}") for f, s in _FIELDS),
            console=console,
            refresh_per_second=10,
            expand=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._total = TaskID(-1)

    def start(self, header: Mapping[str, Any], intro: Lines, rows: Lines) -> None:
        self._noun = "chunks" if header.get("command") == "bulk" else "operations"
        for line in intro:
            say(self.console, line)
        # On top, shown once there are several channels (or chunks: their count grows as read).
        self._total = self._progress.add_task("", total=None, visible=False, **_bar(status=""))
        for key in rows[: self.MAX_ROWS]:
            self._tasks[key] = self._progress.add_task(key[:8], total=None, **_bar())
        self._progress.start()

    def update(self, event: FanOutEvent) -> None:
        result, progress, totals = result_of(event), event.progress, event.totals
        key = key_of(result)
        if key not in self._tasks and len(self._tasks) < self.MAX_ROWS:
            label = key[:8] if event.channel_id else f"operation {key[:8]}"
            label = f"chunk {key}" if event.items else label  # by its items, as in the summary
            self._tasks[key] = self._progress.add_task(label, total=None, **_bar())
        if (task := self._tasks.get(key)) is not None:
            if progress is None:  # an error before any operation
                self._set(task, None, _bar(status=_status(result)))
            else:
                op = progress.operation
                rows = (op.processed_rows, op.estimated_total_rows)
                fields = _bar(*rows, progress.rows_per_second, progress.eta, _status(result))
                self._set(task, progress.fraction, fields)
            if totals.channels > self.MAX_ROWS and result.outcome is Outcome.COMPLETED:
                # Make room for channels still running; the summary lists this one.
                self._progress.update(task, visible=False)
                del self._tasks[key]
        if totals.channels > 1:
            done = f"{totals.finished}/{totals.channels} done"
            estimate = totals.estimated_total_rows + totals.estimated_unsubmitted_rows  # all rows
            fields = _bar(totals.processed_rows, estimate, totals.rows_per_second, totals.eta, done)
            noun = "channels" if event.channel_id else self._noun
            fields |= {"description": f"all {totals.channels} {noun}", "visible": True}
            self._set(self._total, totals.fraction, fields)

    def _set(self, task: TaskID, fraction: float | None, fields: dict[str, Any]) -> None:
        total, done = (None, 0) if fraction is None else (1000, round(fraction * 1000))
        self._progress.update(task, total=total, completed=done, **fields)

    def stop(self) -> None:
        self._progress.stop()  # rich's own stop does nothing once stopped, or if never started

    def summary(self, report: Report) -> None:
        print_summary(self.console, report, limit=30)


def make_display(*, json_lines: bool) -> Display:
    """NDJSON with ``--json``; a live display on a terminal; plain lines otherwise."""
    out = sys.stdout
    if json_lines:
        return JsonDisplay(out)
    terminal = False
    with contextlib.suppress(ValueError):  # closed
        terminal = out.isatty() and os.environ.get("TERM", "") != "dumb"
    return RichDisplay(Console(file=out, force_terminal=True)) if terminal else PlainDisplay(out)
