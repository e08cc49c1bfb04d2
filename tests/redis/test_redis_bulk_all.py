"""An ``_all`` method paces its chunks on the client's limiter, the Redis one included: the
tier-1 endpoint's own budget in Redis spaces them."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

import knock_async as ka
from knock_async.redis import RedisRateLimiter
from knock_async.testing import EmulatorRateLimits, KnockEmulator
from tests.redis._server import RedisServer

# Tier 1 at 5/s here: three chunks in 0.4 s of real time, spaced widely enough that a loaded
# machine's event-loop lag (tens of ms, on the first send and not the next) stays inside the
# tolerance below.
RATE = 5.0
LAG = 0.05


def test_identify_all_is_paced_by_the_redis_budget_of_its_endpoint(
    shared_redis: RedisServer,
) -> None:
    """2,500 users through ``identify_all`` with a ``RedisRateLimiter``: three requests, at
    least 1/RATE s apart as sent, none refused by the emulator (which enforces the same rate),
    and the budget in Redis is ``users.bulk.identify``'s, paced at the tier-1 rate."""

    async def run() -> None:
        limits = ka.RateLimits(tier1_per_second=RATE)
        limiter = RedisRateLimiter.from_url(
            shared_redis.url,
            key_prefix=f"test-{uuid.uuid4().hex}",
            limits=limits,
            timeout=10.0,
            connect_timeout=10.0,
        )
        sent_at: list[float] = []

        def hook(event: object) -> None:
            if isinstance(event, ka.RequestSent) and event.method == "POST":
                sent_at.append(time.monotonic())

        # The emulator enforces the same rate with room for a loaded machine's jitter (a
        # 20 ms late answer must not turn into a 429 here); the spacing is checked as sent.
        emulator_limits = EmulatorRateLimits(tier1_per_second=RATE, burst_seconds=5 / RATE)
        async with (
            limiter,
            KnockEmulator(rows_per_second=1_000_000.0, rate_limits=emulator_limits) as emu,
            ka.KnockClient(
                api_key="sk_test_redis_all", base_url=emu.base_url, rate_limits=limiter,
                hooks=[hook],
            ) as knock,
        ):  # fmt: skip
            users = ({"id": f"u{i}"} for i in range(2500))
            summary = await knock.users.bulk.identify_all(users=users)
            state = await limiter.state(ka.Tier.USERS_IDENTIFY)
            assert emu.stats.rate_limited == 0
        assert summary.ok
        assert len(sent_at) == 3
        gaps = [b - a for a, b in itertools.pairwise(sent_at)]
        assert all(gap >= 1 / RATE - LAG for gap in gaps), gaps
        assert state.rate == RATE

    asyncio.run(run())
