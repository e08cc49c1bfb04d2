"""A real ``redis-server`` on a free loopback port, for the tests and the benchmarks.

``RedisServer`` launches ``redis-server --port N --save '' --appendonly no`` (nothing written to
disk), waits until it answers ``PING``, and can be stopped and started again on the same port to
play an outage.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from types import TracebackType
from typing import Self

__all__ = ["REDIS_SERVER", "RedisServer", "free_port", "redis_server_missing"]

REDIS_SERVER = "redis-server"


def redis_server_missing() -> str | None:
    """Why no Redis server can be started here, or ``None`` if one can."""
    if shutil.which(REDIS_SERVER) is None:
        return (
            "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server; "
            "CI's .ci/run installs it)"
        )
    return None


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            # A server with --requirepass answers, just not PONG: it is up all the same.
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port``; a context manager that stops it."""

    def __init__(self, port: int | None = None, *, args: tuple[str, ...] = ()) -> None:
        self.port = free_port() if port is None else port
        self.args = args  # more redis-server options, e.g. ("--requirepass", "...")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self, *, wait: float = 10.0) -> None:
        """Launch the server and return once it answers PING."""
        if self._process is not None:
            raise RuntimeError("the Redis server is already running")
        command = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
            *self.args,
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=os.sep,
        )
        deadline = time.monotonic() + wait
        while not _pings(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                error = self._stop_process()
                raise RuntimeError(f"redis-server did not start on port {self.port}: {error}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server (its data is gone: nothing is saved)."""
        self._stop_process()

    def _stop_process(self) -> str:
        process, self._process = self._process, None
        if process is None:
            return ""
        if process.poll() is None:
            process.terminate()
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        return stderr.decode(errors="replace").strip()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
