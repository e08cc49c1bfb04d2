"""What a person sees: the live display and the summary rendered to 80- and 120-column virtual
terminals (rich's recording console, and a pty read by the ``pyte`` terminal emulator)."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pyte
import pytest
from rich.console import Console

from knock_async import BulkOperation, FanOutEvent, FanOutEventKind, FanOutTotals, PollTimeoutError
from knock_async._convert import structure_operation
from knock_async._progress import observe
from knock_async.cli._display import PlainDisplay, RichDisplay, abbreviate
from knock_async.cli._outcome import Report
from knock_async.cli._wrap import command_lines, prose, terminal_width
from tests._support import operation
from tests.cli._clitools import EmulatorThread, cli_env, report_of, stop

AT = datetime(2025, 1, 1, tzinfo=UTC)
WIDTHS = [80, 120]
FAST = ("--poll-interval", "0.2")


def _event(
    channel: str,
    operation_id: str,
    *,
    kind: FanOutEventKind = FanOutEventKind.PROGRESS,
    processed: int = 12_345,
    estimate: int = 50_000,
    error: PollTimeoutError | None = None,
    **changes: object,
) -> FanOutEvent:
    """A channel's operation seen twice 10 s apart (so it has a rate and an ETA)."""

    def seen(rows: int, **more: object) -> BulkOperation:
        fields = {"status": "processing", "success_count": rows, **more}
        body = operation(
            id=operation_id, processed_rows=rows, estimated_total_rows=estimate, **fields
        )
        return structure_operation(body)

    first = observe(seen(0), AT)
    progress = observe(seen(processed, **changes), AT + timedelta(seconds=10), first)
    totals = FanOutTotals(
        channels=3,
        submitted=3,
        completed=int(kind is FanOutEventKind.COMPLETED),
        failed=0,
        errored=int(kind is FanOutEventKind.ERROR),
        processed_rows=3 * processed,
        estimated_total_rows=3 * estimate,
        rows_per_second=3 * processed / 10,
        eta=timedelta(seconds=30),
    )
    return FanOutEvent(
        kind=kind,
        channel_id=channel,
        operation_id=operation_id,
        progress=progress,
        error=error,
        totals=totals,
    )


def _ids(count: int) -> tuple[list[str], list[str]]:
    return [str(uuid.uuid4()) for _ in range(count)], [str(uuid.uuid4()) for _ in range(count)]


def _console(width: int) -> Console:
    return Console(width=width, record=True, file=io.StringIO(), force_terminal=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_each_progress_bar_is_one_line_with_abbreviated_numbers(width: int) -> None:
    """Counts in the thousands: every bar (the overall one and one per channel) is one line,
    short of the last column, with rows as `12.3k/50.0k` and the rate as `1.2k/s`."""
    channels, operations = _ids(3)
    console = _console(width)
    display = RichDisplay(console)
    display.start({}, (), channels)
    for channel, operation_id in zip(channels, operations, strict=True):
        display.update(_event(channel, operation_id))
    display.stop()
    text = console.export_text()
    screen = text[text.rindex("all 3 channels") :].splitlines()  # the final frame
    assert screen[0].startswith("all 3 channels ")
    assert "37.0k/150k" in screen[0]
    for channel, line in zip(channels, screen[1:], strict=True):
        assert line.startswith(channel[:8])
        assert "12.3k/50.0k" in line
        assert "1.2k/s" in line
        assert line.rstrip().endswith("processing")
    assert all(len(line) <= width - 3 for line in screen)


def _completed(channels: list[str], operations: list[str], **fields: Any) -> Report:
    """A run where every channel's operation completed 1,032 rows in 4 s."""
    latest = [
        _event(c, o, kind=FanOutEventKind.COMPLETED, processed=1032, estimate=1032,
               status="completed", completed_at="2024-05-22T12:00:04Z")
        for c, o in zip(channels, operations, strict=True)
    ]  # fmt: skip
    return report_of(latest, outcome="completed", elapsed=4.2, **fields)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_summary_shows_full_operation_ids(width: int) -> None:
    """The summary never cuts an operation id: each is on the screen in full, beside its full
    channel id, and no line is wider than the terminal."""
    channels, operations = _ids(3)
    report = _completed(channels, operations, command="bulk-update", action="read")
    console = _console(width)
    RichDisplay(console).summary(report)
    screen = console.export_text().splitlines()
    for channel, operation_id in zip(channels, operations, strict=True):
        assert any(channel in line and operation_id in line for line in screen)
    assert all(len(line) <= width for line in screen)
    assert "completed: read on 3 channels: 3 completed, 0 failed" in " ".join(screen)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_demo_table_keeps_its_check_column(width: int) -> None:
    """The demo's extra columns (matched, in store, check) fit beside the numbers."""
    channels, operations = _ids(4)
    report = _completed(
        channels,
        operations,
        command="demo",
        action="archive",
        columns=(("matched", "matched"), ("archived_in_store", "in store"), ("check", "check")),
        values={c: {"matched": 1032, "archived_in_store": 1032, "check": "ok"} for c in channels},
    )
    console = _console(width)
    RichDisplay(console).summary(report)
    screen = console.export_text().splitlines()
    header = next(line for line in screen if line.startswith("channel ") and "check" in line)
    assert header.split() == [
        "channel", "status", "rows", "updated", "errors", "time", "matched", "in", "store", "check"
    ]  # fmt: skip
    rows = [line for line in screen if line.endswith(" ok")]
    assert [line.split()[0] for line in rows] == [c[:8] for c in channels]
    assert all(line.split()[1:] == ["completed", "1,032", "1,032", "0", "4.0s", "1,032",
                                    "1,032", "ok"] for line in rows)  # fmt: skip
    assert all(len(line) <= width for line in screen)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("check", ["ok", "MISMATCH"])
@pytest.mark.parametrize("rows", [123_456, 1_234_567])
def test_the_summary_counts_are_exact_and_fit(width: int, check: str, rows: int) -> None:
    """The summary reports exact counts, never abbreviated, with thousands separators where
    they fit: 6- and 7-digit counts fit beside the demo's check column at 80 columns too."""
    channels, operations = _ids(4)
    errors = rows // 3
    latest = [
        _event(c, o, kind=FanOutEventKind.COMPLETED, processed=rows, estimate=rows,
               status="completed", success_count=rows - errors, error_count=errors,
               completed_at="2024-05-22T12:00:04Z")
        for c, o in zip(channels, operations, strict=True)
    ]  # fmt: skip
    report = report_of(
        latest,
        command="demo",
        action="archive",
        outcome="completed",
        elapsed=4.2,
        columns=(("matched", "matched"), ("archived_in_store", "in store"), ("check", "check")),
        values={c: {"matched": rows, "archived_in_store": rows, "check": check} for c in channels},
    )
    console = _console(width)
    RichDisplay(console).summary(report)
    screen = console.export_text().splitlines()
    assert all(len(line) <= width for line in screen)
    table = [line.split() for line in screen if line.endswith(f" {check}")]
    assert [cells[0] for cells in table] == [c[:8] for c in channels]
    for cells in table:
        numbers = [cells[2], cells[3], cells[4], cells[6], cells[7]]
        assert [int(n.replace(",", "")) for n in numbers] == [
            rows,
            rows - errors,
            errors,
            rows,
            rows,
        ]
        assert cells[8] == check
    if width >= 120:
        assert table[0][2] == f"{rows:,}"


INTRO = [
    "Knock emulator running in-process at http://127.0.0.1:35749 (a generated sk_demo_ key).",
    "Archiving the read messages older than 2026-11-25T14:35:33Z on every channel, as",
    "  knock-async bulk-update archive CHANNEL_ID... --engagement-status read --archived "
    "exclude --older-than 2026-11-25T14:35:33Z",
]
NOTES = (
    "Check against the emulator's store: OK. All 2,574 matching messages are archived, and no "
    "other message changed.",
    "Next: `knock-async emulator` serves the emulator for you to try `knock-async bulk-update` "
    "against it.",
)


def _words(lines: list[str]) -> list[str]:
    return " ".join(line.removesuffix(" \\") for line in lines).split()


@pytest.mark.parametrize("width", WIDTHS)
def test_prose_wraps_between_words_and_commands_stay_copyable(width: int) -> None:
    """The demo's intro and notes, and the run's summary line: every line fits the terminal
    and the text reads word for word as written (no word, id or option cut); the example
    command is continued with ` \\` between its words when it is wider than the terminal."""
    channels, operations = _ids(2)
    report = _completed(channels, operations, command="demo", action="archive", notes=NOTES)
    console = _console(width)
    display = RichDisplay(console)
    display.start({}, INTRO, channels)
    display.stop()
    display.summary(report)
    # (the bars, redrawn in place on a terminal, are recorded one frame after another)
    screen = [line.rstrip() for line in console.export_text().splitlines() if "━" not in line]
    assert all(len(line) <= width for line in screen)
    command = [line for line in screen if line.startswith("  knock-async bulk-update")]
    (start,) = [screen.index(line) for line in command]
    end = next(i for i in range(start, len(screen)) if not screen[i].endswith(" \\"))
    assert _words(screen[start : end + 1]) == INTRO[2].split()
    assert (end > start) is (width < len(INTRO[2]))
    text = _words(screen)
    for line in [
        *INTRO[:2],
        *NOTES,
        "completed: archive on 2 channels: 2 completed, 0 failed, 0 errored;",
    ]:
        words = line.split()
        assert any(text[i : i + len(words)] == words for i in range(len(text))), line


def test_wrapping_never_cuts_a_word() -> None:
    """`prose` breaks only at spaces (never inside `server-side`, an id or a `quoted command`)
    and leaves text alone without a width; `command_lines` continues a command with ` \\`
    within the width."""
    message = (
        "knock-async: interrupted: stopped following; operations already started go on "
        "server-side (Ctrl-C does not cancel them)."
    )
    wrapped = prose(message, 80).splitlines()
    assert all(len(line) <= 80 for line in wrapped)
    assert " ".join(wrapped).split() == message.split()
    assert any(line.endswith("go on") for line in wrapped) or "server-side" in wrapped[0]
    assert prose(message, None) == message
    timeout = (
        "knock-async: timeout: operation 5331d4e5-f9f1-4f47-a2dd-cfe409ee8fee did not finish; "
        "follow it with `knock-async status 5331d4e5-f9f1-4f47-a2dd-cfe409ee8fee --watch`"
    )
    lines = prose(timeout, 80).splitlines()
    assert lines[-1] == "  `knock-async status 5331d4e5-f9f1-4f47-a2dd-cfe409ee8fee --watch`"
    assert " ".join(lines).split() == timeout.split()
    command = "  knock-async status " + "x" * 70 + " --watch"
    lines = command_lines(command, 80)
    assert lines == ["  knock-async status \\", "      " + "x" * 70 + " \\", "      --watch"]
    assert command_lines(command, None) == [command]


def test_a_terminal_width_only_from_a_terminal_with_a_size() -> None:
    """A pipe or a file has no width (one line stays one line); a pseudo-terminal whose size
    was never set has none either (not 0); a sized one has its own."""
    assert terminal_width(io.StringIO()) is None
    master, slave = pty.openpty()
    try:
        with open(slave, "w", closefd=False) as unsized:
            assert terminal_width(unsized) is None
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 80, 0, 0))
            assert terminal_width(unsized) == 80
    finally:
        os.close(slave)
        os.close(master)


def test_abbreviated_numbers() -> None:
    """Counts shrink to a few characters; an absurd one still prints."""
    assert [abbreviate(n) for n in (0, 999, 1000, 12_345, 150_000, 4_500_000, 10**22)] == [
        "0", "999", "1.0k", "12.3k", "150k", "4.5M", "1.0e+22"
    ]  # fmt: skip


def _plain(report: Report) -> list[str]:
    out = io.StringIO()
    PlainDisplay(out).summary(report)
    return out.getvalue().splitlines()


def test_counts_are_grammatical_and_a_timeout_is_not_an_error() -> None:
    """`1 row`, `1 error`, `1 channel`; a --timeout is counted as `timed out`, not `errored`."""
    (channel,), (operation_id,) = _ids(1)
    one = _event(channel, operation_id, kind=FanOutEventKind.COMPLETED, processed=1,
                 estimate=1, status="completed", error_count=1,
                 completed_at="2024-05-22T12:00:04Z")  # fmt: skip
    # status follows an operation by its id: no channel
    status = report_of([attrs.evolve(one, channel_id=None)], command="status", action=None,
                       outcome="completed")  # fmt: skip
    assert _plain(status) == [
        f"completed: operation {operation_id}: 1 row updated, 1 error, in 4.0s (exit 0)"
    ]
    late = _event(
        channel,
        operation_id,
        kind=FanOutEventKind.ERROR,
        processed=1,
        error=PollTimeoutError("late", progress=None, operation_id=operation_id),
    )
    timeout = report_of([late], command="bulk-update", action="read", outcome="timeout")
    assert _plain(timeout)[-1] == (
        "timeout: read on 1 channel: 0 completed, 0 failed, 0 errored, 1 timed out; "
        "3 rows processed in 1.0s (exit 4)"
    )


def _read_into(screen_stream: pyte.ByteStream, master: int, done: Callable[[], bool]) -> None:
    """Feed the terminal's output to the emulated screen until ``done()`` or the end."""
    deadline = time.monotonic() + 20
    while not done():
        assert time.monotonic() < deadline, "timed out reading the terminal"
        ready, _, _ = select.select([master], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return
        if not chunk:
            return
        screen_stream.feed(chunk)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.subprocess
def test_ctrl_c_on_an_80_column_terminal_leaves_each_line_once(emulator: EmulatorThread) -> None:
    """Ctrl-C typed at an 80-column terminal (echoed there as `^C`) while three bars run: the
    screen keeps one `all 3 channels` line and one line per bar, then the summary with the
    full operation ids and how to resume each (the message wrapped between words), and the
    command exits 130."""
    channels = [emulator.channel(100, seed=n) for n in range(3)]
    for channel in channels:
        emulator.stick_next_operation(channel, after_rows=30)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 80, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "knock_async", "bulk-update", "read", *channels, *FAST],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=cli_env(emulator.base_url, TERM="xterm-256color"),
        close_fds=True,
    )
    os.close(slave)
    screen = pyte.Screen(80, 50)
    stream = pyte.ByteStream(screen)
    try:
        _read_into(stream, master, lambda: sum("processing" in x for x in screen.display) == 3)
        os.write(master, b"\x03")  # the terminal echoes ^C after the last bar ...
        process.send_signal(signal.SIGINT)  # ... and interrupts its foreground process
        _read_into(stream, master, lambda: False)
        returncode = process.wait(timeout=10)
    finally:
        stop(process)
        os.close(master)
    lines = [line.rstrip() for line in screen.display]
    text = "\n".join(lines)
    assert returncode == 130, text
    assert sum("all 3 channels" in line for line in lines) == 1, text
    for channel in channels:
        # its bar, its table row and its ids row
        assert sum(line.startswith(channel[:8]) for line in lines) == 3, text
    for channel in channels:  # the ids table: the full channel id, then its operation's
        (row,) = [line for line in lines if line.startswith(channel)]
        operation_id = row.split()[1]
        assert uuid.UUID(operation_id)
        assert f"  knock-async status {operation_id} --watch" in lines, text
    # stderr's message, wrapped between words at 80 columns (not `go on se` / `rver-side`)
    message = (
        "knock-async: interrupted: stopped following; operations already started go on "
        "server-side (Ctrl-C does not cancel them)."
    )
    first = next(i for i, line in enumerate(lines) if line.startswith("knock-async: interr"))
    assert " ".join(lines[first : first + 2]).split() == message.split(), text


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.subprocess
def test_a_usage_error_on_an_80_column_terminal_wraps_between_words() -> None:
    """A key file that cannot be read, on an 80-column terminal, with a path whose length puts
    column 80 inside `such`: the one message is wrapped between words (none cut at the edge)
    and reads as written; exit 2."""
    path = "/nonexistent/" + "k" * 13  # "knock-async: error: cannot read --api-key-file " is 47
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "knock_async", "bulk-update", "read", str(uuid.uuid4()),
         "--api-key-file", path],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=cli_env(key=None, TERM="xterm"),
        close_fds=True,
    )  # fmt: skip
    os.close(slave)
    screen = pyte.Screen(80, 24)
    try:
        _read_into(pyte.ByteStream(screen), master, lambda: False)
        returncode = process.wait(timeout=10)
    finally:
        stop(process)
        os.close(master)
    lines = [line.rstrip() for line in screen.display if line.strip()]
    assert returncode == 2, lines
    assert len(lines) == 2, lines
    message = f"knock-async: error: cannot read --api-key-file {path}: No such file or directory"
    assert " ".join(lines).split() == message.split(), lines
