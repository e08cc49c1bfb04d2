"""The CLI's pure pieces, in memory: exit-code order, filters, redaction, error lines."""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime, timedelta

import pytest

from knock_async import (
    FanOutEvent,
    FanOutEventKind,
    FanOutTotals,
    NotFoundError,
    Outcome,
    PollTimeoutError,
)
from knock_async._convert import structure_operation
from knock_async._progress import observe
from knock_async.cli._args import ExitCode, aware_datetime
from knock_async.cli._outcome import error_lines, exit_code, name
from knock_async.cli._plan import restricts
from knock_async.cli._run import Redactor
from tests._support import operation
from tests.cli._clitools import report_of

AT = datetime(2025, 1, 1, tzinfo=UTC)
NO_TOTALS = FanOutTotals(
    channels=1, submitted=1, completed=0, failed=0, errored=1, processed_rows=0,
    estimated_total_rows=0, rows_per_second=None, eta=None,
)  # fmt: skip


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome.COMPLETED, "completed"),
        (Outcome.PENDING, None),
        (Outcome.RUNNING, None),
        (Outcome.TIMED_OUT, "timeout"),
        (Outcome.FAILED, "failed"),
        (Outcome.ERROR, "error"),
    ],
)
def test_the_librarys_outcomes_keep_their_documented_names(
    outcome: Outcome, expected: str | None
) -> None:
    """The NDJSON and the summary name the library's outcomes as the README does: `timeout`
    for `timed_out`, none while an operation has not ended; each ended one has its exit code
    (the worst outcome decides: the library's order is the exit codes' order)."""
    assert name(outcome) == expected
    ended = [o for o in Outcome if name(o) is not None]
    codes = [exit_code(name(o) or "") for o in ended]
    assert codes == [ExitCode.OK, ExitCode.TIMEOUT, ExitCode.FAILED, ExitCode.API_ERROR]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("completed", ExitCode.OK),
        ("submitted", ExitCode.OK),
        ("processing", ExitCode.OK),
        ("failed", ExitCode.FAILED),
        ("error", ExitCode.API_ERROR),
        ("timeout", ExitCode.TIMEOUT),
        ("interrupted", ExitCode.INTERRUPTED),
        ("cancelled", ExitCode.FAILED),  # a status Knock may add one day: not a success
    ],
)
def test_one_table_from_outcome_to_exit_code(name: str, code: ExitCode) -> None:
    """Each outcome has the exit code the README documents."""
    assert exit_code(name) is code


@pytest.mark.parametrize(
    ("filters", "restricting"),
    [
        ({}, False),
        ({"archived": "include"}, False),
        ({"trigger_data": "{}"}, False),
        ({"archived": "include", "trigger_data": " {} "}, False),
        ({"trigger_data": "{ }"}, False),
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
    redactor.secrets.add("sk_secret_123")
    assert redactor.text("Bearer sk_secret_123!") == "Bearer [REDACTED]!"
    record = logging.LogRecord(
        "knock_async", logging.DEBUG, __file__, 1, "key=%s", ("sk_secret_123",), None
    )
    assert redactor.filter(record)
    assert record.getMessage() == "key=[REDACTED]"


def _event(
    kind: FanOutEventKind, key: str, error: Exception | None = None, **changes: object
) -> FanOutEvent:
    progress = None
    if changes:
        progress = observe(structure_operation(operation(**changes)), AT)
    assert error is None or isinstance(error, NotFoundError | PollTimeoutError)
    operation_id = None if progress is None else progress.operation_id
    return FanOutEvent(
        kind=kind,
        channel_id=key,
        operation_id=operation_id,
        progress=progress,
        error=error,
        totals=NO_TOTALS,
    )


def test_identical_errors_on_many_channels_are_one_line() -> None:
    """The same error on several channels is one stderr line with a count; a timeout is a line
    per operation with its resume command, and is not counted as an error."""
    latest = [
        _event(
            FanOutEventKind.ERROR,
            f"c{n}",
            NotFoundError("No channel.", status=404, code="resource_missing"),
        )
        for n in range(3)
    ]
    latest.append(
        _event(
            FanOutEventKind.ERROR,
            "c9",
            PollTimeoutError("late", progress=None, operation_id="op9"),
            id="op9",
            status="processing",
        )
    )
    report = report_of(latest, command="bulk-update", action="read", outcome="error")
    lines = error_lines(report, base_url="https://api.knock.app")
    assert len(lines) == 2
    assert lines[0].startswith("knock-async: timeout: channel c9: operation op9")
    assert lines[0].endswith("`knock-async status op9 --watch`")
    assert lines[1].startswith("knock-async: error: 3 channels (c0 and 2 more): HTTP 404")
    ended = [result.outcome for result in report.results]
    assert (ended.count(Outcome.ERROR), ended.count(Outcome.TIMED_OUT)) == (3, 1)
    assert report.resume == ["knock-async status op9 --watch"]


def test_a_404_that_is_not_knocks_error_json_names_the_base_url() -> None:
    """A 404 without Knock's error code and type is not Knock's API: the line says so and
    names the base URL, instead of blaming the channel id."""
    latest = [_event(FanOutEventKind.ERROR, "c0", NotFoundError("Not Found", status=404))]
    report = report_of(latest, command="bulk-update", action="read", outcome="error")
    (line,) = error_lines(report, base_url="http://127.0.0.1:18080/v1")
    assert "this is not Knock's API at http://127.0.0.1:18080/v1" in line
    assert "--base-url" in line
    assert "channel id" not in line
