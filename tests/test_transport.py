"""The transport against hostile servers: byte-level faults from raw asyncio servers on
loopback, and the limiter's bounds (hints capped, waits inside the deadline) on virtual time."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import knock_async as ka
from knock_async._transport import try_end
from knock_async.testing import EmulatorRateLimits, KnockEmulator
from tests._support import (
    API_KEY,
    CHANNEL_ID,
    OPERATION_ID,
    FakeKnock,
    LoopClock,
    Reply,
    VirtualLoop,
    VirtualTime,
    operation,
)

MakeClient = Callable[..., ka.KnockClient]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A raw asyncio server on loopback; records whether each client hung up on it."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.server: asyncio.Server | None = None
        self.hung_up = asyncio.Event()
        self.bytes_sent = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            await self.handler(reader, writer)
        except (ConnectionError, OSError):
            self.hung_up.set()  # the client dropped the connection while we were writing
        finally:
            writer.close()

    async def write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        self.bytes_sent += len(data)
        await writer.drain()
        if writer.transport.is_closing():
            raise ConnectionResetError

    @property
    def base_url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def start(handler: Handler) -> RawServer:
        raw = RawServer(handler)
        raw.server = await asyncio.start_server(raw._serve, "127.0.0.1", 0)
        servers.append(raw)
        return raw

    yield start
    for raw in servers:
        assert raw.server is not None
        raw.server.close()
        await raw.server.wait_closed()


def head(extra: str = "", status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}\r\n").encode()


def raw_client(base_url: str, **kwargs: Any) -> ka.KnockClient:
    return ka.KnockClient(
        api_key=API_KEY, base_url=base_url, retry=ka.RetryPolicy(attempts=1), **kwargs
    )


# -- the body cap -------------------------------------------------------------------------


async def test_a_huge_content_length_is_refused_before_reading(
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    """A Content-Length over max_response_bytes is refused from the header alone: typed error
    naming the limit, and the connection is dropped (the server's writes fail)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.write(writer, head(f"Content-Length: {200 * 1024 * 1024}\r\n"))
        for _ in range(2000):  # 200 MB would follow; the client must not wait for it
            await server.write(writer, b"x" * 65536)
            await asyncio.sleep(0.001)

    server = await raw_server(answer)
    async with raw_client(server.base_url, max_response_bytes=1024 * 1024) as knock:
        with pytest.raises(ka.ResponseTooLargeError) as info:
            await knock.bulk_operations.get(OPERATION_ID)
    assert info.value.limit == 1024 * 1024
    assert "max_response_bytes=1048576" in str(info.value)
    assert "Content-Length is 209715200 bytes" in str(info.value)
    assert isinstance(info.value, ka.ResponseValidationError)
    await asyncio.wait_for(server.hung_up.wait(), 5)
    assert server.bytes_sent < 50 * 1024 * 1024


async def test_a_gzip_bomb_is_cut_off_after_decompression(
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    """A small gzip body that inflates past the cap is cut off as it streams in: the cap
    applies to the decompressed bytes, and nothing near the inflated size is held."""
    bomb = gzip.compress(b"0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 256 * 1024

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        extra = f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n"
        await server.write(writer, head(extra) + bomb)

    server = await raw_server(answer)
    async with raw_client(server.base_url, max_response_bytes=256 * 1024) as knock:
        with pytest.raises(ka.ResponseTooLargeError, match="grew past it while streaming"):
            await knock.bulk_operations.get(OPERATION_ID)


async def test_an_endless_chunked_body_is_cut_off(
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    """A chunked body that never ends is read up to the cap only; the connection is dropped
    and the server's next writes fail."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.write(writer, head("Transfer-Encoding: chunked\r\n"))
        chunk = b"[" * 4096
        while True:
            await server.write(writer, b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await asyncio.sleep(0)

    server = await raw_server(answer)
    async with raw_client(server.base_url, max_response_bytes=100_000) as knock:
        with pytest.raises(ka.ResponseTooLargeError) as info:
            await knock.bulk_operations.get(OPERATION_ID)
    assert info.value.limit == 100_000
    await asyncio.wait_for(server.hung_up.wait(), 5)


async def test_a_body_within_the_cap_reads_normally(
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    """Bodies up to the cap, plain, chunked or compressed, are read as usual."""
    body = json.dumps(operation()).encode()
    framings = iter(
        [
            f"Content-Length: {len(body)}\r\n".encode() + b"\r\n" + body,
            b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
            (
                f"Content-Encoding: deflate\r\nContent-Length: {len(zlib.compress(body))}\r\n\r\n"
            ).encode()
            + zlib.compress(body),
        ]
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.write(writer, head()[:-2] + next(framings))

    server = await raw_server(answer)
    for _ in range(3):
        async with raw_client(server.base_url, max_response_bytes=len(body)) as knock:
            assert (await knock.bulk_operations.get(OPERATION_ID)).id == OPERATION_ID


async def test_a_hold_the_policy_accepts_is_waited_out_by_the_next_call(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """A 429 with Retry-After: 45 (within max_retry_after, longer than the 30 s request
    timeout) holds the POST tier; the next call cannot leave the limiter within its timeout,
    so its retry waits for the hold to end and then goes through, instead of failing."""
    fake_knock.reply("POST", Reply(429, {"code": "rate_limited"}, headers={"Retry-After": "45"}))
    async with make_client(timeout=30) as knock:
        with pytest.raises(ka.RateLimitError):
            await knock.channels.bulk.update_message_status(
                CHANNEL_ID, "read", retry=ka.RetryPolicy(attempts=1)
            )
        held_at = vtime.now
        operation_ = await knock.channels.bulk.update_message_status(CHANNEL_ID, "read")
    assert operation_.id == OPERATION_ID
    assert 45 <= vtime.now - held_at < 50
    assert len(fake_knock.requests) == 2


def test_max_response_bytes_is_checked() -> None:
    """max_response_bytes must be an int >= 1, checked when the client is built."""
    with pytest.raises(ValueError, match=r"^max_response_bytes must be an int >= 1, got 0$"):
        ka.KnockClient(api_key=API_KEY, max_response_bytes=0)
    with pytest.raises(TypeError, match="max_response_bytes must be an int"):
        ka.KnockClient(api_key=API_KEY, max_response_bytes=1e6)  # type: ignore[arg-type]


# -- server hints and the limiter ---------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "deadline", "expected"),
    [
        (30.0, None, (130.0, False)),
        (30.0, 120.0, (120.0, True)),
        (30.0, 140.0, (130.0, False)),
        (30.0, 130.0, (130.0, False)),  # a tie: the timeout bounds it, no new ClientTimeout
        (None, None, (None, False)),
        (None, 500.0, (500.0, True)),
    ],
)
def test_try_end_takes_the_sooner_bound(
    total: float | None, deadline: float | None, expected: tuple[float | None, bool]
) -> None:
    """A try started at 100 ends at its timeout or the caller's deadline, whichever is
    first, and says whether the deadline is the bound."""
    assert try_end(100.0, total, deadline) == expected


async def test_a_post_hint_the_client_gave_up_on_holds_nothing(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """A 429 with Retry-After: 86400 raises RateLimitError at once, and the next POST on the
    same client goes out without waiting for the day to pass."""
    fake_knock.reply("POST", Reply(429, {"code": "rate_limited"}, headers={"Retry-After": "86400"}))
    async with make_client() as knock:
        with pytest.raises(ka.RateLimitError) as info:
            await knock.channels.bulk.update_message_status(CHANNEL_ID, "read")
        assert info.value.retry_after == 86400
        started = vtime.now
        await knock.channels.bulk.update_message_status(CHANNEL_ID, "read")
    assert vtime.now - started < 5
    assert max(vtime.sleeps, default=0) < 5


async def test_update_many_goes_on_after_a_long_retry_after(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """One 429 with Retry-After: 3600 ends that channel with RateLimitError; the other
    channels are submitted and followed in seconds, not after the hour."""
    fake_knock.reply("POST", Reply(429, {"code": "rate_limited"}, headers={"Retry-After": "3600"}))
    ids = [
        CHANNEL_ID,
        "7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c12",
        "7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c13",
    ]
    async with make_client() as knock:
        summary = await knock.channels.bulk.update_many(ids, "read", concurrency=1)
    statuses = [r.status for r in summary.results]
    assert statuses.count("error") == 1
    assert statuses.count("completed") == 2
    assert vtime.now - 1000.0 < 60


async def test_a_poll_hint_is_capped_by_the_deadline_and_the_client(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """poll(timeout=3) after a 429 with Retry-After: 100 ends by its deadline with
    PollTimeoutError; the hint never holds the limiter past the client's max_retry_after."""
    fake_knock.reply(
        "GET",
        *[Reply(429, {"code": "rate_limited"}, headers={"Retry-After": "100"})] * 5,
    )
    async with make_client() as knock:
        with pytest.raises(ka.PollTimeoutError):
            await knock.bulk_operations.poll(OPERATION_ID, timeout=3)
        assert vtime.now - 1000.0 <= 3.0 + 1e-6
        limiter = knock._transport.limiter
        assert isinstance(limiter, ka.AdaptiveRateLimiter)
        hold = limiter.state(ka.Tier.GET).hold_until - vtime.now
        assert hold <= ka.RetryPolicy().max_retry_after


@pytest.mark.parametrize(
    ("hint", "held"),
    [(5.0, True), (10.0, True), (20.0, False), (100.0, False)],
)
async def test_a_hint_holds_the_limiter_up_to_the_clients_cap(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime, hint: float, held: bool
) -> None:
    """A poll's 429 Retry-After holds the GET tier for the hint when it is at most the
    client's RetryPolicy.max_retry_after (10 s here), and holds nothing beyond the usual
    slow-down when longer: the transport knows no poll policy."""
    fake_knock.reply("GET", Reply(429, {}, headers={"Retry-After": str(hint)}))
    async with make_client(retry=ka.RetryPolicy(max_retry_after=10)) as knock:
        poller = knock.bulk_operations.poll(OPERATION_ID, policy=ka.PollPolicy(max_hint=300))
        async for _ in poller:
            break
        limiter = knock._transport.limiter
        assert isinstance(limiter, ka.AdaptiveRateLimiter)
    assert len(fake_knock.requests) >= 1
    # The hold started at the 429; the poll then waited the hint itself.
    hold_until = limiter.state(ka.Tier.GET).hold_until
    assert (hold_until >= 1000.0 + hint - 1e-6) is held


async def test_a_limiter_hold_past_the_request_timeout_fails_fast(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """A GET that cannot leave the limiter within its timeout fails with APITimeoutError
    (not sent) at once instead of waiting in the limiter past the timeout."""
    fake_knock.reply("GET", Reply(429, {"code": "rate_limited"}, headers={"Retry-After": "50"}))
    async with make_client(retry=ka.RetryPolicy(attempts=1), timeout=5) as knock:
        with pytest.raises(ka.RateLimitError):
            await knock.bulk_operations.get(OPERATION_ID)
        started = vtime.now
        with pytest.raises(ka.APITimeoutError, match="rate limiter is queued past it") as info:
            await knock.bulk_operations.get(OPERATION_ID)
    assert info.value.failure is ka.Failure.NOT_SENT
    assert vtime.now - started < 5
    assert len(fake_knock.requests) == 1


async def _many_pollers(count: int) -> tuple[list[ka.BulkOperation | BaseException], float, int]:
    loop = asyncio.get_running_loop()
    async with KnockEmulator(
        clock=LoopClock(loop),
        rows_per_second=0.001,
        rate_limits=EmulatorRateLimits(get_per_second=1e6),
    ) as emu:
        channel = emu.add_channel("in_app_feed")
        emu.add_messages(channel, 10, seed=0)
        async with ka.KnockClient(
            api_key=API_KEY,
            base_url=emu.base_url,
            clock=loop.time,
            sleep=asyncio.sleep,
            timeout=1.0,
            rate_limits=ka.RateLimits(get_per_second=20),
        ) as knock:
            op = await knock.channels.bulk.update_message_status(channel, "read")
            started = loop.time()
            results = await asyncio.gather(
                *(knock.bulk_operations.poll(op.id, timeout=2) for _ in range(count)),
                return_exceptions=True,
            )
            return results, loop.time() - started, emu.stats.requests


def test_2000_pollers_end_near_their_deadline() -> None:
    """2,000 pollers with timeout=2 on one client paced at 20 GET/s (its queue would take
    100 s) all end with PollTimeoutError within 2 s plus one request timeout: every wait in
    the limiter counts against the poll's deadline. On a virtual-time loop: exact whatever
    the machine's load."""
    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        results, elapsed, requests = runner.run(_many_pollers(2000))
    assert all(isinstance(r, ka.PollTimeoutError) for r in results)
    assert elapsed <= 2 + 1.0
    assert requests < 200  # the limiter sent what fitted in the deadlines, at 20/s


def test_numbers_in_hints_never_stall() -> None:
    """A NaN or infinite hint reported to the limiter is no hold at all (sanity of the cap)."""
    limiter = ka.AdaptiveRateLimiter(clock=lambda: 0.0)
    limiter.on_rate_limited(ka.Tier.GET, retry_after=math.inf)
    assert limiter.state(ka.Tier.GET).hold_until < 1
