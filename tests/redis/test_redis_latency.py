"""``RedisRateLimiter`` with a Redis far away: a real ``redis-server`` behind a loopback proxy
that delays each direction (``_delay_proxy``), so every round trip costs what it would
across zones."""

from __future__ import annotations

import asyncio
import itertools
import socket
import uuid
from collections.abc import Iterator

import pytest

from knock_async import RateLimits, Tier
from knock_async.redis import RedisLimiterError, RedisRateLimiter
from tests.redis._delay_proxy import DelayProxy
from tests.redis._server import RedisServer


def prefix() -> str:
    return f"test:{uuid.uuid4().hex}"


def degraded(limiter: RedisRateLimiter) -> bool:
    # A function, not the property inline: mypy would keep an asserted value across awaits.
    return limiter.degraded


@pytest.fixture
def far_redis(shared_redis: RedisServer) -> Iterator[DelayProxy]:
    """The shared Redis 60 ms away in each direction (a 120 ms round trip)."""
    with DelayProxy(shared_redis.port, 0.06) as proxy:
        yield proxy


async def test_a_redis_60_ms_away_shares_the_budget_with_the_defaults(
    far_redis: DelayProxy,
) -> None:
    """With every option at its default, a Redis 60 ms away is checked, shares the budget at
    its full rate and stays shared while a second tier opens its own connection mid-use:
    connection set-up (about five round trips) has its own bound, apart from each command's
    0.25 s."""
    limiter = RedisRateLimiter.from_url(far_redis.url(), key_prefix=prefix())
    loop = asyncio.get_running_loop()
    async with limiter:
        assert not degraded(limiter)

        async def posts() -> list[float]:
            times = []
            for _ in range(6):
                await limiter.acquire(Tier.POST)
                times.append(loop.time())
            return times

        async def gets() -> None:
            for _ in range(4):
                await limiter.acquire(Tier.GET)

        times, _ = await asyncio.gather(posts(), gets())
        assert not degraded(limiter)
    # Paced at Knock's 5 POST/s: a grant late under load is fine, one early is not.
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.2 * 0.9
    # And the budget is used: a slot is asked for a round trip ahead, not found late each
    # time (which cost a third of the rate). Loose, for a loaded machine: 1.0 s is exact.
    assert times[-1] - times[0] <= 1.0 * 1.5


async def test_a_far_redis_comes_back_after_its_connections_drop(far_redis: DelayProxy) -> None:
    """All connections dropped (a restart, a network blip): the limiter falls back, and the
    next probe reconnects, handshake and all, within ``connect_timeout`` rather than the
    command ``timeout``, so it shares again instead of staying on the fallback."""
    limits = RateLimits(post_per_second=20.0)
    limiter = RedisRateLimiter.from_url(
        far_redis.url(), key_prefix=prefix(), limits=limits, probe_interval=0.1
    )
    loop = asyncio.get_running_loop()
    async with limiter:
        await limiter.acquire(Tier.POST)
        far_redis.drop()
        deadline = loop.time() + 2.0
        await limiter.acquire(Tier.POST)
        while degraded(limiter) and loop.time() < deadline:
            await asyncio.sleep(0.05)
            await limiter.acquire(Tier.POST)
        assert not degraded(limiter)


async def test_a_slow_but_reachable_redis_is_an_outage_not_an_error(
    shared_redis: RedisServer,
) -> None:
    """A Redis that connects but answers slower than ``timeout`` (here a 400 ms round trip)
    is not a configuration error: entering the limiter does not raise, the process paces
    itself on the fallback, and says so with ``degraded``."""
    with DelayProxy(shared_redis.port, 0.2) as proxy:
        limiter = RedisRateLimiter.from_url(
            proxy.url(), key_prefix=prefix(), connect_timeout=5.0, probe_interval=10.0
        )
        async with limiter:
            assert degraded(limiter)
            await limiter.acquire(Tier.GET)
            assert degraded(limiter)


async def test_connect_timeout_bounds_a_redis_that_never_answers() -> None:
    """A port that accepts connections but never answers (a black hole) is a
    ``RedisLimiterError`` once ``connect_timeout`` has passed, not a hang."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes the TCP handshake; nothing ever answers
        port = listener.getsockname()[1]
        limiter = RedisRateLimiter.from_url(
            f"redis://127.0.0.1:{port}/0", key_prefix=prefix(), connect_timeout=0.3
        )
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(RedisLimiterError, match="did not answer"):
            await limiter.check()
        assert loop.time() - start < 2.0
        await limiter.aclose()
