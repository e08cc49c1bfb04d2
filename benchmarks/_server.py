"""A minimal HTTP/1.1 server on loopback: canned answers, as cheap per request as it gets.

``HttpProtocol`` is a bare ``asyncio.Protocol``: keep-alive, ``Content-Length`` bodies, one
``respond(method, target, body) -> (status, body)`` callback, no routing framework. It is far
cheaper per request than any client measured here, so in its own process the client is the
bottleneck. ``poll_efficiency`` reuses it in-process with a responder that reads a virtual
clock.

``CannedServer`` runs it in a separate process (``python -m benchmarks._server``) on
127.0.0.1 with an ephemeral port:

* ``POST /v1/channels/{id}/messages/bulk/{action}`` answers a queued ``BulkOperation``;
* ``GET /v1/bulk_operations/{id}`` answers a processing ``BulkOperation``;
* ``GET /__cpu`` answers the server process's CPU seconds so far, to check its headroom;
* anything else answers Knock's unrouted-path 404.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from ._common import operation_wire

__all__ = ["CannedServer", "HttpProtocol", "Responder", "canned_responder", "start_server"]

Responder = Callable[[bytes, bytes, bytes], tuple[int, bytes]]
"""``(method, target, body) -> (status, body)``; the body is sent as ``application/json``."""

_MAX_HEAD = 64 * 1024
_ID = re.compile(rb"[0-9a-f-]{1,64}")


def _response(status: int, body: bytes) -> bytes:
    reason = HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    return head.encode("ascii") + body


class HttpProtocol(asyncio.Protocol):
    """One connection: parse requests as they arrive, answer each from ``respond``."""

    def __init__(self, respond: Responder) -> None:
        self._respond = respond
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        transport = self._transport
        while transport is not None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    transport.close()
                return
            lines = bytes(self._buffer[:end]).split(b"\r\n")
            method, target, _ = lines[0].split(b" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    # Not needed by any client measured here; refuse rather than misparse.
                    transport.write(_response(501, b'{"message":"chunked bodies unsupported"}'))
                    transport.close()
                    return
            total = end + 4 + length
            if len(self._buffer) < total:
                return
            body = bytes(self._buffer[end + 4 : total])
            del self._buffer[:total]
            status, payload = self._respond(method, target, body)
            transport.write(_response(status, payload))


def canned_responder() -> Responder:
    """The canned answers described in the module docstring, rendered from byte templates.

    Every POST starts an operation with a new id (as the real API does, so that no client
    gets to reuse a parsed URL), and a GET answers for the id in its path.
    """
    marker = "00000000-0000-4000-8000-000000000000"

    def template(**changes: Any) -> list[bytes]:
        wire = operation_wire(id=marker, progress_path=f"/v1/bulk_operations/{marker}")
        wire.update(changes)
        return json.dumps(wire).encode().split(marker.encode())

    queued = template(
        status="queued",
        processed_rows=0,
        success_count=0,
        error_count=0,
        error_items=[],
        started_at=None,
    )
    processing = template()
    unrouted = b'{"errors":{"detail":"404 Not Found"}}'
    get_prefix = b"/v1/bulk_operations/"
    counter = itertools.count(1)

    def respond(method: bytes, target: bytes, body: bytes) -> tuple[int, bytes]:
        if method == b"POST" and target.startswith(b"/v1/channels/"):
            operation_id = b"00000000-0000-4000-8000-%012x" % next(counter)
            return 200, operation_id.join(queued)
        if method == b"GET" and target.startswith(get_prefix):
            operation_id = target[len(get_prefix) :]
            if _ID.fullmatch(operation_id):
                return 200, operation_id.join(processing)
            return 404, unrouted
        if method == b"GET" and target == b"/__cpu":
            return 200, str(time.process_time()).encode()
        return 404, unrouted

    return respond


async def start_server(respond: Responder, host: str = "127.0.0.1") -> asyncio.Server:
    """Serve ``respond`` on ``host`` at an ephemeral port (``server.sockets[0]`` says which)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HttpProtocol(respond), host, 0, backlog=1024)


async def _serve_canned() -> None:
    server = await start_server(canned_responder())
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # The parent closing our stdin is the other way to stop (it died, or is done). A daemon
    # thread, so that a read still blocked on a terminal does not hold up the exit.
    def watch_stdin() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    async with server:
        await stop.wait()


class CannedServer:
    """The canned server in its own process: ``with CannedServer() as server: server.port``."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("PORT "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the canned server did not start (said {line!r})")
        self.port = int(line.split()[1])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far (``GET /__cpu``)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", "/__cpu")
            return float(connection.getresponse().read())
        finally:
            connection.close()


def main() -> None:
    argparse.ArgumentParser(
        prog="python -m benchmarks._server",
        description="Serve canned Knock answers on 127.0.0.1 at an ephemeral port "
        "(printed as 'PORT n'); stop with Ctrl-C or by closing stdin.",
    ).parse_args()
    asyncio.run(_serve_canned())


if __name__ == "__main__":
    main()
