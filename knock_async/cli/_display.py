"""Rendering the library's events: a ``rich`` live display on a terminal, plain lines
otherwise, NDJSON with ``--json``. All three take the same calls: ``start`` (``header`` is the
NDJSON ``start`` object, ``intro`` lines for people), ``update`` per ``FanOutEvent``, ``stop``
(the end of the live part; idempotent) and ``summary`` (a ``Report``)."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.constrain import Constrain
from rich.padding import PaddingDimensions
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Column, Table
from rich.text import Text

from .._fanout import FanOutEvent, FanOutEventKind
from .._models import BulkOperation
from ._outcome import (
    Report,
    duration_seconds,
    operation_of,
    outcome,
    plural,
    progress_json,
    report_json,
)
from ._wrap import for_people, prose

__all__ = ["JsonDisplay", "PlainDisplay", "RichDisplay", "abbreviate", "make_display"]

Kind = FanOutEventKind
_STYLE = {
    "pending": "dim",
    "queued": "yellow",
    "processing": "cyan",
    "completed": "green",
    "failed": "bold red",
    "error": "bold red",
    "timeout": "bold yellow",
}


def abbreviate(value: float | None) -> str:
    """A count in at most about six characters: ``950``, ``12.3k``, ``4.5M``, ``1.0e+22``."""
    if value is None:
        return "?"
    if value < 1000:
        return f"{value:.0f}"
    for unit in "kMBT":
        value /= 1000
        if value < 99.95:
            return f"{value:.1f}{unit}"
        if value < 999.5:
            return f"{value:.0f}{unit}"
    return f"{value * 1e12:.1e}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def format_eta(eta: timedelta | None) -> str:
    if eta is None:
        return "?"
    return format_duration(eta.total_seconds()) if eta.total_seconds() >= 1 else "<1s"


def _percent(fraction: float | None) -> str:
    return "" if fraction is None else f" ({fraction:.0%})"


def _status(event: FanOutEvent | None) -> str:
    """The status shown for one key: its outcome once ended, else the API's status."""
    ended, op = outcome(event), operation_of(event)
    if ended == "error" and event is not None and event.error is not None:
        return f"error {event.error.status or ''}".strip()
    return ended or ("pending" if op is None else op.status.value)


def _rows(op: BulkOperation | None) -> str:
    return "0/?" if op is None else f"{op.processed_rows}/{op.estimated_total_rows}"


def say(console: Console, line: str) -> None:
    """A line for people at the console's width (``for_people``)."""
    for text in for_people(line, console.width):
        console.print(text, highlight=False, markup=False, soft_wrap=True)


# -- lines: NDJSON and plain -----------------------------------------------------------------


class _Lines:
    """A display that writes whole lines to a stream (a pipe, a file, a log): nothing live.
    ``channels``: its keys are channel ids (else the operation id ``status`` follows)."""

    def __init__(self, out: TextIO, *, channels: bool) -> None:
        self._out, self._channels, self._started = out, channels, time.monotonic()

    def _print(self, line: str = "") -> None:
        self._out.write(line + "\n")
        self._out.flush()

    def stop(self) -> None:
        pass


class JsonDisplay(_Lines):
    """One JSON object per line: ``start``, a ``progress`` per event, then ``summary``."""

    def _write(self, record: dict[str, Any]) -> None:
        self._print(json.dumps(record, separators=(",", ":")))

    def start(self, keys: list[str], header: dict[str, Any], intro: Iterable[str] = ()) -> None:
        self._write({"type": "start", **header})

    def update(self, event: FanOutEvent) -> None:
        elapsed = time.monotonic() - self._started
        self._write(progress_json(event, elapsed, channels=self._channels))

    def summary(self, report: Report) -> None:
        self._write(report_json(report))


class PlainDisplay(_Lines):
    """One line per change, ``key=value`` fields: easy to read in a CI log and to grep."""

    def start(self, keys: list[str], header: dict[str, Any], intro: Iterable[str] = ()) -> None:
        for line in intro:
            self._print(line)

    def update(self, event: FanOutEvent) -> None:
        op, ended, progress = operation_of(event), outcome(event), event.progress
        fields: dict[str, object] = {"channel": event.channel_id} if self._channels else {}
        if op is not None or not self._channels:  # status: the key is the operation id
            fields["operation"] = event.channel_id if op is None else op.id
        if ended == "error" and event.error is not None:
            # The error itself is one line on stderr, said once (with what to do about it).
            fields["status"] = "error"
        else:
            fraction = None if progress is None else progress.fraction
            fields.update(status=_status(event), rows=_rows(op) + _percent(fraction))
            if ended is None and progress is not None:
                if progress.rows_per_second is not None:
                    fields["rate"] = f"{progress.rows_per_second:.0f}/s"
                fields["eta"] = format_eta(progress.eta)
            elif op is not None and self._channels:  # status: in the summary line
                fields.update(updated=op.success_count, errors=op.error_count)
                if ended != "timeout":
                    fields["duration"] = format_duration(duration_seconds(op))
        self._print(" ".join([f"{event.kind.value:<9}", *(f"{k}={v}" for k, v in fields.items())]))
        totals = event.totals
        if totals.channels > 1 and event.kind in (Kind.COMPLETED, Kind.FAILED, Kind.ERROR):
            rate = "" if totals.rows_per_second is None else f" rate={totals.rows_per_second:.0f}/s"
            self._print(
                f"total     finished={totals.finished}/{totals.channels} "
                f"completed={totals.completed} failed={totals.failed} errored={totals.errored} "
                f"rows={totals.processed_rows}/{totals.estimated_total_rows}"
                f"{_percent(totals.fraction)}{rate}"
            )

    def summary(self, report: Report) -> None:
        # Wide enough that nothing wraps: a log or a pipe has no width. A table pads its last
        # column, which a log does not need.
        buffer = io.StringIO()
        print_summary(Console(file=buffer, width=10_000, color_system=None), report)
        for line in buffer.getvalue().splitlines():
            self._print(line.rstrip())


# -- the summary, for plain lines and rich alike ---------------------------------------------


def print_summary(console: Console, report: Report, *, limit: int | None = None) -> None:
    """The summary: per channel a row of exact numbers under its id's first 8 characters, then
    the full ids (both never fit 80 columns beside the numbers), then one line for the run."""
    if report.channels:
        keys = list(report.keys)
        if limit is not None and len(keys) > limit:  # the channels not completed first
            keys = sorted(keys, key=lambda k: outcome(report.latest.get(k)) == "completed")
            keys = keys[:limit]
        console.print()
        console.print(_numbers(console, report, keys))
        if len(keys) < len(report.keys):
            console.print(f"  … and {plural(len(report.keys) - len(keys), 'more channel')}")
        console.print()
        ids = Table("channel", "operation", box=None, header_style="bold", pad_edge=False)
        for key in keys:
            ids.add_row(key, report.operation_id(key) or "-")
        console.print(ids)
    style = "bold green" if report.code == 0 else "bold red"
    console.print(Text(prose(_summary_line(report), console.width), style=style), soft_wrap=True)
    for line in report.notes:
        say(console, line)
    if report.outcome in ("submitted", "queued", "processing") and report.resume:
        console.print("follow with:")
        for command in report.resume:
            say(console, f"  {command}")


def _numbers(console: Console, report: Report, keys: list[str]) -> Table:
    """The table of numbers, exact: with thousands separators if they fit the console's width,
    else without, else with one space between columns (the counts are what it reports)."""
    layouts = ((",", (0, 1)), ("", (0, 1)), ("", (0, 1, 0, 0)))
    unbounded = console.options.update_width(10_000)  # a measure is clamped to the width
    for separator, padding in layouts:
        table = _number_table(report, keys, separator, padding)
        if console.measure(table, options=unbounded).maximum <= console.width:
            break
    return table


def _number_table(
    report: Report, keys: list[str], separator: str, padding: PaddingDimensions
) -> Table:
    def count(value: object) -> str:
        return format(value, separator or "d") if isinstance(value, int) else str(value)

    headers = ["channel", "status", "rows", "updated", "errors", "time"]
    table = Table(box=None, header_style="bold", pad_edge=False, padding=padding)
    for index, header in enumerate(headers + [header for _, header in report.columns]):
        table.add_column(header, justify="right" if index >= 2 else "left", no_wrap=True)
    for key in keys:
        event = report.latest.get(key)
        op = operation_of(event)
        status, extra = _status(event), report.values.get(key, {})
        table.add_row(
            key[:8],
            Text(status, style=_STYLE.get(status.split(" ")[0], "")),
            *(count(0 if op is None else getattr(op, name)) for name in _COUNTS),
            format_duration(duration_seconds(op)),
            *(count(extra.get(name, "")) for name, _ in report.columns),
        )
    return table


_COUNTS = ("processed_rows", "success_count", "error_count")


def _summary_line(report: Report) -> str:
    code = f"(exit {int(report.code)})"
    if not report.channels:  # status: the one operation
        op = operation_of(report.latest.get(report.keys[0]))
        if op is None:
            return f"{report.outcome}: operation {report.keys[0]} {code}"
        took = duration_seconds(op)
        return (
            f"{report.outcome}: operation {op.id}: {plural(op.success_count, 'row')} updated, "
            f"{plural(op.error_count, 'error')}"
            + ("" if took is None else f", in {format_duration(took)}")
            + f" {code}"
        )
    what = f"{report.action} on " if report.action else ""
    timeouts = report.count("timeout")
    return (
        f"{report.outcome}: {what}{plural(len(report.keys), 'channel')}: "
        f"{report.count('completed')} completed, {report.count('failed')} failed, "
        f"{report.count('error')} errored"
        + (f", {timeouts} timed out" if timeouts else "")
        + f"; {plural(report.totals.processed_rows, 'row')} processed in "
        f"{format_duration(report.elapsed)} {code}"
    )


# -- rich ------------------------------------------------------------------------------------


def _bar(
    done: int = 0,
    total: int | None = None,
    rate: float | None = None,
    eta: timedelta | None = None,
    status: str = "pending",
) -> dict[str, Any]:
    """The fields of one bar, numbers abbreviated (``12.3k/50.0k  1.2k/s``)."""
    return {
        "rows": f"{abbreviate(done)}/{abbreviate(total)}",
        "rate": f"{abbreviate(rate)}/s",
        "eta": f"ETA {format_eta(eta)}",
        "status": f"[{_STYLE.get(status.split(' ')[0], 'default')}]{status}[/]",
    }


_FIELDS = (
    ("rows", "progress.download"),
    ("rate", "progress.data.speed"),
    ("eta", "progress.remaining"),
    ("status", ""),
)


def _text(template: str, style: str = "") -> TextColumn:
    """Text never wrapped: each bar stays on one line."""
    return TextColumn(template, style=style, table_column=Column(no_wrap=True))


class _Bars(Progress):
    """Rich's progress display kept 3 columns short of the terminal's width: a Ctrl-C echoed as
    ``^C`` after the last line then wraps nothing, so the redraw stays in place."""

    def get_renderable(self) -> RenderableType:
        return _Narrower(super().get_renderable())


class _Narrower:
    def __init__(self, renderable: RenderableType) -> None:
        self._renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Constrain(self._renderable, width=max(20, options.max_width - 3))


class RichDisplay:
    """A live progress bar per operation (up to ``MAX_ROWS`` at once) and, with many
    channels, an overall bar on top; a summary table at the end."""

    MAX_ROWS = 12

    def __init__(self, console: Console, *, channels: bool) -> None:
        self.console = console
        self._channels = channels
        self._progress = _Bars(
            _text("{task.description}"),
            BarColumn(bar_width=None),
            _text("{task.percentage:>3.0f}%"),
            *(_text(f"{{task.fields[{name}]}}", style) for name, style in _FIELDS),
            console=console,
            refresh_per_second=10,
            expand=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._total: TaskID | None = None
        self._live = False

    def start(self, keys: list[str], header: dict[str, Any], intro: Iterable[str] = ()) -> None:
        for line in intro:
            say(self.console, line)
        if len(keys) > 1:
            label = f"all {len(keys)} channels"
            self._total = self._progress.add_task(label, total=None, **_bar(status=""))
        for key in keys[: self.MAX_ROWS]:
            self._show(key)
        self._progress.start()
        self._live = True

    def _show(self, key: str) -> None:
        label = key[:8] if self._channels else f"operation {key[:8]}"
        self._tasks[key] = self._progress.add_task(label, total=None, **_bar())

    def update(self, event: FanOutEvent) -> None:
        key, progress, totals = event.channel_id or "", event.progress, event.totals
        if key not in self._tasks and len(self._tasks) < self.MAX_ROWS:
            self._show(key)
        task = self._tasks.get(key)
        if task is not None and progress is None:  # an error before any operation
            self._set(task, None, _bar(status=_status(event)))
        elif task is not None and progress is not None:
            op = progress.operation
            rows = (op.processed_rows, op.estimated_total_rows)
            fields = _bar(*rows, progress.rows_per_second, progress.eta, _status(event))
            self._set(task, progress.fraction, fields)
        if task is not None and totals.channels > self.MAX_ROWS and outcome(event) == "completed":
            # Make room for channels still running; the summary lists this one.
            self._progress.update(task, visible=False)
            del self._tasks[key]
        if self._total is not None:
            done = f"{totals.finished}/{totals.channels} done"
            fields = _bar(
                totals.processed_rows,
                totals.estimated_total_rows,
                totals.rows_per_second,
                totals.eta,
                done,
            )
            self._set(self._total, totals.fraction, fields)

    def _set(self, task: TaskID, fraction: float | None, fields: dict[str, Any]) -> None:
        total, done = (None, 0) if fraction is None else (1000, round(fraction * 1000))
        self._progress.update(task, total=total, completed=done, **fields)

    def stop(self) -> None:
        if self._live:
            self._live = False
            self._progress.stop()

    def summary(self, report: Report) -> None:
        print_summary(self.console, report, limit=30)


def make_display(*, json_lines: bool, channels: bool) -> JsonDisplay | PlainDisplay | RichDisplay:
    """NDJSON with ``--json``; a live display on a terminal; plain lines otherwise.
    ``channels``: the keys are channel ids (else the operation ``status`` follows)."""
    out = sys.stdout
    if json_lines:
        return JsonDisplay(out, channels=channels)
    try:
        terminal = out.isatty() and os.environ.get("TERM", "") != "dumb"
    except ValueError:  # closed
        terminal = False
    if terminal:
        return RichDisplay(Console(file=out, force_terminal=True), channels=channels)
    return PlainDisplay(out, channels=channels)
