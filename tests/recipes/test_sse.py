"""The README's server-sent-event recipes, run from the README's own code, against the
emulator on loopback: they stream progress with heartbeats, a browser that leaves stops the
polling (at once under uvicorn and under aiohttp.web with ``handler_cancellation=True``, at the
next heartbeat's write without it), and nothing is logged as an error.

The emulator and the client share a ``FastClock`` (50x), so a 15 s heartbeat is 0.3 real s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn
from aiohttp import web

import knock_async as ka
from knock_async.testing import FastClock, KnockEmulator

README = Path(__file__).parent.parent.parent / "README.md"
SPEED = 50.0


def recipe(title: str) -> dict[str, Any]:
    """The names the README's ``# Recipe: <title>`` block defines (its ``main`` not run)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (code,) = [b for b in blocks if b.startswith(f"# Recipe: {title}\n")]
    namespace: dict[str, Any] = {"__name__": "readme_recipe"}
    exec(compile(code, f"README.md, recipe {title}", "exec"), namespace)
    return namespace


class WatchedClock:
    """The shared FastClock, counting the sleeps and keeping the tasks that slept: the
    polling has stopped once every task that polled (and so slept) has ended."""

    def __init__(self, fast: FastClock) -> None:
        self._fast = fast
        self.sleeps = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    def monotonic(self) -> float:
        return self._fast.monotonic()

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        await self._fast.sleep(seconds)

    def polling(self) -> bool:
        me = asyncio.current_task()
        return any(not task.done() for task in self.tasks if task is not me)


class Setup:
    def __init__(self, emu: KnockEmulator, knock: ka.KnockClient, clock: WatchedClock) -> None:
        self.emu, self.knock, self.clock = emu, knock, clock

    async def long_operation(self) -> ka.BulkOperation:
        channel_id = self.emu.add_channel(type="in_app_feed")
        self.emu.add_messages(channel_id, 2_000, seed=1)
        return await self.knock.channels.bulk.update_message_status(channel_id, "read")

    def gets(self, op: ka.BulkOperation) -> int:
        return sum(1 for r in self.emu.requests if r.method == "GET" and op.id in r.path)


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    fast = FastClock(speed=SPEED)
    clock = WatchedClock(fast)
    # 1 row/s: the operation runs for half an hour of emulated time, far beyond the test.
    async with (
        KnockEmulator(clock=fast, rows_per_second=1.0, batch_size=10) as emu,
        ka.KnockClient(api_key="sk_test", base_url=emu.base_url, clock=clock) as knock,
    ):
        yield Setup(emu, knock, clock)


async def browse(url: str, events: int) -> list[dict[str, Any]]:
    """A browser that reads ``events`` events, then leaves."""
    seen: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as browser:
        stream = await browser.get(url)
        async for line in stream.content:
            if line.startswith(b"data: "):
                seen.append(json.loads(line[6:]))
                if len(seen) == events:
                    break
        stream.close()
    return seen


async def stopped_within(clock: WatchedClock, seconds: float) -> float:
    """Real seconds until every task that polled has ended (at most ``seconds``, or fails)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while clock.polling():
        assert loop.time() - start < seconds, "the polling goes on after the browser left"
        await asyncio.sleep(0.005)
    return loop.time() - start


async def assert_stays_stopped(setup: Setup, op: ka.BulkOperation) -> None:
    """Over more than one heartbeat and poll interval, nothing sleeps or polls again."""
    sleeps, gets = setup.clock.sleeps, setup.gets(op)
    await asyncio.sleep(20 / SPEED)  # 20 emulated seconds: past a 15 s heartbeat
    assert setup.clock.sleeps == sleeps
    assert setup.gets(op) == gets


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@contextlib.asynccontextmanager
async def uvicorn_serving(app: Any) -> AsyncIterator[int]:
    # log_config=None: leave logging as it is, so that caplog sees uvicorn's records.
    server = uvicorn.Server(uvicorn.Config(app, port=0, log_config=None, lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.005)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await serving


@contextlib.asynccontextmanager
async def aiohttp_serving(
    app: web.Application, *, handler_cancellation: bool
) -> AsyncIterator[int]:
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


Serve = Callable[[ka.KnockClient], contextlib.AbstractAsyncContextManager[int]]


def fastapi_app(knock: ka.KnockClient) -> contextlib.AbstractAsyncContextManager[int]:
    return uvicorn_serving(recipe("FastAPI")["make_app"](knock))


def aiohttp_app(knock: ka.KnockClient) -> contextlib.AbstractAsyncContextManager[int]:
    return aiohttp_serving(recipe("aiohttp.web")["make_app"](knock), handler_cancellation=True)


@pytest.mark.parametrize("serve", [fastapi_app, aiohttp_app], ids=["uvicorn", "aiohttp"])
async def test_leaving_stops_the_polling_at_once(
    serve: Serve, setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """The browser reads a snapshot and leaves: the poll stops before its next poll or
    heartbeat is due (well under 15 emulated seconds), and nothing is logged as an error."""
    caplog.set_level(logging.INFO)
    op = await setup.long_operation()
    async with serve(setup.knock) as port:
        url = f"http://127.0.0.1:{port}/operations/{op.id}/progress"
        (first,) = await browse(url, 1)
        assert first["status"] in ("queued", "processing")
        assert first["heartbeat"] is False
        took = await stopped_within(setup.clock, 2 / SPEED)
        await assert_stays_stopped(setup, op)
    assert took < 2 / SPEED
    no_errors_logged(caplog)


@pytest.mark.parametrize("serve", [fastapi_app, aiohttp_app], ids=["uvicorn", "aiohttp"])
async def test_heartbeats_keep_the_stream_alive(serve: Serve, setup: Setup) -> None:
    """On a long operation the stream sends a heartbeat (the latest snapshot again, marked)
    at least every 15 emulated seconds."""
    op = await setup.long_operation()
    async with serve(setup.knock) as port:
        url = f"http://127.0.0.1:{port}/operations/{op.id}/progress"
        seen = await browse(url, 4)
        await stopped_within(setup.clock, 2 / SPEED)
    assert any(event["heartbeat"] for event in seen)


async def test_without_handler_cancellation_the_next_write_ends_it(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """Under aiohttp.web without handler_cancellation, the browser's leaving shows at the next
    write (a heartbeat at the latest): the poll stops then, and nothing is logged as an
    error."""
    caplog.set_level(logging.INFO)
    op = await setup.long_operation()
    app = recipe("aiohttp.web")["make_app"](setup.knock)
    async with aiohttp_serving(app, handler_cancellation=False) as port:
        url = f"http://127.0.0.1:{port}/operations/{op.id}/progress"
        await browse(url, 1)
        await stopped_within(setup.clock, 20 / SPEED)
        await assert_stays_stopped(setup, op)
    no_errors_logged(caplog)


async def test_an_unknown_operation_is_an_error_event(setup: Setup) -> None:
    """A poll that fails (an unknown operation) ends the stream with an ``error`` event, not
    a logged exception."""
    app = recipe("FastAPI")["make_app"](setup.knock)
    async with uvicorn_serving(app) as port, aiohttp.ClientSession() as browser:
        missing = "00000000-0000-4000-8000-000000000000"
        url = f"http://127.0.0.1:{port}/operations/{missing}/progress"
        async with browser.get(url) as stream:
            body = await stream.text()
    assert body.startswith("event: error\n")
    assert "not found" in body.lower() or "404" in body
