"""``RedisRateLimiter`` across switches: shared to fallback and back, and one event loop to
the next. A real ``redis-server`` on loopback, stopped and started again."""

from __future__ import annotations

import asyncio
import itertools
import uuid

from knock_async import RateLimits, Tier
from knock_async.redis import RedisRateLimiter
from tests.redis._server import RedisServer


def prefix() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_no_burst_on_the_way_to_the_fallback_and_back(redis_server: RedisServer) -> None:
    """Grants at 20/s shared, then Redis stops (fallback at 10/s), then it is back: no two
    grants are closer than the rate of the later one allows. The first fallback grant keeps
    a fallback interval from the last shared one, and the first shared grant after the
    fallback keeps a shared interval from the last fallback one, though Redis came back
    empty (its schedule would grant at once)."""
    limits = RateLimits(post_per_second=20.0)
    limiter = RedisRateLimiter.from_url(
        redis_server.url,
        key_prefix=prefix(),
        limits=limits,
        timeout=0.2,
        fallback_share=0.5,
        probe_interval=0.2,
    )
    loop = asyncio.get_running_loop()
    grants: list[tuple[float, bool]] = []  # (when, on the fallback)

    async def take() -> None:
        await limiter.acquire(Tier.POST)
        grants.append((loop.time(), limiter.degraded))

    async with limiter:
        for _ in range(3):
            await take()
        redis_server.stop()
        for _ in range(3):
            await take()
        redis_server.start()
        deadline = loop.time() + 3.0
        while grants[-1][1] and loop.time() < deadline:
            await take()
        await take()
    modes = [fallback for _, fallback in grants]
    assert modes[:3] == [False] * 3
    assert modes[3:6] == [True] * 3
    assert modes[-2:] == [False, False]
    for (before, _), (after, fallback) in itertools.pairwise(grants):
        interval = 1 / 10.0 if fallback else 1 / 20.0
        # Lower bounds only: a busy machine can make a grant late, never early.
        # Grants in Redis come back a round trip late, give or take its jitter.
        assert after - before >= interval * 0.8, grants


def test_a_limiter_works_on_a_second_event_loop(shared_redis: RedisServer) -> None:
    """A limiter used in one ``asyncio.run`` and again in the next (as a client can be)
    keeps sharing: its connections and locks are made again for the new loop, and the old
    loop's are closed when that loop shuts down (no "Event loop is closed")."""
    limits = RateLimits(post_per_second=50.0)
    limiter = RedisRateLimiter.from_url(shared_redis.url, key_prefix=prefix(), limits=limits)

    async def use() -> bool:
        # Two acquires of one tier at once: the tier's lock is contended on this loop.
        await asyncio.gather(limiter.acquire(Tier.POST), limiter.acquire(Tier.POST))
        limiter.on_rate_limited(Tier.GET)
        await limiter.acquire(Tier.GET)
        return limiter.degraded

    assert asyncio.run(use()) is False
    assert asyncio.run(use()) is False

    async def close() -> float:
        rate = (await limiter.state(Tier.GET)).rate
        await limiter.aclose()
        return rate

    # The slow-downs reported on each loop were written to Redis.
    assert asyncio.run(close()) < 200.0
