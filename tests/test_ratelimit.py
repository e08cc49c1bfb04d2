"""Client-side pacing: the GCRA arithmetic, the adaptive rate and the async limiter.

Timing tests run in virtual time, never on the wall clock: either with an injected clock and a
fake ``sleep`` that advances it (``FakeTime``), or on ``VirtualTimeLoop``, an event loop whose
``time()`` is virtual and whose selector jumps the clock forward instead of blocking, so the
limiter's defaults (the loop's clock, ``asyncio.sleep``) run unchanged and a thousand seconds of
pacing take milliseconds.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import selectors
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from knock_async._ratelimit import (
    AdaptiveRateLimiter,
    PacingState,
    RateLimiter,
    RateLimits,
    Tier,
    gcra_next_slot,
    gcra_rescale,
    gcra_reserve,
    make_rate_limiter,
)

T = TypeVar("T")
INF = math.inf
# Virtual clocks start away from zero so that nothing can pass by assuming time starts at 0.
T0 = 1000.0
TOLERANCE = 1e-6


# --------------------------------------------------------------------------------------------
# Virtual time


class FakeTime:
    """An injected clock plus a ``sleep`` that records the delay and advances the clock at once.

    Exact as long as one task sleeps at a time, which is what the limiter does per tier.
    """

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        await asyncio.sleep(0)


class _VirtualClock:
    def __init__(self, now: float) -> None:
        self.now = now


class _AdvancingSelector(selectors.DefaultSelector):
    """Moves the virtual clock over the time the loop would block for, instead of blocking."""

    def __init__(self, clock: _VirtualClock) -> None:
        super().__init__()
        self._virtual_clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise RuntimeError("deadlock: nothing is scheduled on the virtual-time loop")
        self._virtual_clock.now += max(0.0, timeout)
        return super().select(0)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock: timers fire in order, instantly in real time."""

    def __init__(self) -> None:
        self._virtual_clock = _VirtualClock(T0)
        super().__init__(selector=_AdvancingSelector(self._virtual_clock))

    def time(self) -> float:
        return self._virtual_clock.now


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main())


def loop_time() -> float:
    return asyncio.get_running_loop().time()


# --------------------------------------------------------------------------------------------
# Helpers


def max_in_half_open_window(times: Sequence[float], width: float) -> int:
    """The most of ``times`` (sorted) inside any window ``[t, t + width)``."""
    best, j = 0, 0
    for i, start in enumerate(times):
        j = max(j, i)
        # A nanosecond of slack: float sums of 1/rate must not count as a crowded window.
        while j < len(times) and times[j] < start + width - 1e-9:
            j += 1
        best = max(best, j - i)
    return best


def assert_window_bound(times: Sequence[float], rate: float, burst: int) -> None:
    """No closed window of length T holds more than ``burst + rate * T`` of ``times``."""
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            count = j - i + 1
            span = times[j] - times[i]
            assert count <= burst + rate * span + TOLERANCE, (i, j, span, count)


def limiter_with(fake: FakeTime, **limits: Any) -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(RateLimits(**limits), clock=fake.clock, sleep=fake.sleep)


def state(**limits: Any) -> PacingState:
    return PacingState.initial(RateLimits(**limits), Tier.POST)


# --------------------------------------------------------------------------------------------
# RateLimits


def test_rate_limits_defaults_match_knock_tiers() -> None:
    """The defaults are Knock's documented limits with bursts of 1 and a halving slow-down."""
    limits = RateLimits()
    assert limits.per_second(Tier.POST) == 5.0
    assert limits.per_second(Tier.GET) == 200.0
    assert limits.burst(Tier.POST) == 1
    assert limits.burst(Tier.GET) == 1
    assert limits.slowdown_factor == 0.5


def test_rate_limits_are_frozen_and_keyword_only() -> None:
    """RateLimits cannot be mutated or built positionally."""
    limits = RateLimits()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        limits.post_per_second = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        RateLimits(5.0)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        (
            "post_per_second",
            0,
            ValueError,
            r"RateLimits\.post_per_second must be a finite number > 0",
        ),
        ("post_per_second", -5.0, ValueError, r"RateLimits\.post_per_second must be a finite num"),
        ("get_per_second", math.inf, ValueError, r"RateLimits\.get_per_second must be a finite"),
        ("get_per_second", math.nan, ValueError, r"RateLimits\.get_per_second must be a finite"),
        ("get_per_second", "200", TypeError, r"RateLimits\.get_per_second must be a finite number"),
        (
            "post_per_second",
            True,
            TypeError,
            r"RateLimits\.post_per_second must be a finite number",
        ),
        ("post_burst", 0, ValueError, r"RateLimits\.post_burst must be an int >= 1"),
        ("get_burst", 2.0, TypeError, r"RateLimits\.get_burst must be an int"),
        ("post_burst", True, TypeError, r"RateLimits\.post_burst must be an int"),
        (
            "slowdown_factor",
            0.0,
            ValueError,
            r"RateLimits\.slowdown_factor must be a number in \(0, 1\]",
        ),
        (
            "slowdown_factor",
            1.5,
            ValueError,
            r"RateLimits\.slowdown_factor must be a number in \(0, 1\]",
        ),
        ("min_rate_fraction", 0, ValueError, r"RateLimits\.min_rate_fraction must be a number in"),
        (
            "recovery_per_second",
            0.0,
            ValueError,
            r"RateLimits\.recovery_per_second must be a finite number > 0",
        ),
        (
            "slowdown_cooldown",
            -1.0,
            ValueError,
            r"RateLimits\.slowdown_cooldown must be a finite number >= 0",
        ),
        ("slowdown_cooldown", math.inf, ValueError, r"RateLimits\.slowdown_cooldown must be"),
    ],
)
def test_rate_limits_reject_bad_values_naming_the_field(
    field: str, value: object, error: type[Exception], message: str
) -> None:
    """A bad value raises ValueError/TypeError whose message names the offending field."""
    kwargs: dict[str, Any] = {field: value}
    with pytest.raises(error, match=message):
        RateLimits(**kwargs)


def test_rate_limits_accept_edge_values() -> None:
    """Ints for rates, a factor of 1 (no slow-down) and a zero cooldown are valid."""
    limits = RateLimits(post_per_second=1, slowdown_factor=1.0, slowdown_cooldown=0)
    assert limits.per_second(Tier.POST) == 1


# --------------------------------------------------------------------------------------------
# Pure GCRA arithmetic


@pytest.mark.parametrize(
    ("tat", "now", "interval", "burst", "expected"),
    [
        (-INF, 10.0, 0.2, 1, 10.0),  # never used: go now
        (9.0, 10.0, 0.2, 1, 10.0),  # backlog paid off in the past
        (10.0, 10.0, 0.2, 1, 10.0),  # paid off exactly now
        (10.6, 10.0, 0.2, 1, 10.6),  # committed up to 10.6: wait for it
        (10.6, 10.0, 0.2, 3, 10.2),  # a burst of 3 tolerates two intervals of backlog
        (10.6, 10.0, 0.2, 5, 10.0),  # within the burst: go now
    ],
)
def test_gcra_next_slot(
    tat: float, now: float, interval: float, burst: int, expected: float
) -> None:
    """The next slot is now unless the backlog exceeds what the burst tolerates."""
    assert gcra_next_slot(tat, now, interval, burst) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("tat", "now", "interval", "burst", "slot", "new_tat"),
    [
        (-INF, 10.0, 0.2, 1, 10.0, 10.2),
        (9.0, 10.0, 0.2, 1, 10.0, 10.2),  # idle time is not banked
        (10.2, 10.0, 0.2, 1, 10.2, 10.4),  # queued one interval behind the last
        (10.2, 10.0, 0.2, 3, 10.0, 10.4),  # burst: now, but the backlog still grows
        (10.6, 10.0, 0.2, 3, 10.2, 10.8),  # burst used up: the slot is in the future
    ],
)
def test_gcra_reserve(
    tat: float, now: float, interval: float, burst: int, slot: float, new_tat: float
) -> None:
    """Reserving returns the next slot and moves the theoretical arrival time one interval on."""
    got_slot, got_tat = gcra_reserve(tat, now, interval, burst)
    assert got_slot == pytest.approx(slot)
    assert got_tat == pytest.approx(new_tat)


@pytest.mark.parametrize(
    ("tat", "now", "old", "new", "expected"),
    [
        (-INF, 10.0, 0.2, 0.4, -INF),  # no backlog: unchanged
        (9.0, 10.0, 0.2, 0.4, 9.0),  # backlog in the past: unchanged
        (11.0, 10.0, 0.2, 0.4, 12.0),  # 5 requests of backlog at half the rate: twice as long
        (11.0, 10.0, 0.4, 0.2, 10.5),  # and at twice the rate, half as long
    ],
)
def test_gcra_rescale(tat: float, now: float, old: float, new: float, expected: float) -> None:
    """A rate change keeps the committed backlog as a number of requests."""
    assert gcra_rescale(tat, now, old, new) == pytest.approx(expected)


def test_pacing_state_spaces_reservations_one_interval_apart() -> None:
    """Reservations made at the same instant get slots now, now+1/rate, now+2/rate, ..."""
    s = state(post_per_second=5.0)
    slots = []
    for _ in range(4):
        slot, s = s.reserve(10.0)
        slots.append(slot)
    assert slots == pytest.approx([10.0, 10.2, 10.4, 10.6])


def test_pacing_state_burst_then_steady_rate_then_refill() -> None:
    """A burst of 3 goes at once, the rest follow at the rate, and idling refills the burst."""
    s = state(post_per_second=10.0, post_burst=3)
    slots = []
    for _ in range(5):
        slot, s = s.reserve(10.0)
        slots.append(slot)
    assert slots == pytest.approx([10.0, 10.0, 10.0, 10.1, 10.2])
    # Last slot 10.2; three intervals later the whole burst is back.
    later = [s.reserve(10.5)[0]]
    s = s.reserve(10.5)[1]
    for _ in range(2):
        slot, s = s.reserve(10.5)
        later.append(slot)
    assert later == pytest.approx([10.5, 10.5, 10.5])


# --------------------------------------------------------------------------------------------
# Pure adaptive arithmetic


def _after_429s(times: Sequence[float], **limits: Any) -> PacingState:
    s = state(**limits)
    for t in times:
        s = s.rate_limited(t)
    return s


@pytest.mark.parametrize(
    ("description", "build", "now", "rate", "next_slot"),
    [
        (
            "a 429 halves the rate and holds the tier one new interval",
            lambda: _after_429s([10.0]),
            10.0,
            2.5,
            10.4,
        ),
        (
            "a 429 within the cooldown holds the tier but does not slow it further",
            lambda: _after_429s([10.0, 10.5]),
            10.5,
            2.5,
            10.9,
        ),
        (
            "a 429 after the cooldown halves again",
            lambda: _after_429s([10.0, 11.0]),
            11.0,
            1.25,
            11.8,
        ),
        (
            "the rate never drops below min_rate_fraction of the configured rate",
            lambda: _after_429s([10.0, 11.0, 12.0, 13.0, 14.0, 15.0]),
            15.0,
            0.5,
            17.0,
        ),
        (
            "a zero cooldown slows down on every 429",
            lambda: _after_429s([10.0, 10.0], slowdown_cooldown=0.0),
            10.0,
            1.25,
            10.8,
        ),
        (
            "slowdown_factor=1 turns the slow-down off but still holds the tier",
            lambda: _after_429s([10.0], slowdown_factor=1.0),
            10.0,
            5.0,
            10.2,
        ),
        (
            "a longer Retry-After holds the tier until it has passed",
            lambda: state().rate_limited(10.0, retry_after=3.0),
            10.0,
            2.5,
            13.0,
        ),
        (
            "a Retry-After shorter than the new interval does not shorten the hold",
            lambda: state().rate_limited(10.0, retry_after=0.1),
            10.0,
            2.5,
            10.4,
        ),
        (
            "a nonsensical Retry-After (NaN) is ignored",
            lambda: state().rate_limited(10.0, retry_after=math.nan),
            10.0,
            2.5,
            10.4,
        ),
        (
            "an infinite Retry-After is ignored rather than stalling the tier forever",
            lambda: state().rate_limited(10.0, retry_after=math.inf),
            10.0,
            2.5,
            10.4,
        ),
        (
            "a committed backlog is paid for at the slower rate",
            # Five requests committed up to 11.0 at 5/s take until 12.0 at 2.5/s.
            lambda: attrs.evolve(state(), tat=11.0).rate_limited(10.0),
            10.0,
            2.5,
            12.0,
        ),
        (
            "after a 429 the burst is gone: the server's bucket is empty",
            lambda: _after_429s([10.0], post_burst=4),
            10.0,
            2.5,
            10.4,
        ),
    ],
)
def test_rate_limited(
    description: str, build: Callable[[], PacingState], now: float, rate: float, next_slot: float
) -> None:
    """On a 429 the rate drops multiplicatively (floor, cooldown) and the tier is held."""
    s = build()
    assert s.rate == pytest.approx(rate), description
    assert s.next_slot(now) == pytest.approx(next_slot), description


def test_burst_refills_after_a_429() -> None:
    """After a 429 the burst comes back at the (slower) rate, not at once."""
    s = _after_429s([10.0], post_burst=3)
    slots = []
    for now in (10.0, 10.0, 10.0):
        slot, s = s.reserve(now)
        slots.append(slot)
    assert slots == pytest.approx([10.4, 10.8, 11.2])


@pytest.mark.parametrize(
    ("description", "events", "rate"),
    [
        ("successes recover linearly, 10% of the rate per second", [(429, 10.0), (200, 12.0)], 3.5),
        ("recovery is credited between successes", [(429, 10.0), (200, 11.0), (200, 12.0)], 3.5),
        ("recovery stops at the configured rate", [(429, 10.0), (200, 30.0)], 5.0),
        ("a success in the same instant as the 429 gains nothing", [(429, 10.0), (200, 10.0)], 2.5),
        (
            "a 429 in the cooldown restarts the recovery clock",
            [(429, 10.0), (429, 10.5), (200, 11.5)],
            3.0,
        ),
    ],
)
def test_succeeded(description: str, events: Sequence[tuple[int, float]], rate: float) -> None:
    """Successes bring the rate back up linearly in time, capped at the configured rate."""
    s = state()
    for status, at in events:
        s = s.rate_limited(at) if status == 429 else s.succeeded(at)
    assert s.rate == pytest.approx(rate), description


def test_succeeded_at_full_rate_changes_nothing() -> None:
    """A success at the configured rate returns the state unchanged."""
    s = state()
    assert s.succeeded(10.0) is s


def test_recovery_speeds_up_the_committed_backlog() -> None:
    """A rate increase pays the remaining backlog off at the faster rate."""
    s = attrs.evolve(_after_429s([10.0]), tat=12.0)  # 5 requests at 2.5/s from 10.0
    s = s.succeeded(11.0)  # rate 3.0: the 2.5 requests still owed take 2.5/3.0 s
    assert s.rate == pytest.approx(3.0)
    assert s.tat == pytest.approx(11.0 + 2.5 / 3.0)


# --------------------------------------------------------------------------------------------
# Property tests of the arithmetic

arrival_gaps = st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=80)


@given(
    rate=st.floats(min_value=0.1, max_value=1000.0),
    burst=st.integers(min_value=1, max_value=10),
    gaps=arrival_gaps,
)
def test_gcra_never_exceeds_burst_plus_rate_times_window(
    rate: float, burst: int, gaps: list[float]
) -> None:
    """For any arrivals, slots are never early, never out of order, never more than
    burst + rate*T in a window T, and a request waits only when going at once would break that.
    """
    s = state(post_per_second=rate, post_burst=burst)
    now, arrivals, slots = 0.0, [], []
    for gap in gaps:
        now += gap
        slot, s = s.reserve(now)
        arrivals.append(now)
        slots.append(slot)
    assert all(slot >= arrival for slot, arrival in zip(slots, arrivals, strict=True))
    assert slots == sorted(slots)
    assert_window_bound(slots, rate, burst)
    # Tightness: every delay is forced. Granting k at its arrival would have put more than
    # burst + rate*T grants in the window from some earlier grant i to it.
    for k, (slot, arrival) in enumerate(zip(slots, arrivals, strict=True)):
        if slot > arrival + TOLERANCE:
            assert any(
                k - i + 1 > burst + rate * (arrival - slots[i]) + TOLERANCE for i in range(k)
            ), k


@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(["429", "success"]),
            st.floats(min_value=0.0, max_value=3.0),
            st.none() | st.floats(min_value=-1.0, max_value=5.0),
        ),
        max_size=50,
    )
)
def test_adaptive_rate_stays_between_floor_and_configured(
    events: list[tuple[str, float, float | None]],
) -> None:
    """Whatever the sequence of 429s and successes, the rate stays in [floor, configured] and a
    429 always holds the tier for at least one interval at the new rate.
    """
    limits = RateLimits()
    s = PacingState.initial(limits, Tier.POST)
    now = 0.0
    for kind, gap, retry_after in events:
        now += gap
        if kind == "429":
            s = s.rate_limited(now, retry_after)
            assert s.next_slot(now) >= now + 1.0 / s.rate - TOLERANCE
        else:
            s = s.succeeded(now)
        assert 5.0 * limits.min_rate_fraction - TOLERANCE <= s.rate <= 5.0


# --------------------------------------------------------------------------------------------
# The async limiter with an injected clock and sleep


async def test_first_acquire_does_not_sleep() -> None:
    """An idle limiter grants at once, without calling sleep."""
    fake = FakeTime()
    limiter = limiter_with(fake)
    await limiter.acquire(Tier.POST)
    assert fake.sleeps == []
    assert fake.now == T0


async def test_thousand_concurrent_acquirers_are_paced_exactly() -> None:
    """1,000 concurrent acquirers are granted FIFO at T0 + k/rate, each after one sleep of one
    interval, and no one-second window ever holds more than the rate.
    """
    fake = FakeTime()
    limiter = limiter_with(fake, post_per_second=5.0)
    grants: list[tuple[int, float]] = []

    async def take(index: int) -> None:
        await limiter.acquire(Tier.POST)
        grants.append((index, fake.now))

    await asyncio.gather(*(take(i) for i in range(1000)))

    assert [index for index, _ in grants] == list(range(1000))
    times = [t for _, t in grants]
    assert times == pytest.approx([T0 + k / 5.0 for k in range(1000)], abs=TOLERANCE)
    # No busy waiting: the first went at once, every other one slept exactly once.
    assert len(fake.sleeps) == 999
    assert fake.sleeps == pytest.approx([0.2] * 999, abs=TOLERANCE)
    assert max_in_half_open_window(times, 1.0) == 5


async def test_thousand_acquirers_with_a_burst() -> None:
    """With burst B, the first B go at once, then one per interval; a one-second window holds
    at most B + rate - 1 (the burst plus a window's worth of steady rate).
    """
    fake = FakeTime()
    limiter = limiter_with(fake, post_per_second=10.0, post_burst=4)
    times: list[float] = []

    async def take() -> None:
        await limiter.acquire(Tier.POST)
        times.append(fake.now)

    await asyncio.gather(*(take() for _ in range(1000)))

    expected = [T0] * 4 + [T0 + k / 10.0 for k in range(1, 997)]
    assert times == pytest.approx(expected, abs=TOLERANCE)
    assert max_in_half_open_window(times, 1.0) == 4 + 10 - 1
    assert_window_bound(times[:200], 10.0, 4)


async def test_acquire_accepts_tier_names_and_rejects_unknown_tiers() -> None:
    """Tiers can be given as their string values; an unknown tier is a ValueError."""
    fake = FakeTime()
    limiter = limiter_with(fake)
    await limiter.acquire("get")
    with pytest.raises(ValueError, match="'put'"):
        await limiter.acquire("put")
    with pytest.raises(ValueError, match="'put'"):
        limiter.on_success("put")


async def test_429_slows_the_queue_already_waiting() -> None:
    """A 429 reported while a fan-out is queued slows down the requests already queued, not
    only later ones: after it, grants are spaced at the halved rate.
    """
    fake = FakeTime()
    limiter = limiter_with(fake, post_per_second=5.0)
    times: list[float] = []

    async def take(index: int) -> None:
        await limiter.acquire(Tier.POST)
        times.append(fake.now)
        if index == 2:
            limiter.on_rate_limited(Tier.POST)

    await asyncio.gather(*(take(i) for i in range(8)))

    # Grants 0..2 at 0.2 s spacing; the 429 at T0+0.4 halves the rate: 0.4 s from then on.
    expected = [T0, T0 + 0.2, T0 + 0.4] + [T0 + 0.4 + 0.4 * k for k in range(1, 6)]
    assert times == pytest.approx(expected, abs=TOLERANCE)
    assert limiter.state(Tier.POST).rate == pytest.approx(2.5)


async def test_recovery_after_429_returns_to_the_configured_rate() -> None:
    """With every request succeeding after a 429, the rate climbs back linearly (0.1 of the
    configured rate per second: from 2.5/s to 5/s in 5 s) and the spacing shrinks to 1/rate.
    """
    fake = FakeTime()
    limiter = limiter_with(fake, post_per_second=5.0, recovery_per_second=0.1)
    limiter.on_rate_limited(Tier.POST)
    assert limiter.state(Tier.POST).rate == pytest.approx(2.5)
    times: list[float] = []
    rates: list[float] = []

    async def take() -> None:
        await limiter.acquire(Tier.POST)
        times.append(fake.now)
        limiter.on_success(Tier.POST)
        rates.append(limiter.state(Tier.POST).rate)

    await asyncio.gather(*(take() for _ in range(60)))

    assert times[0] == pytest.approx(T0 + 0.4)  # held one interval at the halved rate
    for t, rate in zip(times, rates, strict=True):
        assert rate == pytest.approx(min(5.0, 2.5 + 0.5 * (t - T0)))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(b <= a + TOLERANCE for a, b in itertools.pairwise(gaps))  # never slower
    assert gaps[-1] == pytest.approx(0.2, abs=TOLERANCE)
    assert rates[-1] == 5.0


async def test_tiers_are_paced_and_slowed_independently() -> None:
    """A 429 on the POST tier does not slow the GET tier."""
    fake = FakeTime()
    limiter = limiter_with(fake)
    limiter.on_rate_limited(Tier.POST)
    assert limiter.state(Tier.GET).rate == 200.0
    await limiter.acquire(Tier.GET)
    assert fake.sleeps == []


# --------------------------------------------------------------------------------------------
# The async limiter on its defaults (the loop's clock and asyncio.sleep), in virtual time


def test_defaults_pace_both_tiers_concurrently() -> None:
    """With the default clock and sleep, 50 POSTs and 1,000 GETs acquired concurrently are
    granted at k/5 and k/200 seconds respectively, each tier on its own schedule.
    """

    async def main() -> tuple[list[float], list[float]]:
        limiter = AdaptiveRateLimiter()
        posts: list[float] = []
        gets: list[float] = []

        async def take(tier: Tier, out: list[float]) -> None:
            await limiter.acquire(tier)
            out.append(loop_time())

        await asyncio.gather(
            *(take(Tier.POST, posts) for _ in range(50)),
            *(take(Tier.GET, gets) for _ in range(1000)),
        )
        return posts, gets

    posts, gets = run_virtual(main)
    assert posts == pytest.approx([T0 + k / 5.0 for k in range(50)], abs=TOLERANCE)
    assert gets == pytest.approx([T0 + k / 200.0 for k in range(1000)], abs=TOLERANCE)
    assert max_in_half_open_window(posts, 1.0) == 5
    assert max_in_half_open_window(gets, 1.0) == 200


def _cancellation_scenario(
    count: int, cancel_index: int, cancel_at: float
) -> dict[int, float | None]:
    """Start ``count`` acquirers at T0 (5/s); cancel one at ``T0 + cancel_at``; grant times."""

    async def main() -> dict[int, float | None]:
        loop = asyncio.get_running_loop()
        limiter = AdaptiveRateLimiter()
        granted: dict[int, float | None] = {}

        async def take(index: int) -> None:
            await limiter.acquire(Tier.POST)
            granted[index] = loop_time()

        tasks = [asyncio.create_task(take(i)) for i in range(count)]
        loop.call_at(T0 + cancel_at, tasks[cancel_index].cancel)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for index, result in enumerate(results):
            if isinstance(result, asyncio.CancelledError):
                granted[index] = None
        return granted

    return run_virtual(main)


def test_cancelling_a_queued_waiter_gives_its_turn_to_the_next() -> None:
    """A waiter cancelled while queued behind others takes no slot: the ones behind move up."""
    granted = _cancellation_scenario(count=5, cancel_index=2, cancel_at=0.1)
    assert granted[2] is None
    assert [granted[i] for i in (0, 1, 3, 4)] == pytest.approx(
        [T0, T0 + 0.2, T0 + 0.4, T0 + 0.6], abs=TOLERANCE
    )


def test_cancelling_the_sleeping_head_gives_its_slot_to_the_next() -> None:
    """The waiter sleeping towards the next slot is cancelled: the next waiter gets that very
    slot, not one an interval later.
    """
    granted = _cancellation_scenario(count=4, cancel_index=1, cancel_at=0.1)
    assert granted[1] is None
    assert [granted[i] for i in (0, 2, 3)] == pytest.approx([T0, T0 + 0.2, T0 + 0.4], abs=TOLERANCE)


def test_cancelling_every_waiter_leaves_the_limiter_free() -> None:
    """After all waiters are cancelled, nothing is leaked: a later acquire goes at once."""

    async def main() -> tuple[float, float]:
        limiter = AdaptiveRateLimiter()
        await limiter.acquire(Tier.POST)  # T0
        tasks = [asyncio.create_task(limiter.acquire(Tier.POST)) for _ in range(10)]
        await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        cancelled_at = loop_time()
        await asyncio.sleep(0.5)
        await limiter.acquire(Tier.POST)
        return cancelled_at, loop_time()

    cancelled_at, granted_at = run_virtual(main)
    assert cancelled_at == pytest.approx(T0 + 0.05)
    assert granted_at == pytest.approx(T0 + 0.55)


def test_cancellation_racing_the_hand_over_does_not_stall_the_queue() -> None:
    """A waiter cancelled in the instant it is handed the turn passes the turn on: the waiter
    behind it gets that slot and the queue does not stall.
    """

    async def main() -> dict[str, float]:
        limiter = AdaptiveRateLimiter()
        granted: dict[str, float] = {}
        tasks: dict[str, asyncio.Task[None]] = {}

        async def take(name: str) -> None:
            await limiter.acquire(Tier.POST)
            granted[name] = loop_time()
            if name == "b":
                # b's acquire has just handed the turn to c; cancel c before it can run.
                tasks["c"].cancel()

        for name in "abcd":
            tasks[name] = asyncio.create_task(take(name))
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        assert tasks["c"].cancelled()
        return granted

    granted = run_virtual(main)
    assert set(granted) == {"a", "b", "d"}
    assert granted["a"] == pytest.approx(T0)
    assert granted["b"] == pytest.approx(T0 + 0.2)
    assert granted["d"] == pytest.approx(T0 + 0.4)


def test_retry_after_holds_the_queue_already_waiting() -> None:
    """A Retry-After reported while waiters are queued holds all of them until it has passed."""

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        limiter = AdaptiveRateLimiter()
        times: list[float] = []

        async def take() -> None:
            await limiter.acquire(Tier.POST)
            times.append(loop_time())

        loop.call_at(T0 + 0.1, lambda: limiter.on_rate_limited(Tier.POST, retry_after=3.0))
        await asyncio.gather(*(take() for _ in range(3)))
        return times

    times = run_virtual(main)
    assert times == pytest.approx([T0, T0 + 3.1, T0 + 3.5], abs=TOLERANCE)


async def take_noting(
    limiter: AdaptiveRateLimiter, outcomes: list[str], name: str, deadline: float | None
) -> None:
    """One POST slot taken with ``deadline``, noted in ``outcomes`` as granted or late, with
    the virtual time it happened at."""
    try:
        await limiter.acquire(Tier.POST, deadline=deadline)
    except TimeoutError:
        outcomes.append(f"{name} late at {loop_time() - T0:.1f}")
    else:
        outcomes.append(f"{name} at {loop_time() - T0:.1f}")


def test_a_deadline_the_queue_cannot_meet_fails_at_once() -> None:
    """acquire(deadline=...) raises TimeoutError as soon as its slot cannot come in time
    (taking none), and grants as usual when it can; the queue behind it is not held up."""

    async def main() -> tuple[list[str], float]:
        limiter = AdaptiveRateLimiter()  # POST: 5/s, one every 0.2 s
        outcomes: list[str] = []

        def take(name: str, deadline: float | None) -> Awaitable[None]:
            return take_noting(limiter, outcomes, name, deadline)

        await asyncio.gather(
            take("a", None),  # T0
            take("b", T0 + 0.25),  # its slot, T0 + 0.2, is in time
            take("c", T0 + 0.3),  # would be T0 + 0.4: refused at once
            take("d", None),  # takes the slot c did not: T0 + 0.4
        )
        return outcomes, loop_time()

    outcomes, ended = run_virtual(main)
    assert outcomes == ["a at 0.0", "c late at 0.0", "b at 0.2", "d at 0.4"]
    assert ended == pytest.approx(T0 + 0.4, abs=TOLERANCE)


def test_a_hold_past_queued_deadlines_fails_those_waiters_at_once() -> None:
    """A Retry-After reported while waiters are queued fails, at that moment, those whose
    deadline it would pass; the others wait it out in order."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        limiter = AdaptiveRateLimiter()
        outcomes: list[str] = []

        def take(name: str, deadline: float | None) -> Awaitable[None]:
            return take_noting(limiter, outcomes, name, deadline)

        loop.call_at(T0 + 0.1, lambda: limiter.on_rate_limited(Tier.POST, retry_after=3.0))
        await asyncio.gather(
            take("a", None), take("b", None), take("c", T0 + 2.0), take("d", T0 + 10.0)
        )
        return outcomes

    assert run_virtual(main) == ["a at 0.0", "c late at 0.1", "b at 3.1", "d at 3.5"]


RATES = st.floats(min_value=0.5, max_value=50.0)
BURSTS = st.integers(min_value=1, max_value=5)


def limiter_events(
    kinds: list[str], value: float, size: int
) -> st.SearchStrategy[list[tuple[str, float, float | None]]]:
    """Events ``(kind, offset in seconds, optional value up to value)``."""
    return st.lists(
        st.tuples(
            st.sampled_from(kinds),
            st.floats(min_value=0.0, max_value=3.0),
            st.none() | st.floats(min_value=0.0, max_value=value),
        ),
        max_size=size,
    )


@settings(deadline=None)  # each example builds an event loop; its real cost varies
@given(
    rate=RATES,
    burst=BURSTS,
    events=limiter_events(["acquire", "acquire", "429", "success", "cancel"], 2.0, 60),
)
def test_limiter_never_exceeds_the_configured_rate(
    rate: float, burst: int, events: list[tuple[str, float, float | None]]
) -> None:
    """For any interleaving of acquires, cancellations, 429s (with or without Retry-After) and
    successes, every acquirer that is not cancelled is granted, grants never exceed
    burst + rate*T in any window T, and nothing is granted while a 429 holds the tier (one
    interval at the slowed rate, or the Retry-After if longer), whatever successes follow.
    """

    async def main() -> tuple[list[float], list[tuple[float, float]]]:
        limiter = AdaptiveRateLimiter(RateLimits(post_per_second=rate, post_burst=burst))
        grants: list[float] = []
        holds: list[tuple[float, float]] = []
        pending: list[asyncio.Task[None]] = []

        async def take() -> None:
            await limiter.acquire(Tier.POST)
            grants.append(loop_time())

        async def fire(kind: str, offset: float, retry_after: float | None) -> None:
            await asyncio.sleep(offset)
            if kind == "acquire":
                pending.append(asyncio.create_task(take()))
            elif kind == "cancel" and pending:
                pending.pop().cancel()
            elif kind == "429":
                limiter.on_rate_limited(Tier.POST, retry_after=retry_after)
                now = loop_time()
                hold = max(1.0 / limiter.state(Tier.POST).rate, retry_after or 0.0)
                holds.append((now, now + hold))
            elif kind == "success":
                limiter.on_success(Tier.POST)

        await asyncio.gather(*(fire(*event) for event in events))
        await asyncio.gather(*pending, return_exceptions=True)
        assert all(task.done() for task in pending)
        return grants, holds

    grants, holds = run_virtual(main)
    assert len(grants) >= sum(kind == "acquire" for kind, _, _ in events) - sum(
        kind == "cancel" for kind, _, _ in events
    )
    assert grants == sorted(grants)
    assert_window_bound(grants, rate, burst)
    for start, end in holds:
        assert not any(start + TOLERANCE < t < end - TOLERANCE for t in grants), (start, end)


@settings(deadline=None)  # each example builds an event loop; its real cost varies
@given(
    rate=RATES,
    burst=BURSTS,
    events=limiter_events(["acquire", "acquire", "acquire", "429", "success"], 5.0, 40),
)
# Found by Hypothesis: with a burst, a queued waiter's slot was once predicted a slot early.
@example(rate=1.0, burst=3, events=[("acquire", 0.0, None)] * 6 + [("acquire", 0.0, 2.0)])
def test_deadlines_are_never_passed(
    rate: float, burst: int, events: list[tuple[str, float, float | None]]
) -> None:
    """With deadlines on some acquires (the third value: seconds from the call), no acquire
    is granted or refused after its deadline, every acquire ends (granted or TimeoutError) so
    no waiter is left behind, and the rate bound still holds."""

    async def main() -> tuple[list[float], list[tuple[float, float | None, str]]]:
        limiter = AdaptiveRateLimiter(RateLimits(post_per_second=rate, post_burst=burst))
        grants: list[float] = []
        ends: list[tuple[float, float | None, str]] = []

        async def take(within: float | None) -> None:
            deadline = None if within is None else loop_time() + within
            try:
                await limiter.acquire(Tier.POST, deadline=deadline)
            except TimeoutError:
                ends.append((loop_time(), deadline, "late"))
            else:
                grants.append(loop_time())
                ends.append((loop_time(), deadline, "granted"))

        async def fire(kind: str, offset: float, value: float | None) -> None:
            await asyncio.sleep(offset)
            if kind == "acquire":
                await take(value)
            elif kind == "429":
                limiter.on_rate_limited(Tier.POST, retry_after=value)
            else:
                limiter.on_success(Tier.POST)

        await asyncio.gather(*(fire(*event) for event in events))
        return grants, ends

    grants, ends = run_virtual(main)
    assert len(ends) == sum(kind == "acquire" for kind, _, _ in events)
    for at, deadline, outcome in ends:
        if deadline is not None:
            assert at <= deadline + TOLERANCE, (at, deadline, outcome)
    assert_window_bound(sorted(grants), rate, burst)


# --------------------------------------------------------------------------------------------
# The protocol and the factory


class _SharedLimiter:
    """An application's own limiter (say, one shared between processes)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def acquire(self, tier: Tier) -> None:
        self.calls.append(f"acquire {tier}")

    def on_rate_limited(self, tier: Tier, *, retry_after: float | None = None) -> None:
        self.calls.append(f"429 {tier}")

    def on_success(self, tier: Tier) -> None:
        self.calls.append(f"ok {tier}")


def test_default_and_custom_limiters_satisfy_the_protocol() -> None:
    """AdaptiveRateLimiter and a plain class with the three methods are RateLimiters;
    RateLimits is not.
    """
    assert isinstance(AdaptiveRateLimiter(), RateLimiter)
    assert isinstance(_SharedLimiter(), RateLimiter)
    assert not isinstance(RateLimits(), RateLimiter)


def test_make_rate_limiter() -> None:
    """None turns pacing off, RateLimits builds the default limiter, a RateLimiter is used as
    given, and anything else is a TypeError naming the argument.
    """
    assert make_rate_limiter(None) is None
    limits = RateLimits(post_per_second=2.0)
    built = make_rate_limiter(limits)
    assert isinstance(built, AdaptiveRateLimiter)
    assert built.limits is limits
    custom = _SharedLimiter()
    assert make_rate_limiter(custom) is custom
    with pytest.raises(TypeError, match="rate_limits must be a RateLimits, a RateLimiter or None"):
        make_rate_limiter(5.0)  # type: ignore[arg-type]


async def test_make_rate_limiter_passes_clock_and_sleep_to_the_default_limiter() -> None:
    """A client's injected clock and sleep reach the default limiter it builds."""
    fake = FakeTime()
    limiter = make_rate_limiter(RateLimits(), clock=fake.clock, sleep=fake.sleep)
    assert limiter is not None
    await limiter.acquire(Tier.POST)
    await limiter.acquire(Tier.POST)
    assert fake.sleeps == pytest.approx([0.2])
    assert fake.now == pytest.approx(T0 + 0.2)


def test_limiter_rejects_a_wrong_limits_type() -> None:
    """AdaptiveRateLimiter(limits=...) takes a RateLimits or None."""
    with pytest.raises(TypeError, match="limits must be a RateLimits or None"):
        AdaptiveRateLimiter({"post_per_second": 5.0})  # type: ignore[arg-type]


def test_limiter_repr_shows_effective_rates() -> None:
    """The repr shows each tier's effective rate, e.g. for logging after a slow-down."""
    fake = FakeTime()
    limiter = limiter_with(fake)
    limiter.on_rate_limited(Tier.POST)
    assert repr(limiter) == "<AdaptiveRateLimiter post=2.5/s, get=200/s>"


class LateTime(FakeTime):
    """A sleep that wakes ``lag`` seconds late, as a busy event loop does."""

    def __init__(self, lag: float) -> None:
        super().__init__()
        self.lag = lag

    async def sleep(self, delay: float) -> None:
        await super().sleep(delay + self.lag)


async def test_late_wakeups_never_squeeze_requests_together() -> None:
    """A waiter woken late is not credited the lost time: grants stay at least one interval
    apart, so no one-second window ever holds more than the rate (Knock's limit may be a
    fixed window)."""
    fake = LateTime(0.09)
    limiter = limiter_with(fake)
    granted: list[float] = []

    async def one() -> None:
        await limiter.acquire(Tier.POST)
        granted.append(fake.now)

    await asyncio.gather(*(one() for _ in range(30)))
    gaps = [b - a for a, b in itertools.pairwise(granted)]
    assert min(gaps) >= 0.2 - 1e-9
    assert_window_bound(granted, rate=5.0, burst=1)
