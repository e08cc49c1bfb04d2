"""``knock-async bulk-update`` against the emulator: in this process (``cli``), and as a real
process where signals or a terminal are the point."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from knock_async.testing import BULK_UPDATE_ROUTE, KnockEmulator
from tests._support import operation as operation_body
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

PROGRESS_FIELDS = {
    "type",
    "event",
    "time",
    "channel_id",
    "operation_id",
    "status",
    "outcome",
    "processed_rows",
    "estimated_total_rows",
    "success_count",
    "error_count",
    "fraction",
    "rows_per_second",
    "eta_seconds",
    "duration_seconds",
    "error",
    "totals",
}
TOTALS_FIELDS = {
    "channels",
    "submitted",
    "completed",
    "failed",
    "errored",
    "timed_out",
    "processed_rows",
    "estimated_total_rows",
    "unsubmitted",
    "estimated_unsubmitted_rows",
    "fraction",
    "rows_per_second",
    "eta_seconds",
    "elapsed_seconds",
}
CHANNEL = "00000000-0000-4000-8000-000000000001"
# Poll sooner than the default 1 s, so that the tests do not wait for the first poll.
FAST = ("--poll-interval", "0.2")
SUMMARY_FIELDS = {
    "type",
    "command",
    "action",
    "outcome",
    "exit_code",
    "duration_seconds",
    "totals",
    "operations",
    "resume",
}


def ndjson(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line parsed as one JSON object (fails on any line that is not)."""
    records = [json.loads(line) for line in stdout.splitlines()]
    assert all(isinstance(record, dict) for record in records)
    return records


def summary_of(stdout: str) -> dict[str, Any]:
    records = ndjson(stdout)
    assert records[-1]["type"] == "summary"
    return records[-1]


def test_json_many_channels_reports_every_snapshot_and_matches_the_store(
    emulator: EmulatorThread,
    cli: Cli,
) -> None:
    """With --json over three channels (the fan-out): a start object, progress objects with the
    documented fields, and a summary whose counts match what the emulator's store now holds."""
    channels = [emulator.channel(300, seed=n) for n in range(3)]
    cutoff = datetime.now(UTC) - timedelta(days=7)

    def matching(emu: KnockEmulator) -> dict[str, set[str]]:
        return {
            c: {
                m.id
                for m in emu.messages(c)
                if m.read_at is not None and m.archived_at is None and m.inserted_at < cutoff
            }
            for c in channels
        }

    expected = emulator.call(matching)
    result = cli(
        "bulk-update",
        "archive",
        *channels,
        "--engagement-status",
        "read",
        "--archived",
        "exclude",
        "--older-than",
        cutoff.isoformat(),
        "--json",
        env=cli_env(emulator.base_url),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    records = ndjson(result.stdout)
    start, *progress, summary = records
    assert start["type"] == "start"
    assert start["channels"] == channels
    assert start["filters"]["engagement_status"] == "read"
    assert progress
    for record in progress:
        assert set(record) == PROGRESS_FIELDS
        assert set(record["totals"]) == TOTALS_FIELDS
        assert record["type"] == "progress"
        assert record["event"] in {"submitted", "progress", "completed"}
        assert record["channel_id"] in channels
    submitted = {r["channel_id"] for r in progress if r["event"] == "submitted"}
    completed = {r["channel_id"] for r in progress if r["event"] == "completed"}
    assert submitted == completed == set(channels)

    assert set(SUMMARY_FIELDS) <= set(summary)
    assert summary["outcome"] == "completed"
    assert summary["exit_code"] == 0
    assert summary["resume"] == []
    assert summary["totals"]["completed"] == 3
    archived_now = emulator.call(
        lambda emu: {c: {m.id for m in emu.messages(c) if m.archived_at} for c in channels}
    )
    for operation in summary["operations"]:
        channel = operation["channel_id"]
        assert operation["outcome"] == "completed"
        assert operation["success_count"] == len(expected[channel])
        assert expected[channel] <= archived_now[channel]
        assert emulator.operation(operation["operation_id"]).status == "completed"


def test_plain_output_is_one_line_per_change_then_a_summary(
    emulator: EmulatorThread, cli: Cli
) -> None:
    """Without a terminal, each change is one plain key=value line, then a summary table."""
    channel = emulator.channel(150)
    result = cli("bulk-update", "read", channel, *FAST, env=cli_env(emulator.base_url))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"submitted channel={channel} operation=")
    events = [line.split()[0] for line in lines if "channel=" in line]
    assert events[0] == "submitted"
    assert events[-1] == "completed"
    assert "\x1b[" not in result.stdout  # no terminal control codes in a pipe
    assert any(line.startswith("completed: read on 1 channel") for line in lines)


def test_a_failed_operation_exits_1_with_a_clear_line(emulator: EmulatorThread, cli: Cli) -> None:
    """An operation that ends `failed` gives exit 1 and one stderr line saying so."""
    channel = emulator.channel(200)
    emulator.fail_next_operation(channel, after_rows=20)
    result = cli("bulk-update", "read", channel, "--json", *FAST, env=cli_env(emulator.base_url))
    assert result.returncode == 1
    summary = summary_of(result.stdout)
    assert summary["outcome"] == "failed"
    assert summary["operations"][0]["status"] == "failed"
    assert summary["operations"][0]["error_count"] == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"knock-async: failed: channel {channel}: operation ")
    assert "failed after 21/" in line


def test_with_many_channels_the_worst_outcome_decides(emulator: EmulatorThread, cli: Cli) -> None:
    """Completed + failed gives 1; adding a channel Knock does not know (404) gives 3."""
    ok, failing = emulator.channel(50), emulator.channel(50)
    emulator.fail_next_operation(failing, after_rows=5)
    env = cli_env(emulator.base_url)
    result = cli("bulk-update", "seen", ok, failing, "--json", *FAST, env=env)
    assert result.returncode == 1, result.stderr
    outcomes = {o["channel_id"]: o["outcome"] for o in summary_of(result.stdout)["operations"]}
    assert outcomes == {ok: "completed", failing: "failed"}

    unknown = "00000000-0000-4000-8000-00000000abcd"
    emulator.fail_next_operation(failing, after_rows=5)
    result = cli("bulk-update", "seen", ok, failing, unknown, "--json", *FAST, env=env)
    assert result.returncode == 3
    summary = summary_of(result.stdout)
    assert summary["outcome"] == "error"
    by_channel = {o["channel_id"]: o for o in summary["operations"]}
    assert by_channel[unknown]["error"]["code"] == "resource_missing"
    assert by_channel[unknown]["error"]["status"] == 404
    assert by_channel[failing]["outcome"] == "failed"


@pytest.mark.parametrize("key", ["bogus_key_Zq81", "pk_test_public_Zq81"])
def test_a_refused_key_exits_3_without_showing_it(
    emulator: EmulatorThread, key: str, cli: Cli
) -> None:
    """A key Knock refuses (unknown, or a public pk_ key): exit 3, one stderr line with the
    HTTP status, Knock's error and the advice to use a secret sk_ key; the key itself appears
    nowhere. (Whether Knock answers 401 or 403 is Knock's business, not checked here.)"""
    channel = emulator.channel(10)
    result = cli("bulk-update", "read", channel, env=cli_env(emulator.base_url, key=key))
    assert result.returncode == 3
    (line,) = result.stderr.splitlines()
    assert re.match(rf"knock-async: error: channel {channel}: HTTP 40[13] \w+", line), line
    assert "secret (sk_...) key" in line
    assert key not in result.stdout + result.stderr


def test_an_unknown_channel_exits_3_naming_the_code(emulator: EmulatorThread, cli: Cli) -> None:
    """A channel Knock does not know: 404 `resource_missing`, exit 3, advice on the id, said
    once on stderr; stdout's lines say only that the channel ended in an error, and carry no
    trailing spaces."""
    unknown = "00000000-0000-4000-8000-0000000000ff"
    result = cli("bulk-update", "read", unknown, env=cli_env(emulator.base_url))
    assert result.returncode == 3
    (line,) = result.stderr.splitlines()
    assert "HTTP 404 resource_missing" in line
    assert "check the channel id" in line
    lines = result.stdout.splitlines()
    assert f"error     channel={unknown} status=error" in lines
    assert "404" not in "".join(x for x in lines if not x.startswith(unknown[:8]))
    assert "error:" not in " ".join(lines[:-1])
    assert ["channel", "operation"] in [x.split() for x in lines]
    assert all(x == x.rstrip() for x in lines)


def test_an_unreachable_server_exits_3(cli: Cli) -> None:
    """Nothing listening at the base URL: a connection error, exit 3, advice on the URL."""
    result = cli(
        "bulk-update",
        "read",
        "00000000-0000-4000-8000-000000000001",
        env=cli_env("http://127.0.0.1:9"),
    )
    assert result.returncode == 3
    (line,) = result.stderr.splitlines()
    assert "check the network and --base-url (now http://127.0.0.1:9)" in line


def test_a_naive_date_is_a_usage_error_and_sends_nothing(
    emulator: EmulatorThread, cli: Cli
) -> None:
    """A date-time without a UTC offset: exit 2, one stderr line naming the option and showing
    how to add an offset, and no request sent."""
    channel = emulator.channel(5)
    before = emulator.request_count()
    result = cli(
        "bulk-update",
        "archive",
        channel,
        "--older-than",
        "2024-01-01",
        env=cli_env(emulator.base_url),
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "knock-async bulk-update: error: argument --older-than: '2024-01-01' has no UTC offset; "
        "add one, e.g. 2024-01-01T00:00:00Z"
    )
    assert result.stdout == ""
    assert emulator.request_count() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--newer-than", "2024-01-01T10:00"], "argument --newer-than: '2024-01-01T10:00' has no"),
        (["--older-than", "last tuesday"], "argument --older-than: 'last tuesday' is not an ISO"),
        (["--trigger-data", "[1, 2]"], "argument --trigger-data: must be a JSON object"),
        (
            ["--trigger-data", "{oops"],
            "argument --trigger-data: must be a JSON object, got a string that is not JSON",
        ),
        (["--trigger-data", '{"a": NaN}'], "argument --trigger-data: must be strict JSON"),
        (["--archived", "maybe"], "argument --archived: invalid choice: 'maybe'"),
        (["--concurrency", "0"], "argument --concurrency: must be >= 1"),
        (["--timeout", "-1"], "argument --timeout: must be a number of seconds > 0"),
    ],
)
def test_other_bad_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    """Each bad option value: exit 2 and one stderr line naming the option (in-process)."""
    code, out, err = in_process(
        "bulk-update", "archive", CHANNEL, *args, capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 2
    (line,) = err.splitlines()
    assert message in line
    assert out == ""


def test_delete_without_a_filter_needs_yes(emulator: EmulatorThread, cli: Cli) -> None:
    """`delete` with no filter is refused with exit 2 and a clear warning, sending nothing,
    unless --yes is given; with a filter it runs; with --yes every message is deleted."""
    channel = emulator.channel(40)
    env = cli_env(emulator.base_url)
    before = emulator.request_count()
    result = cli("bulk-update", "delete", channel, env=env, input="delete\n")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line == (
        f"knock-async: error: `delete` with no filter deletes EVERY message in channel {channel}; "
        "nothing was sent. Pass --yes to confirm, or add a filter (e.g. --older-than "
        "2024-01-01T00:00:00Z)"
    )
    assert emulator.request_count() == before
    assert len(emulator.messages(channel)) == 40

    filtered = cli("bulk-update", "delete", channel, "--workflow", "x", *FAST, env=env)
    assert filtered.returncode == 0, filtered.stderr
    assert len(emulator.messages(channel)) == 40

    result = cli("bulk-update", "delete", channel, "--yes", *FAST, env=env)
    assert result.returncode == 0, result.stderr
    assert emulator.messages(channel) == []


@pytest.mark.parametrize(
    "filters", [["--archived", "include"], ["--trigger-data", "{}"], ["--trigger-data", "{ }"]]
)
def test_filters_that_match_everything_do_not_make_a_delete_safe(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, filters: list[str]
) -> None:
    """`--archived include` or an empty `--trigger-data` still select every message, so
    `delete` with only those still needs --yes (in-process)."""
    code, _, err = in_process(
        "bulk-update", "delete", CHANNEL, *filters, capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 2
    assert "deletes EVERY message" in err


def test_poll_timeout_exits_4_with_the_resume_command(emulator: EmulatorThread, cli: Cli) -> None:
    """An operation still running at --timeout: exit 4, and stderr says how to resume."""
    channel = emulator.channel(100)
    emulator.stick_next_operation(channel)
    result = cli(
        "bulk-update", "read", channel, "--timeout", "1.2", "--json", env=cli_env(emulator.base_url)
    )
    assert result.returncode == 4
    summary = summary_of(result.stdout)
    operation_id = summary["operations"][0]["operation_id"]
    assert summary["outcome"] == "timeout"
    assert (summary["totals"]["timed_out"], summary["totals"]["errored"]) == (1, 0)
    assert summary["resume"] == [f"knock-async status {operation_id} --watch"]
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"knock-async: timeout: channel {channel}: operation {operation_id}")
    assert f"knock-async status {operation_id} --watch" in line
    assert "did not finish within --timeout (last seen" in line  # not the stall limit's words


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
@pytest.mark.parametrize(
    ("channels", "sigint_ignored"), [(1, False), (2, False), (1, True)], ids=["1", "2", "bg"]
)
@pytest.mark.subprocess
def test_ctrl_c_stops_polling_and_prints_how_to_resume(
    emulator: EmulatorThread, channels: int, sigint_ignored: bool
) -> None:
    """SIGINT mid-poll: exit 130, stderr lists each operation with its `status --watch`
    command, and the operations are left running server-side. Also when the command was
    started with SIGINT ignored (a background job of a script): `kill -INT` still stops it."""
    ids = [emulator.channel(100, seed=n) for n in range(channels)]
    for channel in ids:
        emulator.stick_next_operation(channel, after_rows=30)
    env = cli_env(emulator.base_url)
    process = start_knock_async("bulk-update", "read", *ids, env=env, sigint_ignored=sigint_ignored)
    output = Output(process)
    try:
        lines = output.until(
            lambda got: sum(line.startswith("submitted") for line in got) == channels
        )
        process.send_signal(signal.SIGINT)
        stdout, stderr = output.rest()
    finally:
        stop(process)
    assert process.returncode == 130, stderr
    operations = [
        part.split("=", 1)[1]
        for line in lines
        if line.startswith("submitted")
        for part in line.split()
        if part.startswith("operation=")
    ]
    assert len(operations) == channels
    assert "interrupted" in stdout  # the summary's outcome
    assert stderr.startswith("knock-async: interrupted: stopped following;")
    for operation_id in operations:
        assert f"  knock-async status {operation_id} --watch" in stderr.splitlines()
        # Still running server-side (queued or processing: the emulator queues it briefly).
        assert not emulator.operation(operation_id).is_terminal
    assert "Traceback" not in stderr


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
@pytest.mark.subprocess
def test_a_second_ctrl_c_stops_at_once(emulator: EmulatorThread) -> None:
    """Two Ctrl-C in quick succession: the second stops the command at once, still with
    exit 130 and a line saying so, never a traceback. If the second comes only after the
    command has said everything and returned, the process ends by the signal itself, which
    a shell reports as 130 too."""
    ids = [emulator.channel(100, seed=n) for n in range(2)]
    for channel in ids:
        emulator.stick_next_operation(channel, after_rows=30)
    process = start_knock_async("bulk-update", "read", *ids, env=cli_env(emulator.base_url))
    output = Output(process)
    try:
        output.until(lambda got: sum(line.startswith("submitted") for line in got) == 2)
        process.send_signal(signal.SIGINT)
        time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        _, stderr = output.rest()
    finally:
        stop(process)
    assert process.returncode in (130, -signal.SIGINT), stderr
    assert "knock-async: interrupted" in stderr
    assert "Traceback" not in stderr


def test_debug_shows_the_request_log_and_tracebacks_but_never_the_key(
    emulator: EmulatorThread,
    cli: Cli,
) -> None:
    """--debug logs each request (method, URL, status) and the error's traceback; the API key
    appears in neither stdout nor stderr."""
    channel = emulator.channel(20)
    env = cli_env(emulator.base_url)
    result = cli("bulk-update", "read", channel, "--debug", *FAST, env=env)
    assert result.returncode == 0, result.stderr
    assert f"POST {emulator.base_url}/v1/channels/{channel}/messages/bulk/read -> 200" in (
        result.stderr
    )
    assert "GET " in result.stderr
    assert API_KEY not in result.stdout + result.stderr

    unknown = "00000000-0000-4000-8000-0000000000ee"
    result = cli("--debug", "bulk-update", "read", unknown, env=env)
    assert result.returncode == 3
    assert "Traceback" in result.stderr
    assert "NotFoundError" in result.stderr
    assert API_KEY not in result.stdout + result.stderr


def test_the_key_is_never_taken_on_the_command_line(emulator: EmulatorThread, cli: Cli) -> None:
    """`--api-key` is refused (exit 2) without echoing the value; it is not mistaken for
    `--api-key-file` either."""
    channel = emulator.channel(5)
    secret = "sk_live_typed_on_the_command_line"
    result = cli(
        "bulk-update", "read", channel, "--api-key", secret, env=cli_env(emulator.base_url)
    )
    assert result.returncode == 2
    assert "KNOCK_API_KEY" in result.stderr
    assert secret not in result.stdout + result.stderr


def test_key_from_a_file(emulator: EmulatorThread, tmp_path: Path, cli: Cli) -> None:
    """--api-key-file reads the key, whitespace stripped, with KNOCK_API_KEY unset."""
    channel = emulator.channel(5)
    key_file = tmp_path / "knock.key"
    key_file.write_text(f"  {API_KEY}\n")
    env = cli_env(emulator.base_url, key=None)
    result = cli("bulk-update", "read", channel, "--api-key-file", str(key_file), *FAST, env=env)
    assert result.returncode == 0, result.stderr


def test_no_key_or_an_unreadable_key_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No key at all: exit 2 saying where a key comes from; an unreadable or empty key file:
    exit 2 naming it (in-process)."""
    code, _, err = in_process(
        "bulk-update", "read", CHANNEL, key=None, capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 2
    assert err.startswith("knock-async: error: no API key: set KNOCK_API_KEY")

    missing = tmp_path / "nope.key"
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    for path, message in ((missing, "cannot read --api-key-file"), (empty, "is empty")):
        code, _, err = in_process(
            "bulk-update", "read", CHANNEL, "--api-key-file", str(path),
            key=None, capsys=capsys, monkeypatch=monkeypatch,
        )  # fmt: skip
        assert code == 2
        assert message in err
        assert str(path) in err


def test_channels_from_stdin(emulator: EmulatorThread, cli: Cli) -> None:
    """--channels-file - reads channel ids from stdin, comments and blank lines ignored."""
    first, second = emulator.channel(10), emulator.channel(10)
    env = cli_env(emulator.base_url)
    text = f"# channels to read\n{first}\n\n{second}  # the second\n"
    result = cli(
        "bulk-update", "read", "--channels-file", "-", "--json", *FAST, env=env, input=text
    )
    assert result.returncode == 0, result.stderr
    assert summary_of(result.stdout)["totals"]["completed"] == 2


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        ([CHANNEL, "--channels-file", "-"], CHANNEL, f"channel {CHANNEL} is listed twice"),
        (["--channels-file", "-"], "\n oops\n", "line 2: 'oops' is not a channel id"),
        ([], "", "no channel: give CHANNEL_ID arguments or --channels-file PATH"),
        (["--channels-file", "/nonexistent/channels"], "", "cannot read --channels-file"),
    ],
)
def test_usage_errors_about_channels(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    stdin: str,
    message: str,
) -> None:
    """A duplicate, a bad id in the file, no channel at all, an unreadable file: exit 2 and a
    line saying which (in-process)."""
    code, _, err = in_process(
        "bulk-update", "read", *args, stdin=stdin, capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 2
    assert message in err


def test_no_wait_submits_and_prints_how_to_follow(emulator: EmulatorThread, cli: Cli) -> None:
    """--no-wait exits 0 once every update is submitted, listing the `status --watch` commands."""
    channels = [emulator.channel(10, seed=n) for n in range(2)]
    for channel in channels:
        emulator.stick_next_operation(channel)
    result = cli(
        "bulk-update", "unread", *channels, "--no-wait", "--json", env=cli_env(emulator.base_url)
    )
    assert result.returncode == 0, result.stderr
    summary = summary_of(result.stdout)
    assert summary["outcome"] == "submitted"
    ids = [o["operation_id"] for o in summary["operations"]]
    assert summary["resume"] == [f"knock-async status {i} --watch" for i in ids]
    assert all(o["outcome"] is None for o in summary["operations"])


def test_a_plain_http_base_url_off_loopback_is_refused(cli: Cli) -> None:
    """The key must not cross the network in clear text: http:// on another host is a usage
    error (exit 2) before anything is sent, in the command line's words: the loopback-only
    rule and the flag that overrides it (not a Python argument)."""
    result = cli(
        "bulk-update",
        "read",
        "00000000-0000-4000-8000-000000000001",
        "--base-url",
        "http://knock.example.com",
        env=cli_env(),
    )
    assert result.returncode == 2
    assert "http:// is only allowed for loopback hosts" in result.stderr
    assert "--allow-insecure-http" in result.stderr
    assert "allow_insecure_http" not in result.stderr
    assert os.linesep not in result.stderr.rstrip(os.linesep)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.parametrize("ctrl_c", [False, True], ids=["no", "ctrl-c"])
@pytest.mark.subprocess
def test_on_a_terminal_delete_without_a_filter_asks_first(
    emulator: EmulatorThread, ctrl_c: bool
) -> None:
    """On a terminal, `delete` with no filter asks for the word `delete` (the question
    wrapped between words at 80 columns, the channel id whole); any other answer sends nothing
    and exits 2. Ctrl-C at the question ends the command there (exit 130), and sends nothing
    even if `delete` is typed after it."""
    import fcntl
    import pty
    import select
    import struct
    import subprocess
    import termios
    import time

    import pyte

    channel = emulator.channel(10)
    before = emulator.request_count()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "knock_async", "bulk-update", "delete", channel],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=cli_env(emulator.base_url, TERM="xterm"),
        close_fds=True,
    )
    os.close(slave)
    output = b""
    answered = False
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            output += chunk
            if not answered and b"Type 'delete' to confirm:" in output:
                if ctrl_c:
                    process.send_signal(signal.SIGINT)
                    time.sleep(0.2)
                os.write(master, b"delete\n" if ctrl_c else b"no\n")
                answered = True
        returncode = process.wait(timeout=10)
    finally:
        stop(process)
        os.close(master)
    text = output.decode()
    assert answered, text
    screen = pyte.Screen(80, 24)
    pyte.ByteStream(screen).feed(output)
    lines = [line.rstrip() for line in screen.display]
    # wrapped between words at 80 columns: the channel id whole on one line
    assert any(line.endswith("deletes EVERY message in channel") for line in lines), lines
    assert any(line.strip().startswith(channel) for line in lines), lines
    if ctrl_c:
        assert returncode == 130, text
        assert "interrupted" in text
    else:
        assert returncode == 2
        assert "not confirmed; nothing was sent" in text
    assert emulator.request_count() == before
    assert len(emulator.messages(channel)) == 10


# The largest count a response may carry (larger ones are a ResponseValidationError).
ABSURD_ROWS = 2**63 - 1


def _absurd_operation(emu: KnockEmulator, channel: str) -> None:
    """The next update on ``channel`` reports an estimate of 2**63-1 rows, then finishes."""
    operation_id = str(uuid.uuid4())
    path = f"/v1/bulk_operations/{operation_id}"

    def body(**changes: Any) -> dict[str, Any]:
        return operation_body(
            id=operation_id, progress_path=path, estimated_total_rows=ABSURD_ROWS, **changes
        )

    emu.faults.add("POST", BULK_UPDATE_ROUTE, status=200, body=body(status="processing"))
    emu.faults.add("GET", path, status=200, body=body(status="processing", processed_rows=5000))
    done = body(status="completed", processed_rows=9000, completed_at="2024-05-22T12:01:00Z")
    emu.faults.add("GET", path, status=200, body=done)


@pytest.mark.parametrize("output", ["--json", "--plain"])
def test_an_absurd_estimate_shows_an_unknown_eta_instead_of_crashing(
    emulator: EmulatorThread,
    output: str,
    cli: Cli,
) -> None:
    """estimated_total_rows=2**63-1 puts the ETA past what a duration can hold: the run goes on
    to exit 0 with the ETA shown as unknown (null in NDJSON, `?` in plain lines)."""
    channel = emulator.channel(5)
    emulator.call(lambda emu: _absurd_operation(emu, channel))
    args = ["--json"] if output == "--json" else []
    result = cli("bulk-update", "read", channel, *args, *FAST, env=cli_env(emulator.base_url))
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr
    if output == "--json":
        (running,) = [r for r in ndjson(result.stdout) if r.get("event") == "progress"]
        assert running["estimated_total_rows"] == ABSURD_ROWS
        assert running["rows_per_second"] is not None
        assert running["eta_seconds"] is None
        assert running["totals"]["eta_seconds"] is None
    else:
        (line,) = [line for line in result.stdout.splitlines() if line.startswith("progress")]
        assert f"rows=5000/{ABSURD_ROWS}" in line
        assert line.endswith(" eta=?")


def test_a_base_url_that_is_not_knocks_api_is_named(emulator: EmulatorThread, cli: Cli) -> None:
    """A wrong base URL whose server answers 404 without Knock's error JSON (here the
    emulator's own unrouted 404, under an extra `/v1`): exit 3 and a line saying this is not
    Knock's API at that URL, not advice about the channel id."""
    channel = emulator.channel(5)
    base_url = f"{emulator.base_url}/v1"
    result = cli("bulk-update", "read", channel, env=cli_env(base_url))
    assert result.returncode == 3
    (line,) = result.stderr.splitlines()
    assert f"this is not Knock's API at {base_url}: check --base-url" in line
    assert "channel id" not in line.split("HTTP 404", 1)[1]


def test_insecure_http_from_the_environment_names_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`KNOCK_BASE_URL=http://example.com`: exit 2 naming the variable and the loopback-only
    rule, before anything is sent (in-process)."""
    code, out, err = in_process(
        "bulk-update", "read", CHANNEL, base_url="http://example.com",
        capsys=capsys, monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith(
        "knock-async: error: KNOCK_BASE_URL http://example.com: http:// is only allowed for "
        "loopback hosts"
    )
    assert out == ""
