"""``knock-async status OPERATION_ID [--watch]`` against the emulator: in this process (``cli``),
and as a real process where the timing of its output is the point."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from knock_async import PollPolicy
from knock_async._follow import DEFAULT_STALL_TIMEOUT
from knock_async.cli import _commands, _plan
from knock_async.cli._args import parse_args
from knock_async.cli._run import Redactor
from tests.cli._clitools import (
    API_KEY,
    Cli,
    EmulatorThread,
    Output,
    cli_env,
    in_process,
    start_knock_async,
    stop,
)

FAST = ("--poll-interval", "0.2")


def test_status_shows_an_operation_once(emulator: EmulatorThread, cli: Cli) -> None:
    """Without --watch: one snapshot and a summary; exit 0 for a completed operation."""
    channel = emulator.channel(30)
    operation_id = emulator.start_operation(channel, "seen")
    result = cli("status", operation_id, "--json", env=cli_env(emulator.base_url))
    assert result.returncode == 0, result.stderr
    start, snapshot, summary = (json.loads(line) for line in result.stdout.splitlines())
    assert start == {
        "type": "start",
        "command": "status",
        "operation_id": operation_id,
        "watch": False,
    }
    assert snapshot["operation_id"] == operation_id
    assert snapshot["channel_id"] is None
    assert summary["command"] == "status"
    assert summary["operations"][0]["operation_id"] == operation_id


def test_status_of_a_running_operation_exits_0_and_says_how_to_follow(
    emulator: EmulatorThread,
    cli: Cli,
) -> None:
    """A look at a running operation is not a failure: exit 0, outcome `processing`, and the
    `status --watch` command to follow it."""
    channel = emulator.channel(30)
    emulator.stick_next_operation(channel, after_rows=10)
    operation_id = emulator.start_operation(channel)
    result = cli("status", operation_id, "--json", env=cli_env(emulator.base_url))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["outcome"] in ("queued", "processing")
    assert summary["resume"] == [f"knock-async status {operation_id} --watch"]


def test_a_look_is_one_get_at_once(emulator: EmulatorThread, cli: Cli) -> None:
    """Without --watch, `status` sends one GET straight away: no wait first (even with a long
    --poll-interval), no --timeout to run out (a running operation is exit 0, not 4)."""
    channel = emulator.channel(30)
    emulator.stick_next_operation(channel, after_rows=10)
    operation_id = emulator.start_operation(channel)
    before = emulator.request_count()
    result = cli(
        "status",
        operation_id,
        *("--poll-interval", "60", "--timeout", "0.1"),
        env=cli_env(emulator.base_url),
    )
    assert result.returncode == 0, result.stderr
    assert emulator.request_count() - before == 1
    summary = result.stdout.splitlines()[1]
    assert summary.startswith(("processing: operation", "queued: operation")), result.stdout


async def test_a_cancelled_command_is_not_an_interruption(
    emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a Ctrl-C counts as an interruption: a command cancelled by its caller (here by
    `asyncio.timeout`) is cancelled, not reported as `interrupted` with exit 130."""
    channel = emulator.channel(30)
    emulator.stick_next_operation(channel, after_rows=10)
    operation_id = emulator.start_operation(channel)
    monkeypatch.setenv("KNOCK_API_KEY", API_KEY)
    args = parse_args(["status", operation_id, "--watch", "--base-url", emulator.base_url])
    plan = _plan.plan(args)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await _commands.fan_out(plan, Redactor(), debug=False)


def test_status_of_a_failed_operation_exits_1(emulator: EmulatorThread, cli: Cli) -> None:
    """A failed operation: exit 1 and a stderr line saying how far it got."""
    channel = emulator.channel(30)
    emulator.fail_next_operation(channel, after_rows=3)
    operation_id = emulator.start_operation(channel)
    result = cli("status", operation_id, "--watch", *FAST, env=cli_env(emulator.base_url))
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"knock-async: failed: operation {operation_id} failed after 4/")
    again = cli("status", operation_id, env=cli_env(emulator.base_url))
    assert again.returncode == 1


def test_status_of_an_unknown_operation_exits_3(emulator: EmulatorThread, cli: Cli) -> None:
    """An id Knock does not know: 404, exit 3, advice to check the id."""
    result = cli("status", "no-such-operation", env=cli_env(emulator.base_url))
    assert result.returncode == 3
    (line,) = result.stderr.splitlines()
    assert line.startswith("knock-async: error: operation no-such-operation: HTTP 404")
    assert "check the operation id" in line
    assert "--watch" not in result.stdout
    # stdout says once that it ended in an error, and nothing of the error stderr gives.
    assert result.stdout.splitlines() == [
        "error     operation=no-such-operation status=error",
        "error: operation no-such-operation (exit 3)",
    ]


def _changes(lines: list[str]) -> list[str]:
    return [line for line in lines if line.split(" ", 1)[0] in ("progress", "completed")]


@pytest.mark.subprocess
def test_status_watch_follows_to_the_end(manual_emulator: EmulatorThread) -> None:
    """--watch prints a line per change while the operation runs, each with its
    `operation=` field like bulk-update's lines, then exits 0 completed.

    The emulator's clock moves only when the test advances it, after the CLI has printed what
    it saw, so each step of the operation is seen exactly once.
    """
    channel = manual_emulator.channel(100)
    operation_id = manual_emulator.start_operation(channel, "unseen")
    process = start_knock_async(
        "status",
        operation_id,
        "--watch",
        "--poll-interval",
        "0.05",
        env=cli_env(manual_emulator.base_url),
    )
    try:
        output = Output(process)
        steps: list[tuple[str, str]] = []
        for advance in (0.5, 1.0, None):  # 50 of 100 rows, then the rest
            lines = output.until(lambda lines: len(_changes(lines)) > len(steps))
            line = _changes(lines)[-1]
            fields = dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
            assert fields["operation"] == operation_id
            steps.append((line.split()[0], fields["status"] + " " + fields["rows"]))
            if advance is not None:
                manual_emulator.advance(advance)
        stdout, stderr = output.rest()
    finally:
        stop(process)
    assert process.returncode == 0, stderr
    assert steps == [
        ("progress", "processing 0/100"),
        ("progress", "processing 50/100"),
        ("completed", "completed 100/100"),
    ]
    # Then one summary line with what the lines did not say.
    assert stdout.splitlines() == [
        f"completed: operation {operation_id}: 100 rows updated, 0 errors, in 1.0s (exit 0)"
    ]
    assert manual_emulator.operation(operation_id).status == "completed"


def test_status_watch_timeout_exits_4(emulator: EmulatorThread, cli: Cli) -> None:
    """--watch with --timeout on an operation that does not finish: exit 4 and how to resume."""
    channel = emulator.channel(30)
    emulator.stick_next_operation(channel)
    operation_id = emulator.start_operation(channel)
    result = cli(
        "status", operation_id, "--watch", "--timeout", "0.8", *FAST, env=cli_env(emulator.base_url)
    )
    assert result.returncode == 4
    assert f"knock-async status {operation_id} --watch" in result.stderr


@pytest.mark.parametrize("operation_id", ["", ".", "..", "a/b"])
def test_an_id_that_cannot_name_an_operation_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, operation_id: str
) -> None:
    """An id that would change the request's path (empty, `.`, `..`, a `/`): exit 2 and one
    line naming it, before anything is sent (in-process; the base URL is a closed port)."""
    closed = "http://127.0.0.1:9"
    code, out, err = in_process(
        "status", operation_id, base_url=closed, capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 2
    assert err.splitlines() == [f"knock-async: error: {operation_id!r} is not a bulk operation id"]
    assert out == ""


def test_a_look_sends_one_get_even_when_it_fails(emulator: EmulatorThread, cli: Cli) -> None:
    """A look is the first event of `follow_many` from one GET with no error ridden out: a
    503 is reported at once (exit 3, Knock's advice to retry later), after exactly one request
    (the client's retries, or the poller's error budget, would have sent more)."""
    channel = emulator.channel(30)
    emulator.stick_next_operation(channel, after_rows=10)
    operation_id = emulator.start_operation(channel)
    path = f"/v1/bulk_operations/{operation_id}"
    emulator.call(lambda emu: emu.faults.add("GET", path, status=503, times=5))
    before = emulator.request_count()
    result = cli("status", operation_id, "--json", env=cli_env(emulator.base_url))
    assert result.returncode == 3, result.stderr
    assert emulator.request_count() - before == 1
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["operations"][0]["error"]["status"] == 503
    assert "retry later" in result.stderr


def test_status_watch_reports_through_follow_many(emulator: EmulatorThread, cli: Cli) -> None:
    """--watch --json is follow_many's stream: every progress object names the operation (no
    channel: status knows only the id) and carries the stream's totals for one operation, and
    the summary's totals and operation are the library's summary."""
    channel = emulator.channel(300)
    operation_id = emulator.start_operation(channel, "unread")
    result = cli("status", operation_id, "--watch", "--json", *FAST, env=cli_env(emulator.base_url))
    assert result.returncode == 0, result.stderr
    start, *progress, summary = (json.loads(line) for line in result.stdout.splitlines())
    assert start["watch"] is True
    assert progress[-1]["event"] == "completed"
    for record in progress:
        assert (record["operation_id"], record["channel_id"]) == (operation_id, None)
        assert record["totals"]["channels"] == record["totals"]["submitted"] == 1
    assert summary["totals"]["completed"] == 1
    assert summary["totals"]["processed_rows"] == emulator.operation(operation_id).processed_rows
    (operation,) = summary["operations"]
    assert (operation["operation_id"], operation["outcome"]) == (operation_id, "completed")
    assert summary["resume"] == []


@pytest.mark.parametrize(
    "command", [["status", "x", "--watch"], ["bulk-update", "read", str(uuid.uuid4())]]
)
def test_deadlines_and_polls_default_to_the_librarys(command: list[str], cli: Cli) -> None:
    """Without --timeout the CLI leaves the library's deadlines (no total limit, the stall
    deadline), and `--help` says so with the library's numbers, as it does for --poll-interval."""
    plan = _plan.plan(parse_args(command))
    assert "timeout" not in plan.options  # update_many / follow_many get none: their default
    assert plan.connection.client["poll"] is None  # the client's default PollPolicy
    result = cli(command[0], "--help", env=cli_env())
    text = " ".join(result.stdout.split())
    assert f"change for {DEFAULT_STALL_TIMEOUT:g}s is given up" in text
    assert f"(default: {PollPolicy().initial_delay:g}; the waits" in text
