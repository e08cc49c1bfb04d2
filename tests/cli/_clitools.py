"""Helpers for the command line tests: emulators served from a background thread, the
command run in this process (``Cli``, the default: what the command says and exits with), and
the real ``knock-async`` (``python -m knock_async``) in a subprocess, for what only a process
shows (signals, the entry point's exit code, a terminal).

The emulator runs on its own event loop in a thread so that the tests can script faults and
read its store (through ``EmulatorThread.call``, on that loop) while a CLI subprocess talks to
it over loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import os
import select
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from knock_async import BulkOperation, FanOutEvent, FanOutSummary
from knock_async.cli import main
from knock_async.cli._outcome import Report, result_of
from knock_async.testing import KnockEmulator, Message

T = TypeVar("T")

API_KEY = "sk_test_cli_Sup3rS3cret_do_not_print"
TIMEOUT = 30.0
# Environment variables that would change what the CLI shows or where it connects.
_SCRUB = (
    "KNOCK_API_KEY",
    "KNOCK_BASE_URL",
    "KNOCK_BRANCH",
    "FORCE_COLOR",
    "NO_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "COLUMNS",
    "LINES",
)


class EmulatorThread:
    """A ``KnockEmulator`` serving from a background thread's event loop."""

    def __init__(self, **settings: Any) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.emulator: KnockEmulator | None = None

    def start(self) -> None:
        self._thread.start()

        async def start() -> KnockEmulator:
            emulator = KnockEmulator(**self._settings)
            await emulator.start()
            return emulator

        self.emulator = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)

    def stop(self) -> None:
        if self.emulator is not None:
            asyncio.run_coroutine_threadsafe(self.emulator.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def call(self, function: Callable[[KnockEmulator], T]) -> T:
        """``function(emulator)`` run on the emulator's loop (its state is not thread-safe)."""
        emulator = self.emulator
        assert emulator is not None

        async def run() -> T:
            return function(emulator)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    @property
    def base_url(self) -> str:
        return self.call(lambda emu: emu.base_url)

    def channel(self, messages: int = 200, *, seed: int = 0, type: str = "in_app_feed") -> str:
        """A new channel with ``messages`` random messages; its id."""

        def add(emu: KnockEmulator) -> str:
            channel_id = emu.add_channel(type)
            emu.add_messages(channel_id, messages, seed=seed)
            return channel_id

        return self.call(add)

    def advance(self, seconds: float) -> None:
        """Move a ``ManualClock`` emulator's time forward (operations progress accordingly)."""
        self.call(lambda emu: emu.advance(seconds))

    def request_count(self) -> int:
        return self.call(lambda emu: emu.stats.requests)

    def start_operation(self, channel_id: str, action: str = "read") -> str:
        """Start a bulk update over HTTP (as any client would); the operation id."""
        request = urllib.request.Request(
            f"{self.base_url}/v1/channels/{channel_id}/messages/bulk/{action}",
            data=b"{}",
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body: dict[str, Any] = json.load(response)
        operation_id: str = body["id"]
        return operation_id

    def messages(self, channel_id: str) -> list[Message]:
        return self.call(lambda emu: emu.messages(channel_id))

    def operation(self, operation_id: str) -> BulkOperation:
        return self.call(lambda emu: emu.operation(operation_id))

    def stick_next_operation(self, channel_id: str, after_rows: int = 0) -> None:
        """The next operation on the channel stops after ``after_rows`` rows, for good."""
        self.call(lambda emu: emu.faults.stick_next_operation(after_rows, channel_id=channel_id))

    def fail_next_operation(self, channel_id: str, after_rows: int = 0) -> None:
        """The next operation on the channel ends ``failed`` after ``after_rows`` rows."""
        self.call(lambda emu: emu.faults.fail_next_operation(after_rows, channel_id=channel_id))


def cli_env(
    base_url: str | None = None, *, key: str | None = API_KEY, **extra: str
) -> dict[str, str]:
    """The environment for a CLI subprocess: no stray Knock or colour settings, warnings as
    errors, and the key (if any) in ``KNOCK_API_KEY``."""
    env = {name: value for name, value in os.environ.items() if name not in _SCRUB}
    env["PYTHONWARNINGS"] = "error"
    env["PYTHONUNBUFFERED"] = "1"
    if base_url is not None:
        env["KNOCK_BASE_URL"] = base_url
    if key is not None:
        env["KNOCK_API_KEY"] = key
    env.update(extra)
    return env


def knock_async(
    *args: str,
    env: dict[str, str],
    input: str | None = None,
    timeout: float = TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m knock_async ARGS`` to the end; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "knock_async", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# Runs the command with SIGINT ignored, as a shell does for `cmd &` in a script: the ignored
# disposition survives exec.
_SIGINT_IGNORED = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, '-m', 'knock_async', *sys.argv[1:]])"
)


@dataclasses.dataclass(frozen=True)
class Ran:
    """What ``Cli`` saw: the shape of ``subprocess.CompletedProcess`` the tests read."""

    returncode: int
    stdout: str
    stderr: str


class Cli:
    """Runs ``knock_async.cli.main(args)`` in this process, as ``knock_async`` runs it in a
    subprocess: with ``env`` as the environment's Knock settings, ``input`` on stdin, and
    stdout and stderr captured apart (neither is a terminal)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch

    def __call__(self, *args: str, env: dict[str, str], input: str | None = None) -> Ran:
        with self._monkeypatch.context() as patch:
            # The settings the command reads: what ``cli_env`` scrubs, and every KNOCK_*.
            names = {*_SCRUB, *(n for n in (*os.environ, *env) if n.startswith("KNOCK_"))}
            for name in names:
                if name in env:
                    patch.setenv(name, env[name])
                else:
                    patch.delenv(name, raising=False)
            # Bytes underneath, as a real stdin: `bulk --file -` reads sys.stdin.buffer.
            patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((input or "").encode())))
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(args))
        return Ran(code, out.getvalue(), err.getvalue())


def start_knock_async(
    *args: str, env: dict[str, str], sigint_ignored: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``python -m knock_async ARGS`` with stdout and stderr piped; read them with
    ``Output``. ``sigint_ignored``: started with SIGINT ignored, like a background job."""
    command = ["-c", _SIGINT_IGNORED] if sigint_ignored else ["-m", "knock_async"]
    return subprocess.Popen(
        [sys.executable, *command, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


class Output:
    """Reads a running process's stdout line by line with a deadline (straight from the pipe,
    so no line waits in a buffer ``select`` cannot see), then the rest once it exits."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self._process = process
        self._fd = process.stdout.fileno()
        self._pending = b""
        self.lines: list[str] = []

    def until(self, done: Callable[[list[str]], bool], timeout: float = 15.0) -> list[str]:
        """Lines read so far once ``done(lines)`` holds; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done(self.lines):
            if b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                self.lines.append(line.decode())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for output; got {self.lines!r}")
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._fd, 65536)
            if not chunk:
                code = self._process.poll()
                raise AssertionError(f"stdout ended early (exit {code}); got {self.lines!r}")
            self._pending += chunk
        return self.lines

    def rest(self, timeout: float = 15.0) -> tuple[str, str]:
        """Wait for the exit; ``(stdout not yet returned by until, stderr)``."""
        stdout, stderr = self._process.communicate(timeout=timeout)
        return (self._pending + stdout).decode(), stderr.decode()


def stop(process: subprocess.Popen[bytes]) -> None:
    """Kill a process a test left running, and reap it."""
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=10)


def in_process(
    *argv: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    base_url: str | None = None,
    key: str | None = API_KEY,
    stdin: str = "",
) -> tuple[int, str, str]:
    """``Cli`` with ``base_url`` and ``key`` as the environment's; ``(exit code, stdout,
    stderr)``. (``capsys`` is only flushed: what the command prints, ``Cli`` captures.)"""
    capsys.readouterr()
    ran = Cli(monkeypatch)(*argv, env=cli_env(base_url, key=key), input=stdin)
    return ran.returncode, ran.stdout, ran.stderr


def report_of(latest: list[FanOutEvent], **fields: Any) -> Report:
    """The ``Report`` a run ends with when ``latest`` are its operations' last events (the
    results the library's summary would hold), the totals those of the last one."""
    results = tuple(result_of(event) for event in latest)
    progress = {e.operation_id: e.progress for e in latest if e.operation_id and e.progress}
    summary = FanOutSummary(results=results, totals=latest[-1].totals)
    fields.setdefault("elapsed", 1.0)
    return Report(summary=summary, progress=progress, **fields)
