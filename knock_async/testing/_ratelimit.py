"""Knock's rate limits, per environment: token buckets on the emulator's clock. Pure.

Knock counts its limits per environment: every key of one environment spends the same
budget. An emulator is one environment, so all the keys it accepts share one bucket per tier.
"""

from __future__ import annotations

import enum

import attrs

from .._validate import attrs_check, positive

__all__ = ["RateLimiter", "EmulatorRateLimits", "Tier", "TokenBucket"]


class Tier(enum.Enum):
    """The two rate-limit tiers the emulated endpoints belong to."""

    BULK_UPDATE = "bulk_update"  # Knock's tier 2
    GET_OPERATION = "get_operation"  # Knock's tier 4


@attrs.frozen(kw_only=True)
class EmulatorRateLimits:
    """Requests per second allowed per environment (shared by all its keys); bursts up to
    ``burst_seconds`` worth.

    The defaults are Knock's: the bulk update POST is tier 2 (5/s), the bulk operation GET is
    tier 4 (200/s), each of the ten other bulk endpoints is tier 1 (1/s, a budget per route).
    A larger ``burst_seconds`` tolerates clients that catch up after a pause (useful on a
    sped-up clock, where a short real pause is a long emulated one).
    """

    post_per_second: float = attrs.field(default=5.0, validator=attrs_check(positive))
    get_per_second: float = attrs.field(default=200.0, validator=attrs_check(positive))
    tier1_per_second: float = attrs.field(default=1.0, validator=attrs_check(positive))
    burst_seconds: float = attrs.field(default=1.0, validator=attrs_check(positive))

    def rate(self, tier: Tier | str) -> float:
        """Requests per second allowed for ``tier``; a route template (the users, objects,
        tenants and schedules bulk endpoints) is tier 1, a budget of its own per route."""
        if isinstance(tier, str):
            return self.tier1_per_second
        return self.post_per_second if tier is Tier.BULK_UPDATE else self.get_per_second


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` (default: ``rate``); full at first."""

    def __init__(self, rate: float, now: float, capacity: float | None = None) -> None:
        self.rate = rate
        self.capacity = rate if capacity is None else capacity
        self._tokens = self.capacity
        self._updated = now

    def take(self, now: float) -> bool:
        """Spend one token at monotonic time ``now``; ``False`` (and nothing spent) if empty."""
        if now > self._updated:
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RateLimiter:
    """One bucket per tier for the whole environment, whichever key a request carries."""

    def __init__(self, limits: EmulatorRateLimits) -> None:
        self.limits = limits
        self._buckets: dict[Tier | str, TokenBucket] = {}

    def allow(self, tier: Tier | str, now: float) -> bool:
        bucket = self._buckets.get(tier)
        if bucket is None:
            rate = self.limits.rate(tier)
            bucket = self._buckets[tier] = TokenBucket(
                rate, now, capacity=max(1.0, rate * self.limits.burst_seconds)
            )
        return bucket.take(now)
