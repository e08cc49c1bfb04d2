"""Showing progress: a ``rich`` live display on a terminal, plain lines otherwise, NDJSON with
``--json``. All three take the same calls: ``start``, ``update`` per event, ``stop``,
``summary``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from .._fanout import FanOutEventKind
from ._outcome import Outcome, Row, Summary, Totals, describe

__all__ = ["Display", "JsonDisplay", "PlainDisplay", "RichDisplay", "make_display"]

Kind = FanOutEventKind
_TERMINAL_KINDS = (Kind.COMPLETED, Kind.FAILED, Kind.ERROR)


class Display(Protocol):
    def start(self, rows: list[Row], header: dict[str, Any], intro: Iterable[str] = ()) -> None:
        """Begin: ``header`` describes the run (NDJSON ``start``), ``intro`` is for people."""

    def update(self, kind: FanOutEventKind, row: Row, totals: Totals) -> None: ...

    def stop(self) -> None:
        """End the live part (idempotent); the summary comes after."""

    def summary(self, summary: Summary) -> None: ...


def make_display(*, json_lines: bool, out: TextIO | None = None) -> Display:
    """NDJSON with ``--json``; a live display when ``out`` is a terminal; plain lines otherwise."""
    out = sys.stdout if out is None else out
    if json_lines:
        return JsonDisplay(out)
    if _is_terminal(out):
        return RichDisplay(Console(file=out, force_terminal=True))
    return PlainDisplay(out)


def _is_terminal(out: TextIO) -> bool:
    try:
        return out.isatty() and os.environ.get("TERM", "") != "dumb"
    except ValueError:  # closed
        return False


# -- formatting ------------------------------------------------------------------------------


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
        return "-"
    return format_duration(eta.total_seconds()) if eta.total_seconds() >= 1 else "<1s"


def format_percent(fraction: float | None) -> str:
    return "" if fraction is None else f" ({fraction:.0%})"


def short(identifier: str | None) -> str:
    if not identifier:
        return "-"
    return identifier[:8] + "…" if len(identifier) > 9 else identifier


def _estimate(value: int | None) -> str:
    return "?" if value is None else str(value)


# -- NDJSON ----------------------------------------------------------------------------------


class JsonDisplay:
    """One JSON object per line: ``start``, a ``progress`` per event, then ``summary``."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def _write(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._out.flush()

    def start(self, rows: list[Row], header: dict[str, Any], intro: Iterable[str] = ()) -> None:
        self._write({"type": "start", **header})

    def update(self, kind: FanOutEventKind, row: Row, totals: Totals) -> None:
        self._write(
            {
                "type": "progress",
                "event": kind.value,
                "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                **row.to_json(),
                "totals": totals.to_json(),
            }
        )

    def stop(self) -> None:
        pass

    def summary(self, summary: Summary) -> None:
        self._write(summary.to_json())


# -- plain lines -----------------------------------------------------------------------------


class PlainDisplay:
    """One line per change, ``key=value`` fields: easy to read in a CI log and to grep."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._many = False

    def _print(self, line: str = "") -> None:
        self._out.write(line + "\n")
        self._out.flush()

    def start(self, rows: list[Row], header: dict[str, Any], intro: Iterable[str] = ()) -> None:
        self._many = len(rows) > 1
        for line in intro:
            self._print(line)

    def update(self, kind: FanOutEventKind, row: Row, totals: Totals) -> None:
        parts = [f"{kind.value:<9}"]
        if row.channel_id is not None:
            parts.append(f"channel={row.channel_id}")
        if row.operation_id is not None:
            parts.append(f"operation={row.operation_id}")
        if kind is Kind.ERROR and row.error is not None and row.outcome == Outcome.ERROR:
            parts.append(f"error: {describe(row.error)}")
            self._print(" ".join(parts))
        else:
            parts.append(f"status={row.status}")
            rows = f"rows={row.processed_rows}/{_estimate(row.estimated_total_rows)}"
            parts.append(rows + format_percent(row.fraction))
            if kind in _TERMINAL_KINDS:
                parts.append(f"updated={row.success_count} errors={row.error_count}")
                if row.outcome == Outcome.TIMEOUT:
                    parts.append("timed-out")
                elif row.duration_seconds is not None:
                    parts.append(f"duration={format_duration(row.duration_seconds)}")
            else:
                if row.rows_per_second is not None:
                    parts.append(f"rate={row.rows_per_second:.0f}/s")
                if row.eta is not None:
                    parts.append(f"eta={format_eta(row.eta)}")
            self._print(" ".join(parts))
        if self._many and kind in _TERMINAL_KINDS:
            self._print(_totals_line(totals))

    def stop(self) -> None:
        pass

    def summary(self, summary: Summary) -> None:
        self._print()
        skip = 1 if summary.command == "status" else 0  # no channel column
        headers = ["channel", "operation", "status", "rows", "updated", "errors", "duration"]
        headers = headers[skip:] + [header for _, header in summary.columns]
        table = [headers]
        for row in summary.rows:
            cells = _summary_cells(row)[skip:]
            extra = summary.values.get(row.key, {})
            cells += [str(extra.get(name, "")) for name, _ in summary.columns]
            table.append(cells)
        widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
        for line in table:
            padded = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            self._print("  ".join(padded).rstrip())
        self._print(_summary_line(summary))
        for note in summary.notes:
            self._print(note)
        if summary.resume and summary.outcome == "submitted":
            self._print("follow with:")
            for command in summary.resume:
                self._print(f"  {command}")


def _totals_line(totals: Totals) -> str:
    parts = [
        "total    ",
        f"finished={totals.finished}/{totals.channels}",
        f"completed={totals.completed} failed={totals.failed} errored={totals.errored}",
        f"rows={totals.processed_rows}/{totals.estimated_total_rows}"
        + format_percent(totals.fraction),
    ]
    if totals.rows_per_second is not None:
        parts.append(f"rate={totals.rows_per_second:.0f}/s")
    return " ".join(parts)


def _summary_cells(row: Row) -> list[str]:
    status = row.outcome or row.status
    if row.outcome == Outcome.ERROR and row.error is not None:
        code = row.error.code or (row.error.status and f"HTTP {row.error.status}") or "error"
        status = f"error ({code})"
    return [
        row.channel_id or "-",
        row.operation_id or "-",
        status,
        f"{row.processed_rows}/{_estimate(row.estimated_total_rows)}",
        str(row.success_count),
        str(row.error_count),
        format_duration(row.duration_seconds),
    ]


def _summary_line(summary: Summary) -> str:
    t = summary.totals
    if summary.command == "status" and len(summary.rows) == 1:
        row = summary.rows[0]
        return (
            f"{summary.outcome}: operation {row.operation_id}: {row.processed_rows}/"
            f"{_estimate(row.estimated_total_rows)} rows, {row.success_count} updated, "
            f"{row.error_count} errors (exit {summary.exit_code})"
        )
    what = f"{summary.action} on " if summary.action else ""
    noun = "channel" if summary.command != "status" else "operation"
    plural = "" if t.channels == 1 else "s"
    return (
        f"{summary.outcome}: {what}{t.channels} {noun}{plural}: {t.completed} completed, "
        f"{t.failed} failed, {t.errored} errored; {t.processed_rows} rows processed "
        f"in {format_duration(t.elapsed_seconds)} (exit {summary.exit_code})"
    )


# -- rich ------------------------------------------------------------------------------------

_STATUS_STYLE = {
    "pending": "dim",
    "queued": "yellow",
    "processing": "cyan",
    "completed": "green",
    "failed": "bold red",
    "error": "bold red",
    "timeout": "bold yellow",
}


class _RowsColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        done = int(task.fields.get("rows_done", 0))
        total = task.fields.get("rows_total")
        shown = "?" if total is None else f"{int(total):,}"
        return Text(f"{done:,}/{shown} rows", style="progress.download")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate")
        text = "- rows/s" if rate is None else f"{float(rate):,.0f} rows/s"
        return Text(text, style="progress.data.speed")


class _EtaColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"ETA {task.fields.get('eta', '-')}", style="progress.remaining")


class _StatusColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        status = str(task.fields.get("status", ""))
        return Text(status, style=_STATUS_STYLE.get(status.split(" ")[0], ""))


class RichDisplay:
    """A live progress bar per operation (up to ``MAX_ROWS`` at once) and, with many
    channels, an overall bar on top; a summary table at the end."""

    MAX_ROWS = 12

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=None),
            TextColumn("{task.percentage:>3.0f}%"),
            _RowsColumn(),
            _RateColumn(),
            _EtaColumn(),
            _StatusColumn(),
            console=console,
            refresh_per_second=10,
            expand=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._visible: list[str] = []
        self._total: TaskID | None = None
        self._count = 0
        self._started = False

    def start(self, rows: list[Row], header: dict[str, Any], intro: Iterable[str] = ()) -> None:
        for line in intro:
            self.console.print(line, highlight=False, soft_wrap=True)
        self._count = len(rows)
        if self._count > 1:
            self._total = self._progress.add_task(
                f"[bold]all {self._count} channels", total=None, **_fields(None)
            )
        for row in rows[: self.MAX_ROWS]:
            self._show(row)
        self._progress.start()
        self._started = True

    def _show(self, row: Row) -> None:
        if row.channel_id is not None:
            label = f"channel {short(row.channel_id)}"
        else:
            label = f"operation {short(row.operation_id or row.key)}"
        task = self._progress.add_task(label, total=None, **_fields(row))
        self._tasks[row.key] = task
        self._visible.append(row.key)

    def update(self, kind: FanOutEventKind, row: Row, totals: Totals) -> None:
        if row.key not in self._tasks and len(self._visible) < self.MAX_ROWS:
            self._show(row)
        task = self._tasks.get(row.key)
        if task is not None:
            self._set(task, row.fraction, _fields(row))
            if (
                row.finished
                and self._count > self.MAX_ROWS
                and row.outcome == Outcome.COMPLETED
                and row.key in self._visible
            ):
                # Make room for channels still running; the summary lists this one.
                self._progress.update(task, visible=False)
                self._visible.remove(row.key)
        if self._total is not None:
            status = (
                f"{totals.finished}/{totals.channels} done"
                + (f", {totals.failed} failed" if totals.failed else "")
                + (f", {totals.errored} errored" if totals.errored else "")
            )
            self._set(
                self._total,
                totals.fraction,
                {
                    "rows_done": totals.processed_rows,
                    "rows_total": totals.estimated_total_rows,
                    "rate": totals.rows_per_second,
                    "eta": format_eta(totals.eta),
                    "status": status,
                },
            )

    def _set(self, task: TaskID, fraction: float | None, fields: dict[str, Any]) -> None:
        if fraction is None:
            self._progress.update(task, total=None, completed=0, **fields)
        else:
            self._progress.update(task, total=1000, completed=round(fraction * 1000), **fields)

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._progress.refresh()
            self._progress.stop()

    def summary(self, summary: Summary) -> None:
        table = Table(show_edge=False, header_style="bold")
        skip = 1 if summary.command == "status" else 0  # no channel column
        # On a narrow terminal the ids give up width first (cut with an ellipsis; the full
        # ones are in --json output and the resume commands), never the numbers.
        for name in ("channel", "operation")[skip:]:
            table.add_column(name, overflow="ellipsis", min_width=10)
        table.add_column("status", no_wrap=True, min_width=9)
        for name in ("rows", "updated", "errors", "duration"):
            table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
        for _, header in summary.columns:
            table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
        shown = summary.rows
        hidden = 0
        limit = 30
        if len(shown) > limit:
            not_ok = [r for r in shown if r.outcome != Outcome.COMPLETED]
            ok = [r for r in shown if r.outcome == Outcome.COMPLETED]
            shown = not_ok + ok[: max(0, limit - len(not_ok))]
            hidden = len(summary.rows) - len(shown)
        for row in shown:
            cells = _summary_cells(row)
            status = cells[2]
            extra = summary.values.get(row.key, {})
            table.add_row(
                *cells[skip:2],
                Text(status, style=_STATUS_STYLE.get(status.split(" ")[0], "")),
                *cells[3:],
                *(str(extra.get(name, "")) for name, _ in summary.columns),
            )
        self.console.print()
        self.console.print(table)
        if hidden:
            self.console.print(f"  … and {hidden} more channels, all completed")
        style = "bold green" if summary.exit_code == 0 else "bold red"
        self.console.print(Text(_summary_line(summary), style=style))
        for note in summary.notes:
            self.console.print(note, highlight=False)
        if summary.resume and summary.outcome == "submitted":
            self.console.print("follow with:")
            for command in summary.resume:
                self.console.print(f"  {command}", highlight=False)


def _fields(row: Row | None) -> dict[str, Any]:
    if row is None:
        return {"rows_done": 0, "rows_total": None, "rate": None, "eta": "-", "status": ""}
    status = row.outcome or row.status
    if row.outcome == Outcome.ERROR and row.error is not None:
        status = f"error {row.error.code or row.error.status or ''}".strip()
    return {
        "rows_done": row.processed_rows,
        "rows_total": row.estimated_total_rows,
        "rate": row.rows_per_second,
        "eta": format_eta(row.eta),
        "status": status,
    }
