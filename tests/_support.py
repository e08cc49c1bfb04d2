"""Test support: a scripted Knock stand-in on loopback, sample bodies and virtual time."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import selectors
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import knock_async as ka

SAMPLES = Path(__file__).parent / "samples"
# pytest run in a new project: the plugins of this development environment that a project with
# knock-async[testing] does not have are off (each costs up to half a second of every start).
NEW_PROJECT_PYTEST = (
    "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio",
    "-p", "no:xdist", "-p", "no:xdist.looponfail", "-p", "no:aiohttp",
)  # fmt: skip
API_KEY = "sk_test_S3CRET_do_not_leak"
CHANNEL_ID = "7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c11"
OPERATION_ID = "123e4567-e89b-12d3-a456-426614174000"


def sample(name: str) -> dict[str, Any]:
    """A sample body from tests/samples, as a fresh dict."""
    data: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return data


def operation(**changes: Any) -> dict[str, Any]:
    """A valid BulkOperation wire dict (the queued sample) with ``changes`` applied."""
    body = sample("bulk_operation_queued")
    body.update(changes)
    return body


def knock_error(
    status: int, code: str, message: str = "nope", kind: str = "api_error"
) -> dict[str, Any]:
    """Knock's error body: ``{"code", "message", "status", "type"}``."""
    return {"code": code, "message": message, "status": status, "type": kind}


@attrs.frozen
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@attrs.frozen
class Reply:
    """A scripted answer: a status with a JSON (or raw) body, or a dropped connection."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = attrs.Factory(dict)
    drop: bool = False
    delay: float = 0.0


class FakeKnock:
    """A scripted Knock on loopback: answers from per-method queues and records requests.

    With a queue empty, a POST answers the queued sample and a GET the operation completed.
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: dict[str, deque[Reply]] = {"POST": deque(), "GET": deque()}
        self.server: TestServer | None = None
        self.request_seen = asyncio.Event()

    def reply(self, method: str, *replies: Reply) -> None:
        self.script[method].extend(replies)

    def progress_of(self, *states: dict[str, Any]) -> None:
        """Script the next GETs to answer the operation with each change set in turn."""
        self.reply("GET", *(Reply(body=operation(**s)) for s in states))

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path_qs, dict(request.headers), body))
        self.request_seen.set()
        queue = self.script.get(request.method)
        reply = queue.popleft() if queue else None
        if reply is None:
            reply = Reply(
                body=operation()
                if request.method == "POST"
                else operation(status="completed", processed_rows=1000, success_count=1000)
            )
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        headers = {"x-request-id": f"req_{len(self.requests)}", **reply.headers}
        if reply.raw is not None:
            return web.Response(
                status=reply.status,
                body=reply.raw,
                headers=headers,
                content_type="application/json",
            )
        return web.json_response(copy.deepcopy(reply.body), status=reply.status, headers=headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest.fixture
async def fake_knock() -> AsyncIterator[FakeKnock]:
    fake = FakeKnock()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    fake.server = server
    try:
        yield fake
    finally:
        await server.close()


class VirtualTime:
    """A clock and a sleep for the client: sleeping advances the clock instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def vtime() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def make_client(fake_knock: FakeKnock, vtime: VirtualTime) -> Callable[..., ka.KnockClient]:
    """A factory of clients on the fake server, with virtual time and fixed dice."""

    def make(**kwargs: Any) -> ka.KnockClient:
        options: dict[str, Any] = {
            "api_key": API_KEY,
            "base_url": fake_knock.base_url,
            "clock": vtime.clock,
            "sleep": vtime.sleep,
            "rng": lambda: 0.5,
        }
        options.update(kwargs)
        return ka.KnockClient(**options)

    return make


@pytest.fixture
async def broken_http() -> AsyncIterator[str]:
    """A server on loopback that answers with a malformed HTTP header."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nThis is not a header\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


class _ReadyFirstSelector(selectors.DefaultSelector):
    """Moves the loop's virtual clock forward only when nothing is ready to run: CPU time,
    however slow the machine, costs no virtual time, and loopback I/O arrives at once."""

    def __init__(self, loop: VirtualLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("deadlock: nothing is scheduled on the virtual-time loop")
        self._loop.now += timeout
        return super().select(0)


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock runs only while it would otherwise wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        super().__init__(selector=_ReadyFirstSelector(self))

    def time(self) -> float:
        return self.now


class LoopClock:
    """The emulator's clock on the running loop's (virtual) time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._wall = datetime.now(UTC) - timedelta(seconds=loop.time())

    def monotonic(self) -> float:
        return self._loop.time()

    def to_datetime(self, monotonic: float) -> datetime:
        return self._wall + timedelta(seconds=monotonic)

    def now(self) -> datetime:
        return self.to_datetime(self.monotonic())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def require_tool(missing: str | None, tests: str) -> None:
    """Skip a test whose outside tool (redis-server, Prism) is ``missing`` (the reason), but
    fail it under CI (``CI=true``), where a skip would hide that ``tests`` never ran."""
    if missing is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the {tests} tests, but {missing}", pytrace=False)
    pytest.skip(missing)
