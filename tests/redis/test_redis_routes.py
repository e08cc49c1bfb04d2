"""The Redis limiter keeps one budget per endpoint (route), each at its tier's rate: the ten
tier-1 bulk endpoints (users, objects, tenants, schedules) do not share one budget."""

from __future__ import annotations

import asyncio
import uuid

from knock_async import RateLimits, Tier
from knock_async.redis import RedisRateLimiter
from tests.redis._server import RedisServer


def test_each_route_has_its_own_key_and_rate(shared_redis: RedisServer) -> None:
    """Every Tier (one per route) has a key of its own under the environment's prefix; a
    tier-1 endpoint is paced at ``tier1_per_second`` in Redis, and taking its slot leaves
    another tier-1 endpoint's slot free."""

    async def run() -> None:
        prefix = f"test-{uuid.uuid4().hex}"
        limits = RateLimits(tier1_per_second=1.0)
        limiter = RedisRateLimiter.from_url(
            shared_redis.url, key_prefix=prefix, limits=limits, timeout=10.0, connect_timeout=10.0
        )
        async with limiter:
            keys = {limiter.key(tier) for tier in Tier}
            assert len(keys) == len(Tier) == 12
            assert limiter.key(Tier.USERS_IDENTIFY).endswith(":ratelimit:users.bulk.identify")
            now = 1_800_000_000.0
            first = await limiter._run("acquire", Tier.USERS_IDENTIFY, now=now)
            again = await limiter._run("acquire", Tier.USERS_IDENTIFY, now=now)
            other = await limiter._run("acquire", Tier.TENANTS_DELETE, now=now)
            assert first[0]
            assert other[0]
            assert not again[0]
            assert abs(float(again[1]) - 1.0) < 1e-6  # the next slot, 1 s on at 1/s
            state = await limiter._read_state(Tier.USERS_IDENTIFY, now=now)
            assert state.rate == 1.0

    asyncio.run(run())
