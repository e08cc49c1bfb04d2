"""The CLI's pure pieces, in memory: exit-code order, filters, redaction, error lines."""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime, timedelta

import pytest

from knock_async import NotFoundError, PollTimeoutError
from knock_async.cli._args import ExitCode, aware_datetime
from knock_async.cli._commands import restricts
from knock_async.cli._outcome import Outcome, Row, error_lines, worst
from knock_async.cli._run import Redactor


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([], ExitCode.OK),
        ([ExitCode.OK, ExitCode.OK], ExitCode.OK),
        ([ExitCode.OK, ExitCode.TIMEOUT], ExitCode.TIMEOUT),
        ([ExitCode.TIMEOUT, ExitCode.FAILED], ExitCode.FAILED),
        ([ExitCode.FAILED, ExitCode.API_ERROR, ExitCode.TIMEOUT], ExitCode.API_ERROR),
    ],
)
def test_the_worst_outcome_decides(codes: list[ExitCode], expected: ExitCode) -> None:
    """The exit code for many channels: 3 over 1 over 4 over 0."""
    assert worst(codes) is expected


@pytest.mark.parametrize(
    ("filters", "restricting"),
    [
        ({}, False),
        ({"archived": "include"}, False),
        ({"trigger_data": "{}"}, False),
        ({"archived": "include", "trigger_data": " {} "}, False),
        ({"archived": "exclude"}, True),
        ({"has_tenant": False}, True),
        ({"older_than": datetime(2024, 1, 1, tzinfo=UTC)}, True),
        ({"trigger_data": '{"a": 1}'}, True),
    ],
)
def test_which_filters_make_a_delete_safe(filters: dict[str, object], restricting: bool) -> None:
    """Only a filter that can leave messages out counts: `--archived include` and an empty
    `--trigger-data` match every message."""
    assert restricts(filters) is restricting


def test_dates_need_an_offset() -> None:
    """ISO 8601 with an offset is accepted (`Z` too); a naive one is refused, suggesting one."""
    assert aware_datetime("2024-01-31T10:00:00Z") == datetime(2024, 1, 31, 10, tzinfo=UTC)
    assert aware_datetime("2024-01-31T10:00:00+02:00").utcoffset() == timedelta(hours=2)
    with pytest.raises(argparse.ArgumentTypeError, match="no UTC offset"):
        aware_datetime("2024-01-31T10:00:00")


def test_the_redactor_hides_secrets_in_text_and_log_records() -> None:
    """A known secret is replaced in text and in formatted log records."""
    redactor = Redactor()
    redactor.add("sk_secret_123")
    assert redactor.text("Bearer sk_secret_123!") == "Bearer [REDACTED]!"
    record = logging.LogRecord(
        "knock_async", logging.DEBUG, __file__, 1, "key=%s", ("sk_secret_123",), None
    )
    assert redactor.filter(record)
    assert record.getMessage() == "key=[REDACTED]"


def test_identical_errors_on_many_channels_are_one_line() -> None:
    """The same error on several channels is one stderr line with a count; a timeout is a line
    per operation with its resume command."""
    rows = []
    for n in range(3):
        row = Row(key=f"c{n}", channel_id=f"c{n}", outcome=Outcome.ERROR, status="error")
        row.error = NotFoundError("No channel.", status=404, code="resource_missing")
        rows.append(row)
    late = Row(key="c9", channel_id="c9", operation_id="op9", outcome=Outcome.TIMEOUT)
    late.error = PollTimeoutError("late", progress=None, operation_id="op9")
    lines = error_lines([*rows, late], what="channel")
    assert len(lines) == 2
    assert lines[0].startswith("knock-async: error: 3 channels (c0 and 2 more): HTTP 404")
    assert lines[1].startswith("knock-async: timeout: channel c9: operation op9")
    assert lines[1].endswith("`knock-async status op9 --watch`")


def test_emulator_channel_types_match_the_emulator() -> None:
    """`emulator --channel-type` offers exactly the emulator's channel types (the parser keeps
    its own list so that parsing arguments does not import the emulator)."""
    from knock_async.cli._args import build_parser
    from knock_async.testing import ChannelType

    parser = build_parser()
    args = parser.parse_args(["emulator", "--channel-type", "sms"])
    assert args.channel_type == "sms"
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    emulator = subparsers.choices["emulator"]
    action = next(a for a in emulator._actions if a.dest == "channel_type")
    assert list(action.choices or ()) == [t.value for t in ChannelType]


def test_tracker_totals_follow_every_event() -> None:
    """The tracker's running totals equal a fresh count over the rows after each event."""
    from knock_async import BulkOperation
    from knock_async import FanOutEventKind as Kind
    from knock_async._convert import structure_operation
    from knock_async._progress import observe
    from knock_async.cli._outcome import Tracker
    from tests._support import operation

    def op(n: int, **changes: object) -> BulkOperation:
        return structure_operation(operation(id=f"op-{n}", **changes))

    rows = [Row(key=f"c{n}", channel_id=f"c{n}") for n in range(3)]
    tracker = Tracker(rows, clock=lambda: 10.0)
    at = datetime(2025, 1, 1, tzinfo=UTC)
    events = [
        (Kind.SUBMITTED, "c0", observe(op(0), at)),
        (Kind.SUBMITTED, "c1", observe(op(1, estimated_total_rows=50), at)),
        (Kind.PROGRESS, "c0", observe(op(0, status="processing", processed_rows=400), at)),
        (Kind.ERROR, "c2", None),
        (Kind.COMPLETED, "c1", observe(op(1, status="completed", processed_rows=40), at)),
    ]
    for kind, key, progress in events:
        tracker.apply(
            kind, key, progress, NotFoundError("no", status=404) if progress is None else None
        )
        fresh = Tracker(list(tracker.rows.values()), clock=lambda: 10.0)
        assert tracker.totals() == fresh.totals()
    totals = tracker.totals()
    assert (totals.submitted, totals.completed, totals.errored) == (2, 1, 1)
    assert (totals.processed_rows, totals.estimated_total_rows) == (440, 1040)
    assert tracker.all_submitted()
