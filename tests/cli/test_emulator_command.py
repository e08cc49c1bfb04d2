"""``knock-async emulator``: serve the embedded emulator and say how to use it."""

from __future__ import annotations

import signal
import sys

import pytest

from knock_async.testing import seeded_channel_id
from tests.cli._clitools import Output, cli_env, knock_async, start_knock_async, stop


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
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


def test_a_busy_port_is_one_clear_line() -> None:
    """A port that cannot be bound: exit 2 and one line naming it."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = knock_async("emulator", "--port", str(port), env=cli_env())
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"knock-async: error: cannot listen on 127.0.0.1:{port}")
