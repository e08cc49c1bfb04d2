"""Knock's rate-limit tiers as token buckets, in memory."""

from __future__ import annotations

import pytest

from knock_async.testing import EmulatorRateLimits
from knock_async.testing._ratelimit import RateLimiter, Tier, TokenBucket


def test_bucket_allows_a_burst_of_one_second_then_refuses() -> None:
    """A 5/s bucket lets 5 requests through at once, refuses the 6th, and refills at 5/s."""
    bucket = TokenBucket(5.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert not bucket.take(0.1)
    assert bucket.take(0.2)
    assert not bucket.take(0.2)
    assert [bucket.take(10.0) for _ in range(6)] == [True] * 5 + [False]


def test_limiter_uses_knock_tiers_per_environment() -> None:
    """POST is 5/s and GET 200/s, each tier counted on its own for the whole environment."""
    limiter = RateLimiter(EmulatorRateLimits())
    posts = [limiter.allow(Tier.BULK_UPDATE, 0.0) for _ in range(6)]
    assert posts == [True] * 5 + [False]
    gets = [limiter.allow(Tier.GET_OPERATION, 0.0) for _ in range(201)]
    assert gets.count(True) == 200
    assert gets[-1] is False


def test_custom_limits() -> None:
    """EmulatorRateLimits takes other rates and refuses rates that are not positive."""
    limiter = RateLimiter(EmulatorRateLimits(post_per_second=1, get_per_second=2))
    assert [limiter.allow(Tier.BULK_UPDATE, 0.0) for _ in range(2)] == [True, False]
    with pytest.raises(ValueError, match="post_per_second"):
        EmulatorRateLimits(post_per_second=0)


def test_burst_seconds_sets_the_bucket_capacity() -> None:
    """burst_seconds=3 lets three seconds' worth of POSTs through at once, then no more."""
    limiter = RateLimiter(EmulatorRateLimits(post_per_second=5.0, burst_seconds=3.0))
    allowed = [limiter.allow(Tier.BULK_UPDATE, now=0.0) for _ in range(16)]
    assert allowed == [True] * 15 + [False]
