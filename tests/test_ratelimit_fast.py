"""The limiter's no-wait path against the pure ``PacingState`` arithmetic it inlines.

``AdaptiveRateLimiter`` grants a due slot by moving one float (``try_acquire``, and ``acquire``
when nobody is queued) instead of building a new ``PacingState`` per request. These tests drive
it and the pure model side by side through any sequence of grants, 429s and successes, and
check that both decide alike and end in equal states.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knock_async._ratelimit import AdaptiveRateLimiter, PacingState, RateLimits, Tier

T0 = 1000.0

_events = st.lists(
    st.tuples(
        st.floats(0, 2, allow_nan=False),  # seconds since the previous event
        st.sampled_from(["grant", "429", "ok"]),
        st.none() | st.floats(0, 5, allow_nan=False),  # a 429's Retry-After
    ),
    max_size=40,
)
_limits = st.builds(
    RateLimits,
    post_per_second=st.floats(0.5, 50),
    post_burst=st.integers(1, 4),
    slowdown_factor=st.floats(0.1, 1),
    recovery_per_second=st.floats(0.01, 2),
    slowdown_cooldown=st.floats(0, 2),
)


@settings(max_examples=300)
@given(_limits, _events)
def test_no_wait_grants_match_the_pure_arithmetic(
    limits: RateLimits, events: list[tuple[float, str, float | None]]
) -> None:
    """Whatever happens, try_acquire grants exactly when PacingState.reserve says the slot is
    due, and the limiter's state is the model's after every event."""
    now = [T0]
    limiter = AdaptiveRateLimiter(limits, clock=lambda: now[0])
    model = PacingState.initial(limits, Tier.POST)
    for step, event, retry_after in events:
        now[0] += step
        if event == "grant":
            slot, reserved = model.reserve(now[0])
            due = slot <= now[0] + 1e-9
            if due:
                model = reserved
            assert limiter.try_acquire(Tier.POST) is due
        elif event == "429":
            model = model.rate_limited(now[0], retry_after)
            limiter.on_rate_limited(Tier.POST, retry_after=retry_after)
        else:
            if model.rate < model.configured_rate:
                model = model.succeeded(now[0])
            limiter.on_success(Tier.POST)
        assert limiter.state(Tier.POST) == model
    assert limiter.state(Tier.GET) == PacingState.initial(limits, Tier.GET)


def test_acquire_with_a_free_slot_completes_without_suspending() -> None:
    """An acquire that needs no wait finishes on its first step: it never yields to the loop."""
    now = [T0]
    limiter = AdaptiveRateLimiter(RateLimits(post_per_second=1.0), clock=lambda: now[0])
    coroutine = limiter.acquire(Tier.POST)
    with pytest.raises(StopIteration):
        coroutine.send(None)
    assert limiter.state(Tier.POST).tat == T0 + 1.0


def test_try_acquire_takes_nothing_when_the_slot_is_not_due() -> None:
    """A refused try_acquire leaves the state as it was, so the caller's acquire gets the slot."""
    now = [T0]
    limiter = AdaptiveRateLimiter(RateLimits(post_per_second=2.0), clock=lambda: now[0])
    assert limiter.try_acquire("post")
    before = limiter.state("post")
    assert not limiter.try_acquire("post")
    assert limiter.state("post") == before
    now[0] += 0.5
    assert limiter.try_acquire("post")
    assert limiter.state("post").tat == pytest.approx(T0 + 1.0)


def test_try_acquire_rejects_an_unknown_tier() -> None:
    """An unknown tier is a ValueError naming the tiers, as acquire's is."""
    limiter = AdaptiveRateLimiter(clock=lambda: T0)
    with pytest.raises(ValueError, match="tier must be one of post, get"):
        limiter.try_acquire("put")


def test_fresh_limiter_state_is_untouched_until_a_grant() -> None:
    """Reading the state of a tier that never granted gives the initial state (tat -inf)."""
    limiter = AdaptiveRateLimiter(clock=lambda: T0)
    assert limiter.state(Tier.POST).tat == -math.inf
