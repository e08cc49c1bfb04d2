"""Every send on the wire is seen: a GET dropped on a reused keep-alive connection is sent
again by the client's own retry (counted by the hooks and paced by the limiter), never by
aiohttp behind their back. Against a raw loopback server that counts what reaches it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

import knock_async as ka
from knock_async._hooks import HookEvent, RequestAnswered, RequestSent
from tests._support import API_KEY, OPERATION_ID, VirtualTime, operation


class DroppingServer:
    """Answers every request on kept-alive connections, except the first one that arrives on
    a reused connection: that connection is closed without an answer, as a server dropping
    an idle connection just as the client reuses it. Counts every request that reaches it."""

    def __init__(self) -> None:
        self.requests = 0
        self.dropped = 0
        body = json.dumps(operation(id=OPERATION_ID)).encode()
        self._answer = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: keep-alive\r\n\r\n%s" % (len(body), body)
        )

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                if served and not self.dropped:
                    self.dropped += 1
                    return  # unanswered: the connection closes under the reused request
                served += 1
                writer.write(self._answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection
        finally:
            writer.close()


@pytest.fixture
async def dropping() -> AsyncIterator[tuple[DroppingServer, str]]:
    server = DroppingServer()
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        listening.close()
        await listening.wait_closed()


class CountingLimiter:
    """A ``RateLimiter`` that never waits and counts the slots it grants."""

    def __init__(self) -> None:
        self.granted = 0

    async def acquire(self, tier: ka.Tier) -> None:
        self.granted += 1

    def on_rate_limited(self, tier: ka.Tier, *, retry_after: float | None = None) -> None:
        pass

    def on_success(self, tier: ka.Tier) -> None:
        pass


async def test_a_get_dropped_on_a_reused_connection_is_resent_where_hooks_and_limiter_see_it(
    dropping: tuple[DroppingServer, str], vtime: VirtualTime
) -> None:
    """Three GETs, the second dropped on the reused connection: the server counts four
    requests, and so do the hooks (four sends, four ends, the drop a ``connection`` failure)
    and the limiter (four slots). aiohttp's own silent resend would leave one unseen."""
    server, base_url = dropping
    events: list[HookEvent] = []
    limiter = CountingLimiter()
    async with ka.KnockClient(
        api_key=API_KEY,
        base_url=base_url,
        clock=vtime.clock,
        sleep=vtime.sleep,
        rng=lambda: 0.5,
        rate_limits=limiter,
        hooks=[events.append],
    ) as knock:
        for _ in range(3):
            operation_seen = await knock.bulk_operations.get(OPERATION_ID)
            assert operation_seen.id == OPERATION_ID
    assert server.dropped == 1
    assert server.requests == 4
    sent = [e for e in events if isinstance(e, RequestSent)]
    ended = [e for e in events if isinstance(e, RequestAnswered)]
    assert len(sent) == len(ended) == limiter.granted == server.requests
    assert [(e.status, e.error_type) for e in ended] == [
        (200, None),
        (None, "connection"),
        (200, None),
        (200, None),
    ]
    assert [e.attempt for e in sent] == [1, 1, 2, 1]
