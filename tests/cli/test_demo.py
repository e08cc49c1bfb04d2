"""``knock-async demo``: the whole flow against the in-process emulator, no account needed."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli._clitools import TIMEOUT, Cli, cli_env


@pytest.fixture
def default_demo() -> Iterator[subprocess.Popen[str]]:
    """`knock-async demo` with its defaults and no key, as the real entry point runs it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "knock_async", "demo"],
        env=cli_env(key=None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=10)


def test_demo_json_reports_the_check_per_channel(cli: Cli) -> None:
    """--json: NDJSON whose summary carries matched / archived_in_store / check per channel and
    `verified: true`."""
    result = cli(
        "demo",
        "--json",
        "--channels",
        "2",
        "--messages",
        "400",
        "--rows-per-second",
        "2000",
        env=cli_env(key=None),
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    start, summary = records[0], records[-1]
    assert start["type"] == "start"
    assert start["command"] == "demo"
    assert len(start["channels"]) == 2
    assert summary["type"] == "summary"
    assert summary["verified"] is True
    for operation in summary["operations"]:
        assert operation["check"] == "ok"
        assert operation["matched"] == operation["success_count"] == operation["archived_in_store"]
        assert operation["other_changes"] == 0


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.subprocess
def test_demo_on_a_terminal_renders_a_live_progress_display() -> None:
    """Under a pseudo-terminal the live display renders: progress bars redrawn in place, with
    rows done / estimated, rows per second, ETA and status, then the summary table."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    env = cli_env(key=None, TERM="xterm-256color")
    process = subprocess.Popen(
        [sys.executable, "-m", "knock_async", "demo", "--channels", "3", "--messages", "1500"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        returncode = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(master)
    text = output.decode("utf-8", "replace")
    assert returncode == 0, text[-2000:]
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert "\x1b[?25l" in text  # the live display hid the cursor ...
    assert text.count("\x1b[2K") > 10  # ... and redrew its lines in place many times
    assert "━" in plain  # bars
    assert "all 3 channels" in plain  # the overall totals bar
    assert re.search(r"\d+(\.\d)?k?/\d+(\.\d)?k? ", plain)  # rows done / estimated
    assert re.search(r" \d+(\.\d)?k?/s ", plain)  # rows per second
    assert "ETA" in plain
    assert "processing" in plain
    assert "completed" in plain
    assert "Check against the emulator's store: OK." in plain


@pytest.mark.subprocess
def test_demo_with_its_defaults_exits_0_and_checks_the_store(
    default_demo: subprocess.Popen[str],
) -> None:
    """With its defaults and no key at all, the demo exits 0 after a summary whose store check
    holds on every channel. (Its wall time is measured by `python -m benchmarks cli_demo`.)"""
    process = default_demo
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err
    assert err == ""
    assert "Seeded 4 in-app feed channels" in out
    assert re.search(r"^completed: archive on 4 channels: 4 completed, 0 failed", out, re.M)
    assert "Check against the emulator's store: OK." in out
    table = [line for line in out.splitlines() if line.endswith(" ok")]
    assert len(table) == 4
    assert "sk_demo_" not in out.replace("a generated sk_demo_ key", "")


def _shape(line: str) -> str:
    """A line with ids, numbers and runs of spaces made uniform, to compare layouts."""
    line = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", line)
    line = re.sub(r"\b[0-9a-f]{8}\b", "SHORT", line)
    return " ".join(re.sub(r"\d+(\.\d+)?", "N", line).split())


def test_the_readme_shows_the_summary_as_printed(cli: Cli) -> None:
    """The README's example summary has the layout the command prints: the same headers,
    columns and summary line (ids, numbers and spacing aside)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("### Output") :]
    block = section.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    result = cli(
        "demo", "--channels", "1", "--messages", "200", "--rows-per-second", "4000",
        env=cli_env(key=None),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = [_shape(line) for line in result.stdout.splitlines()]
    expected = [_shape(line) for line in block]
    start = printed.index(expected[0])
    assert printed[start : start + len(expected)] == expected
