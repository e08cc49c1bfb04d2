"""``knock-async emulator`` and ``python -m knock_async.testing``: one front door that serves
the embedded emulator and says how to use it."""

from __future__ import annotations

import argparse
import io
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from knock_async.cli._args import build_parser
from knock_async.testing import ChannelType, KnockEmulator, seeded_channel_id
from knock_async.testing._options import CHANNEL_TYPES, add_arguments
from knock_async.testing._serve import banner
from tests.cli._clitools import Cli, Output, cli_env, knock_async, start_knock_async, stop


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
@pytest.mark.subprocess
def test_emulator_serves_the_seeded_channels_until_ctrl_c() -> None:
    """It prints its base URL and the seeded channel ids; `bulk-update` works against them;
    Ctrl-C stops it with exit 0 and nothing on stderr."""
    process = start_knock_async(
        "emulator", "--port", "0", "--channels", "2", "--seed-messages", "40", env=cli_env()
    )
    output = Output(process)
    try:
        lines = output.until(lambda got: bool(got) and got[-1] == "Ctrl-C to stop.")
        assert lines[0].startswith("Knock emulator listening on http://127.0.0.1:")
        base_url = lines[0].rsplit(" ", 1)[1]
        channels = [seeded_channel_id(0, 0), seeded_channel_id(0, 1)]
        for channel in channels:
            assert f"  channel {channel} (in_app_feed, 40 messages)" in lines
        assert f"  export KNOCK_BASE_URL={base_url} KNOCK_API_KEY=sk_test_emulator" in lines
        bulk = "  knock-async bulk users.identify --file users.ndjson  # any bulk operation"
        assert bulk in lines

        result = knock_async(
            "bulk-update",
            "read",
            *channels,
            "--poll-interval",
            "0.2",
            env=cli_env(base_url, key="sk_test_emulator"),
        )
        assert result.returncode == 0, result.stderr
        assert "completed: read on 2 channels: 2 completed" in result.stdout

        process.send_signal(signal.SIGINT)
        _, stderr = output.rest()
    finally:
        stop(process)
    assert process.returncode == 0
    assert stderr == ""


def test_a_busy_port_is_one_clear_line(cli: Cli) -> None:
    """A port that cannot be bound: exit 2 and one line naming it (in-process)."""
    import socket

    sigint = signal.getsignal(signal.SIGINT)  # serving sets its own: put this process's back
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        try:
            result = cli("emulator", "--port", str(port), env=cli_env())
        finally:
            signal.signal(signal.SIGINT, sigint)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"knock-async: error: cannot listen on 127.0.0.1:{port}")


def _options(parser: argparse.ArgumentParser) -> dict[str, object]:
    return {
        action.dest: (tuple(action.option_strings), action.default, action.choices)
        for action in parser._actions
        if action.dest not in ("help", "debug")
    }


def test_both_entry_points_share_one_parser_and_its_defaults() -> None:
    """`knock-async emulator` and `python -m knock_async.testing` take the same options with the
    same defaults (3 channels of 1,000 messages, `--api-key` for both)."""
    subcommands = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    cli = subcommands.choices["emulator"]
    module = argparse.ArgumentParser()
    add_arguments(module)
    assert _options(cli) == _options(module)
    defaults = cli.parse_args([])
    assert (defaults.channels, defaults.seed_messages, defaults.api_keys) == (3, 1000, None)


async def test_the_banner_says_exactly_which_keys_are_accepted() -> None:
    """Without --api-key: any sk_ key (and an example to export). With --api-key: only the
    keys given, never claiming that any sk_ key works, and never printing a key."""
    async with KnockEmulator() as emu:
        emu.add_channel("in_app_feed")
        anyone, only = io.StringIO(), io.StringIO()
        banner(emu, api_keys=None, out=anyone)
        banner(emu, api_keys=["sk_right"], out=only)
    assert "Accepts any secret key (sk_...); public pk_ keys are refused." in anyone.getvalue()
    assert "KNOCK_API_KEY=sk_test_emulator" in anyone.getvalue()
    text = only.getvalue()
    assert "Accepts only the key given with --api-key; any other key is refused." in text
    assert "any secret key" not in text
    assert "sk_" not in text


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
@pytest.mark.subprocess
def test_python_m_knock_async_testing_is_the_same_front_door() -> None:
    """`python -m knock_async.testing --api-key sk_right` prints the same banner, accepts that
    key only (another sk_ key gets 401), and exits 0 on Ctrl-C."""
    process = subprocess.Popen(
        [sys.executable, "-m", "knock_async.testing", "--api-key", "sk_right", "--channels", "1"],
        env=cli_env(key=None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    output = Output(process)
    try:
        lines = output.until(lambda got: bool(got) and got[-1] == "Ctrl-C to stop.")
        base_url = lines[0].rsplit(" ", 1)[1]
        assert f"  channel {seeded_channel_id(0, 0)} (in_app_feed, 1000 messages)" in lines
        assert "Accepts only the key given with --api-key; any other key is refused." in lines
        url = f"{base_url}/v1/channels/{seeded_channel_id(0, 0)}/messages/bulk/read"
        statuses = []
        for key in ("sk_right", "sk_wrong"):
            request = urllib.request.Request(
                url, data=b"{}", headers={"Authorization": f"Bearer {key}"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
                exc.close()
        assert statuses == [200, 401]
        process.send_signal(signal.SIGINT)
        _, stderr = output.rest()
    finally:
        stop(process)
    assert process.returncode == 0
    assert stderr == ""


def test_the_channel_type_choices_are_the_emulators_channel_types() -> None:
    """`--channel-type` offers exactly the emulator's channel types, the first its default."""
    assert tuple(t.value for t in ChannelType) == CHANNEL_TYPES
    assert CHANNEL_TYPES[0] == ChannelType.IN_APP_FEED


async def test_the_banners_command_fits_80_columns_and_still_runs_as_one() -> None:
    """With three channels the suggested `bulk-update` command is wider than 80 columns: it is
    continued with ` \\` between words, every line fits 80 columns, no channel id is cut, and
    joined back it is the whole command."""
    async with KnockEmulator() as emu:
        ids = [emu.add_channel("in_app_feed") for _ in range(3)]
        out = io.StringIO()
        banner(emu, api_keys=None, out=out)
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    first = next(i for i, line in enumerate(lines) if "bulk-update" in line)
    command = lines[first:]
    command = command[: next(i for i, line in enumerate(command) if not line.endswith(" \\")) + 1]
    assert len(command) > 1
    joined = " ".join(line.removesuffix(" \\").strip() for line in command)
    assert joined == f"knock-async bulk-update read {' '.join(ids)} --engagement-status unread"
