"""The client paces its own requests with its rate limiter (Knock's tiers by default)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import knock_async as ka
from tests._support import CHANNEL_ID, OPERATION_ID, FakeKnock, Reply, VirtualTime

MakeClient = Callable[..., ka.KnockClient]


async def test_posts_are_paced_at_five_per_second(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """Ten concurrent bulk POSTs leave 0.2 s apart on the client's clock: no burst, no 429."""
    async with make_client() as knock:
        start = vtime.now
        await asyncio.gather(
            *(knock.channels.bulk.update_message_status(CHANNEL_ID, "read") for _ in range(10))
        )
    assert len(fake_knock.requests) == 10
    assert vtime.now - start == pytest.approx(1.8)  # nine gaps of 1/5 s after the first


async def test_pacing_can_be_turned_off(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """rate_limits=None sends at once: no sleeping at all."""
    async with make_client(rate_limits=None) as knock:
        await asyncio.gather(
            *(knock.channels.bulk.update_message_status(CHANNEL_ID, "read") for _ in range(10))
        )
    assert vtime.sleeps == []


async def test_custom_rates_and_a_429_slows_down(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """Configured rates apply per tier; a 429 halves the effective rate of that tier."""
    limits = ka.RateLimits(get_per_second=10.0)
    fake_knock.reply("GET", Reply(429, {"code": "rate_limited", "message": "slow down"}))
    async with make_client(rate_limits=limits) as knock:
        await knock.bulk_operations.get(OPERATION_ID)
        limiter = knock._transport.limiter
        assert isinstance(limiter, ka.AdaptiveRateLimiter)
        assert limiter.state(ka.Tier.GET).rate < 10.0
    assert len(fake_knock.requests) == 2


async def test_custom_limiter_is_called(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """An application's own RateLimiter is asked before every request and told the outcome."""

    class Recording:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str]] = []

        async def acquire(self, tier: ka.Tier) -> None:
            self.calls.append(("acquire", tier))

        def on_rate_limited(self, tier: ka.Tier, *, retry_after: float | None = None) -> None:
            self.calls.append(("429", tier))

        def on_success(self, tier: ka.Tier) -> None:
            self.calls.append(("ok", tier))

    limiter = Recording()
    assert isinstance(limiter, ka.RateLimiter)
    fake_knock.reply("POST", Reply(429, {"code": "rate_limited", "message": "slow down"}))
    async with make_client(rate_limits=limiter) as knock:
        await knock.channels.bulk.update_message_status(CHANNEL_ID, "read")
        await knock.bulk_operations.get(OPERATION_ID)
    assert limiter.calls == [
        ("acquire", "post"),
        ("429", "post"),
        ("acquire", "post"),
        ("ok", "post"),
        ("acquire", "get"),
        ("ok", "get"),
    ]
