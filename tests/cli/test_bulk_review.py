"""What a new user met in ``knock-async bulk`` (issue 25's review): after Ctrl-C, the line
where the input stops being sent (the run itself: test_bulk's Ctrl-C test); totals that agree
with their percentage; chunk bars named as in the summary; an invalid JSON line's real column;
a missing file or a directory said as such; an empty file; and a neutral word for what a
non-message operation did."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import attrs
import pytest
from rich.console import Console

from knock_async import FanOutEventKind, FanOutSummary, FanOutTotals
from knock_async.cli._display import PlainDisplay, RichDisplay
from knock_async.cli._items_file import OPERATIONS, _read, read_items, unsent
from knock_async.cli._outcome import Report
from tests.cli._clitools import Cli, EmulatorThread, cli_env, report_of
from tests.cli.test_bulk import clock, fast, paced, write
from tests.cli.test_items_file import refusal
from tests.cli.test_terminal import _event, _plain

__all__ = ["clock", "fast", "paced"]  # fixtures: test_bulk's paced emulator and its clock
IDENTIFY, DELETE = OPERATIONS["users.identify"], OPERATIONS["users.delete"]


def test_the_line_of_an_item_counts_blank_lines_headers_and_multiline_records(
    tmp_path: Path,
) -> None:
    """NDJSON skips blank lines; a CSV's header is line 1 and a quoted cell may span lines:
    the line given is where the item starts, as its bad-line message would name it."""
    ndjson = write(tmp_path, "u.ndjson", '{"id": "a"}\n\n\n{"id": "b"}\n{"id": "c"}\n')
    assert [line for line, _ in _read(ndjson, "ndjson", IDENTIFY)] == [1, 4, 5]
    csv = write(tmp_path, "u.csv", 'id,name\na,"A\nA"\nb,B\n')
    assert [line for line, _ in _read(csv, "csv", IDENTIFY)] == [2, 4]


def test_a_csvs_rest_keeps_its_header(tmp_path: Path) -> None:
    """Interrupted before any item was sent, a CSV's rest starts at its first row, after its
    header line, which the command printing the rest keeps; an empty file is said as such."""
    path = write(tmp_path, "my users.csv", "id,name\na,A\n")
    summary = FanOutSummary(results=(), totals=_totals())
    assert unsent(path, IDENTIFY, None, 1, summary, True) == (
        f"items from 0 on were not sent (or got no answer); to send them from line 2 of {path}, "
        f"pipe `(head -n 1 '{path}'; tail -n +2 '{path}')` into the same command with --file - "
        "--format csv"
    )
    assert unsent(path, IDENTIFY, None, 0, summary, False) == (
        f"--file {path} held no items: nothing was sent"
    )


def _totals() -> FanOutTotals:
    return FanOutTotals(
        channels=10, submitted=2, completed=2, failed=0, errored=0, processed_rows=2000,
        estimated_total_rows=2000, rows_per_second=500.0, eta=timedelta(seconds=16),
        unsubmitted=8, estimated_unsubmitted_rows=8000,
    )  # fmt: skip


def test_totals_count_the_unsent_rows_as_their_percentage_does() -> None:
    """Piped and on a terminal, the totals' rows are done / (estimated + unsent's estimate):
    2,000 of 10,000 is 20%, never `2000/2000 (20%)`."""
    event = attrs.evolve(
        _event("c", "o", kind=FanOutEventKind.COMPLETED, processed=1000, estimate=1000,
               status="completed"),
        channel_id=None, totals=_totals(),
    )  # fmt: skip
    out = io.StringIO()
    PlainDisplay(out).update(event)
    total = out.getvalue().splitlines()[-1]
    assert "rows=2000/10000 (20%)" in total, total
    console = Console(width=120, record=True, file=io.StringIO(), force_terminal=True)
    display = RichDisplay(console)
    display.start({"command": "bulk"}, (), ())
    display.update(event)
    display.stop()
    text = console.export_text()
    assert "2.0k/10.0k" in text[text.rindex("all 10 chunks") :].splitlines()[0]


def test_a_chunks_bar_is_named_by_its_items_as_in_the_summary() -> None:
    """On a terminal, the bar of a chunk's operation is labelled `chunk 1000-1999` (its items,
    which the library's event carries, as the summary's rows are); the overall bar counts
    chunks."""
    console = Console(width=80, record=True, file=io.StringIO(), force_terminal=True)
    display = RichDisplay(console)
    display.start({"command": "bulk"}, (), ())
    event = attrs.evolve(
        _event("c", "op-2", processed=10, estimate=1000), channel_id=None, items=range(1000, 2000)
    )
    display.update(event)
    display.update(event)
    display.stop()
    text = console.export_text()
    assert text.splitlines()[-1].startswith("chunk 1000-1999 "), text
    assert "all 3 chunks " in text


def test_an_invalid_json_line_names_its_real_column(tmp_path: Path) -> None:
    """`{"id": "broken", ` (cut after the comma) is invalid at column 18, the line's end: the
    newline left on the line must not make it `column 1` (of a second line)."""
    error = refusal(write(tmp_path, "u.ndjson", '{"id": "ok"}\n{"id": "broken", \n'))
    assert error.line == 2
    assert error.reason.startswith("invalid JSON (")
    assert error.reason.endswith(", column 18)")


@pytest.mark.parametrize(("name", "why"), [("users.txt", "No such file or directory"),
                                           ("", "Is a directory")])  # fmt: skip
def test_a_missing_file_is_missing_whatever_its_extension(
    tmp_path: Path, name: str, why: str
) -> None:
    """A file that is not there, or a directory, is said as such, not as a format to give (an
    extension that says nothing is a problem only once the file is there)."""
    from knock_async.cli._args import UsageError

    path = str(tmp_path / name) if name else str(tmp_path)
    with pytest.raises(UsageError) as caught:
        list(read_items(path, DELETE))
    assert str(caught.value) == f"cannot read --file {path}: {why}"


@pytest.mark.parametrize(("name", "text"), [("ids.csv", "id\n"), ("ids.ndjson", "\n")])
def test_an_empty_file_is_0_chunks_and_said_on_stderr(
    paced: EmulatorThread, fast: Cli, tmp_path: Path, name: str, text: str
) -> None:
    """A CSV with its header only, or an NDJSON file with no item: `0 chunks` as every bulk
    run counts, exit 0 (nothing to do), and stderr says the file held no items."""
    path = write(tmp_path, name, text)
    result = fast("bulk", "users.delete", "--file", path, env=cli_env(paced.base_url))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("completed: users.delete on 0 chunks: ")
    assert result.stderr == f"knock-async: --file {path} held no items: nothing was sent\n"


def test_what_a_non_message_operation_did_is_not_called_updated() -> None:
    """`status` of a users.identify operation says `rows succeeded`, and a chunk table heads
    its column `succeeded`; a message-status update keeps `updated`."""
    done = _event("c", "o", kind=FanOutEventKind.COMPLETED, processed=2, estimate=2,
                  status="completed", completed_at="2024-05-22T12:00:04Z")  # fmt: skip
    assert done.progress is not None
    renamed = attrs.evolve(done.progress.operation, name="users.identify")
    identify = attrs.evolve(
        done, channel_id=None, progress=attrs.evolve(done.progress, operation=renamed)
    )
    status = report_of([identify], command="status", action=None, outcome="completed")
    assert _plain(status)[0].startswith("completed: operation o: 2 rows succeeded, 0 errors")
    message = report_of([attrs.evolve(done, channel_id=None)], command="status", action=None,
                        outcome="completed")  # fmt: skip
    assert "2 rows updated" in _plain(message)[0]
    results = tuple(attrs.evolve(r, items=range(2)) for r in status.results * 2)
    chunks = attrs.evolve(status, command="bulk", action="users.identify",
                          summary=attrs.evolve(status.summary, results=results))  # fmt: skip
    assert isinstance(chunks, Report)
    header = next(line for line in _plain(chunks) if line.startswith("chunk"))
    assert header.split()[:6] == ["chunk", "status", "rows", "succeeded", "errors", "time"]
