"""Client-side pacing for Knock's per-environment rate limits.

Knock allows the bulk-update POST 5 requests/s and ``GET /v1/bulk_operations/{id}`` 200
requests/s per environment, and answers excess with a 429 that usually carries no
``Retry-After``. A naive ``asyncio.gather`` over a thousand channels therefore turns into a 429
storm; the client paces its own requests instead.

Layout, as in the rest of the package: the decisions are pure and the I/O is thin.

* ``gcra_next_slot``, ``gcra_reserve``, ``gcra_rescale`` and the frozen ``PacingState`` are the
  arithmetic (GCRA, the generic cell rate algorithm, plus the adaptive rate). No asyncio; every
  function takes ``now`` explicitly.
* ``AdaptiveRateLimiter`` is the async shell: a FIFO of waiters per tier, one sleep per request.
* ``RateLimiter`` is the protocol the client calls, so an application can plug in its own (for
  example one shared between processes through Redis).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import math
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import attrs

from ._validate import attrs_check, fraction, non_negative, positive, positive_int

__all__ = [
    # What the client and applications use.
    "Tier",
    "RateLimits",
    "RateLimiter",
    "AdaptiveRateLimiter",
    "make_rate_limiter",
    # The pure arithmetic underneath (no asyncio).
    "PacingState",
    "gcra_next_slot",
    "gcra_reserve",
    "gcra_rescale",
]


class Tier(enum.StrEnum):
    """Which budget a request counts against: one per endpoint (route), paced at the rate of
    the Knock tier it belongs to (``level``). Knock keeps each endpoint's budget apart, so
    ten tier-1 endpoints may each send 1 request/s in the same environment."""

    POST = "post"
    """The channel bulk-update POST (Knock's tier 2: 5 requests/s per environment)."""
    GET = "get"
    """``GET /v1/bulk_operations/{id}`` (Knock's tier 4: 200 requests/s per environment)."""
    # The tier-1 bulk endpoints (1 request/s each), named as knockapi names their methods.
    USERS_IDENTIFY = "users.bulk.identify"
    USERS_DELETE = "users.bulk.delete"
    USERS_SET_PREFERENCES = "users.bulk.set_preferences"
    OBJECTS_SET = "objects.bulk.set"
    OBJECTS_DELETE = "objects.bulk.delete"
    OBJECTS_ADD_SUBSCRIPTIONS = "objects.bulk.add_subscriptions"
    OBJECTS_DELETE_SUBSCRIPTIONS = "objects.bulk.delete_subscriptions"
    TENANTS_SET = "tenants.bulk.set"
    TENANTS_DELETE = "tenants.bulk.delete"
    SCHEDULES_CREATE = "schedules.bulk.create"

    @property
    def level(self) -> int:
        """Knock's tier number: 1 (1 request/s), 2 (5/s) or 4 (200/s)."""
        return 2 if self is Tier.POST else 4 if self is Tier.GET else 1


# --------------------------------------------------------------------------------------------
# Configuration


@attrs.frozen(kw_only=True)
class RateLimits:
    """How fast the client may send, per tier, and how it adapts to 429s.

    Rates are requests per second for this client: ``post_per_second`` for the channel bulk
    update (tier 2), ``get_per_second`` for polling (tier 4) and ``tier1_per_second`` for each
    of the ten other bulk endpoints (users, objects, tenants, schedules: tier 1, a budget of
    its own per endpoint, as Knock keeps them). Knock's limits are per *environment*, so
    several processes sharing a key share them: give each a fraction, or rely on the adaptive
    slow-down below.

    **Bursts default to 1.** With a burst of 1 requests leave exactly ``1 / rate`` apart, so any
    half-open one-second window holds at most ``ceil(rate)`` of them: 5 for the POST. That is
    within the limit both for a server counting fixed one-second windows and for a token bucket
    of any capacity >= 1. A burst ``B > 1`` lets ``B - 1`` extra requests land in one window
    (``B`` at the end of one window, then the steady rate in the next: up to 9 in one fixed
    window for ``B = 5``), which a fixed-window server answers with 429s. The spacing is measured
    where requests are sent; network jitter can still shift one across a server's window
    boundary, which the adaptive slow-down absorbs. For more margin configure a rate a little
    below the server's: at ``post_per_second=4.5`` a sixth request needs over 0.1 s of jitter to
    share a fixed window with five others. Tier 1 (1 request/s at Knock) is paced at 0.95/s by
    default: there a budget holds a single request, and one that arrives a few milliseconds
    early after another is refused.

    **Adaptive.** On a 429 the tier's effective rate is multiplied by ``slowdown_factor`` (not
    below ``min_rate_fraction`` of the configured rate) and nothing more is sent in that tier
    for one interval at the new rate, or for the server's ``Retry-After`` if that is longer.
    429s within ``slowdown_cooldown`` seconds of the last slow-down hold the tier but do not
    slow it further: they are usually answers to requests already in flight, i.e. the same
    overload seen again. While requests succeed, the rate climbs back linearly, by
    ``recovery_per_second`` of the configured rate per second (0.1: from half speed to full in
    5 s), and never above the configured rate.
    """

    post_per_second: float = attrs.field(default=5.0, validator=attrs_check(positive))
    get_per_second: float = attrs.field(default=200.0, validator=attrs_check(positive))
    post_burst: int = attrs.field(default=1, validator=attrs_check(positive_int))
    get_burst: int = attrs.field(default=1, validator=attrs_check(positive_int))
    # A margin under Knock's 1/s: a budget of one token refuses a request that arrives even a
    # millisecond early, so exact spacing plus network jitter drew a 429 in five.
    tier1_per_second: float = attrs.field(default=0.95, validator=attrs_check(positive))
    tier1_burst: int = attrs.field(default=1, validator=attrs_check(positive_int))
    slowdown_factor: float = attrs.field(default=0.5, validator=attrs_check(fraction))
    min_rate_fraction: float = attrs.field(default=0.1, validator=attrs_check(fraction))
    recovery_per_second: float = attrs.field(default=0.1, validator=attrs_check(positive))
    slowdown_cooldown: float = attrs.field(default=1.0, validator=attrs_check(non_negative))

    def per_second(self, tier: Tier) -> float:
        """The configured rate of ``tier`` (each tier-1 endpoint has ``tier1_per_second``)."""
        if tier == Tier.POST:
            return self.post_per_second
        return self.get_per_second if tier == Tier.GET else self.tier1_per_second

    def burst(self, tier: Tier) -> int:
        """The configured burst of ``tier``."""
        if tier == Tier.POST:
            return self.post_burst
        return self.get_burst if tier == Tier.GET else self.tier1_burst


# --------------------------------------------------------------------------------------------
# Pure arithmetic
#
# GCRA keeps one number per tier, the theoretical arrival time ``tat``: when the committed
# requests would be fully "paid for" at one per ``interval``. A request conforms at ``t`` if
# ``t >= tat - (burst - 1) * interval``; granting it moves ``tat`` one interval later. Its
# guarantee: any n consecutive grants span at least ``(n - burst) * interval``.


def gcra_next_slot(tat: float, now: float, interval: float, burst: int) -> float:
    """The earliest time ``>= now`` at which one more request conforms."""
    return max(now, tat - (burst - 1) * interval)


def gcra_reserve(tat: float, now: float, interval: float, burst: int) -> tuple[float, float]:
    """Reserve the next slot for a request made at ``now``: ``(slot, new_tat)``."""
    slot = gcra_next_slot(tat, now, interval, burst)
    # An idle limiter (tat in the past) must not bank the idle time beyond the burst.
    return slot, max(tat, slot) + interval


def gcra_rescale(tat: float, now: float, old_interval: float, new_interval: float) -> float:
    """``tat`` after the interval changes at ``now``, keeping the committed backlog in requests.

    Rescaling (rather than keeping ``tat``) matters when the rate drops: the requests already
    committed must be paid for at the new, slower rate, or the next ones would follow them too
    closely. A backlog in the past is empty whatever the rate, so it is left as is.
    """
    if tat <= now:
        return tat
    return now + (tat - now) * (new_interval / old_interval)


@attrs.frozen(kw_only=True)
class PacingState:
    """The pacing of one tier at one moment: GCRA plus the adaptive rate. Immutable and pure.

    ``rate`` is the effective rate (the configured one, or less after 429s). Every method takes
    ``now`` (seconds on any monotonic clock) and returns a new state.
    """

    limits: RateLimits = attrs.field(repr=False)
    tier: Tier
    rate: float
    tat: float = -math.inf
    # Nothing is sent before this (a 429's hold). Kept apart from `tat` so that a recovery,
    # which rescales `tat`, cannot shorten a hold, least of all a server's Retry-After.
    hold_until: float = -math.inf
    # No recovery is credited for time before the last 429.
    recovery_from: float = -math.inf
    last_slowdown: float = -math.inf

    @classmethod
    def initial(cls, limits: RateLimits, tier: Tier) -> PacingState:
        """A fresh tier at its configured rate with its whole burst available."""
        return cls(limits=limits, tier=Tier(tier), rate=limits.per_second(tier))

    @property
    def configured_rate(self) -> float:
        return self.limits.per_second(self.tier)

    @property
    def burst(self) -> int:
        return self.limits.burst(self.tier)

    @property
    def interval(self) -> float:
        """Seconds between requests at the effective rate."""
        return 1.0 / self.rate

    def next_slot(self, now: float) -> float:
        """When the next request may be sent (``now`` if it may go at once)."""
        return gcra_next_slot(self.tat, max(now, self.hold_until), self.interval, self.burst)

    def reserve(self, now: float) -> tuple[float, PacingState]:
        """Reserve the next slot for a request made at ``now``: ``(slot, new_state)``."""
        slot, tat = gcra_reserve(self.tat, max(now, self.hold_until), self.interval, self.burst)
        return slot, self.with_tat(tat)

    def with_tat(self, tat: float) -> PacingState:
        """This state with another ``tat`` (what a grant changes)."""
        # Built directly: attrs.evolve introspects the class on every call.
        return PacingState(
            limits=self.limits,
            tier=self.tier,
            rate=self.rate,
            tat=tat,
            hold_until=self.hold_until,
            recovery_from=self.recovery_from,
            last_slowdown=self.last_slowdown,
        )

    def rate_limited(self, now: float, retry_after: float | None = None) -> PacingState:
        """The state after a 429 seen at ``now``, with the server's ``Retry-After`` if any."""
        limits = self.limits
        rate, last_slowdown = self.rate, self.last_slowdown
        if now - self.last_slowdown >= limits.slowdown_cooldown:
            floor = self.configured_rate * limits.min_rate_fraction
            rate, last_slowdown = max(floor, self.rate * limits.slowdown_factor), now
        interval = 1.0 / rate
        tat = gcra_rescale(self.tat, now, self.interval, interval)
        hold = interval
        # A nonsensical hint (negative, NaN, infinite) must not stall a tier forever.
        if retry_after is not None and math.isfinite(retry_after) and retry_after > hold:
            hold = retry_after
        hold_until = max(self.hold_until, now + hold)
        # The server has just said its bucket is empty: no burst credit after the hold either.
        tat = max(tat, hold_until + (self.burst - 1) * interval)
        return attrs.evolve(
            self,
            rate=rate,
            tat=tat,
            hold_until=hold_until,
            recovery_from=now,
            last_slowdown=last_slowdown,
        )

    def succeeded(self, now: float) -> PacingState:
        """The state after a request that was not rate limited, answered at ``now``."""
        if self.rate >= self.configured_rate:
            return self
        elapsed = max(0.0, now - self.recovery_from)
        step = self.configured_rate * self.limits.recovery_per_second * elapsed
        rate = min(self.configured_rate, self.rate + step)
        tat = gcra_rescale(self.tat, now, self.interval, 1.0 / rate)
        return attrs.evolve(self, rate=rate, tat=tat, recovery_from=now)


# --------------------------------------------------------------------------------------------
# The protocol the client calls


@runtime_checkable
class RateLimiter(Protocol):
    """What the client calls around every request it sends to Knock.

    * ``await acquire(tier)`` before each attempt, retries included (the server counts each).
    * ``on_rate_limited(tier, retry_after=...)`` when the answer is a 429; ``retry_after`` is the
      server's hint in seconds if it sent one (Knock usually does not), capped by the caller
      (``PollPolicy.max_hint``), or ``None`` when the caller gave up on a longer one
      (``RetryPolicy.max_retry_after``): a hint never holds the client longer than it waits.
    * ``on_success(tier)`` for any other answer: a 404 or a 500 still shows the rate was
      accepted. Neither is called when no answer came (connection error, timeout).

    Implementations are used from one event loop and need not be thread-safe. ``acquire`` may be
    cancelled at any time and must then not hold up the requests queued behind it.
    """

    async def acquire(self, tier: Tier) -> None:
        """Wait until one more request in ``tier`` may be sent, and count it as sent."""
        ...

    def on_rate_limited(self, tier: Tier, *, retry_after: float | None = None) -> None:
        """A request in ``tier`` got a 429 (with the server's ``retry_after`` hint in seconds, if
        any): slow down."""
        ...

    def on_success(self, tier: Tier) -> None:
        """A request in ``tier`` was answered without a 429: recover towards the full rate."""
        ...


# --------------------------------------------------------------------------------------------
# The default implementation

# Slots this close count as due: the float rounding of `slot - now` must not cost a second sleep.
_DUE_EPSILON = 1e-9


class _Lane:
    """One tier's queue. At most one waiter, the holder, is ever sleeping towards a slot.

    A grant only moves ``tat``, so the lane keeps ``tat`` (and what a grant reads of the rest)
    as plain floats and builds the ``PacingState`` only when it is asked for: a grant that
    needs no wait then costs a few float operations, not a new frozen object.
    """

    __slots__ = (
        "_state",
        "burst_span",
        "configured_rate",
        "held",
        "hold_until",
        "interval",
        "rate",
        "tat",
        "waiters",
    )
    _state: PacingState
    tat: float
    rate: float
    hold_until: float
    interval: float
    burst_span: float

    def __init__(self, state: PacingState) -> None:
        self.state = state
        self.configured_rate = state.configured_rate
        # Each waiter with the deadline it must be granted by (None: none).
        self.waiters: collections.deque[tuple[asyncio.Future[None], float | None]] = (
            collections.deque()
        )
        self.held = False

    @property
    def state(self) -> PacingState:
        state = self._state
        if state.tat != self.tat:
            state = self._state = state.with_tat(self.tat)
        return state

    @state.setter
    def state(self, state: PacingState) -> None:
        self._state = state
        self.tat = state.tat
        self.rate = state.rate
        self.hold_until = state.hold_until
        self.interval = interval = state.interval
        self.burst_span = (state.burst - 1) * interval

    def grant_now(self, now: float) -> bool:
        """Take the slot if it is due at ``now`` (``PacingState.reserve``'s arithmetic, inline);
        ``False``, taking nothing, if it is later."""
        start = self.hold_until
        if start < now:
            start = now
        slot = self.tat - self.burst_span
        if slot < start:
            slot = start
        if slot > now + _DUE_EPSILON:
            return False
        tat = self.tat
        self.tat = (tat if tat > slot else slot) + self.interval
        return True

    def pass_on(self) -> None:
        """Make the next live waiter the holder, or mark the lane free."""
        while self.waiters:
            waiter, _ = self.waiters.popleft()
            # A cancelled waiter's future is cancelled with it: skipping it is its whole cleanup.
            if not waiter.done():
                waiter.set_result(None)
                return
        self.held = False

    def earliest(self, now: float, ahead: int) -> float:
        """The slot of a waiter with ``ahead`` grants before its own (the holder's included),
        at the current rate: GCRA's k-th next slot, ``max(start, tat + (k - burst + 1) * I)``.
        """
        state = self.state
        start = max(now, state.hold_until)
        tat = max(state.tat, start)  # an idle tier's credit does not go below its burst
        return max(start, tat + (ahead - state.burst + 1) * state.interval)

    def expire(self, now: float) -> None:
        """Fail, with ``TimeoutError``, the queued waiters that can no longer make it in time
        (after a 429 slowed the tier down or held it): they must not wait past their deadline.
        """
        kept: collections.deque[tuple[asyncio.Future[None], float | None]] = collections.deque()
        for waiter, deadline in self.waiters:
            if waiter.done():
                continue
            # The holder is ahead of everyone queued.
            if deadline is not None and self.earliest(now, len(kept) + 1) > deadline:
                waiter.set_exception(TimeoutError())
            else:
                kept.append((waiter, deadline))
        self.waiters = kept


class AdaptiveRateLimiter:
    """The default ``RateLimiter``: GCRA per tier, adaptive on 429s (see ``RateLimits``).

    Waiters queue FIFO per tier. Only the head of the queue sleeps, once, until its slot; it then
    takes the slot and wakes the next waiter, which sleeps until the following slot. So N
    concurrent acquirers are granted exactly one interval apart in arrival order, with one sleep
    each, no polling, no task per request and no thundering herd. A slot is taken only when its
    time has come, so:

    * a 429 or a ``Retry-After`` applies at once to everything already queued (a fan-out queued
      in full up front still slows down), and recovery speeds it up again from the next grant;
    * cancelling a waiter, head or not, gives nothing away: the next one gets the same slot.
      Only a cancellation landing after ``acquire`` returned (between the grant and the send)
      spends a slot for nothing.

    ``limits`` are the rates (default ``RateLimits()``: Knock's). ``clock`` (default: the
    running loop's ``time()``) and ``sleep`` (default ``asyncio.sleep``) are injectable for
    tests. An instance belongs to one event loop; it is not thread-safe.
    """

    def __init__(
        self,
        limits: RateLimits | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if limits is None:
            limits = RateLimits()
        if not isinstance(limits, RateLimits):
            raise TypeError(f"limits must be a RateLimits or None, got {type(limits).__name__}")
        self._limits = limits
        self._clock = clock
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep if sleep is None else sleep
        self._lanes = {tier: _Lane(PacingState.initial(limits, tier)) for tier in Tier}

    @property
    def limits(self) -> RateLimits:
        """The configured ``RateLimits``."""
        return self._limits

    def state(self, tier: Tier | str) -> PacingState:
        """The current pacing state of ``tier`` (effective rate etc.), for logs and tests."""
        return self._lane(tier).state

    def _lane(self, tier: Tier | str) -> _Lane:
        # A StrEnum hashes and compares as its value: "post" finds Tier.POST's lane.
        try:
            return self._lanes[tier]  # type: ignore[index]
        except KeyError:
            raise ValueError(f"tier must be one of {', '.join(Tier)}, got {tier!r}") from None

    def __repr__(self) -> str:
        # The tier-1 endpoints' lanes only once they are slowed down: ten "1/s" say nothing.
        rates = ", ".join(
            f"{tier}={lane.state.rate:g}/s"
            for tier, lane in self._lanes.items()
            if tier.level > 1 or lane.rate < lane.configured_rate
        )
        return f"<AdaptiveRateLimiter {rates}>"

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return asyncio.get_running_loop().time()

    async def acquire(self, tier: Tier | str, *, deadline: float | None = None) -> None:
        """Wait for the next slot in ``tier`` (FIFO) and take it.

        ``deadline`` (on this limiter's clock): raise ``TimeoutError`` as soon as the slot
        cannot come by then, without taking one, instead of waiting past it.
        """
        lane = self._lane(tier)
        if not lane.held and lane.grant_now(self._now()):
            return  # nobody queued and the slot is due: the common case when pacing never waits
        if lane.held:
            if (
                deadline is not None
                and lane.earliest(self._now(), len(lane.waiters) + 1) > deadline
            ):
                raise TimeoutError
            waiter = asyncio.get_running_loop().create_future()
            lane.waiters.append((waiter, deadline))
            try:
                await waiter
            except asyncio.CancelledError:
                # Cancelled just as it was made the holder: hand the turn on or the lane stalls.
                if waiter.done() and not waiter.cancelled():
                    lane.pass_on()
                raise
        else:
            lane.held = True
        try:
            # One sleep in the normal case. Another only if a 429 moved the slot later while we
            # slept, or the loop woke us a clock tick early (asyncio may run timers up to its
            # clock resolution early).
            while True:
                now = self._now()
                slot, reserved = lane.state.reserve(now)
                if slot <= now + _DUE_EPSILON:
                    lane.state = reserved
                    return
                if deadline is not None and slot > deadline:
                    raise TimeoutError
                await self._sleep(slot - now)
        finally:
            lane.pass_on()

    def try_acquire(self, tier: Tier | str) -> bool:
        """Take a slot in ``tier`` if one is free now with nobody queued, without waiting (and
        without a coroutine): ``True`` if taken, ``False`` (nothing taken) if the caller must
        ``await acquire(tier)``."""
        lane = self._lane(tier)
        return not lane.held and lane.grant_now(self._now())

    def on_rate_limited(self, tier: Tier | str, *, retry_after: float | None = None) -> None:
        """A request in ``tier`` got a 429: slow the tier down and hold it for a while (for
        ``retry_after`` seconds, the server's hint, when it gave one)."""
        lane = self._lane(tier)
        now = self._now()
        lane.state = lane.state.rate_limited(now, retry_after)
        lane.expire(now)

    def on_success(self, tier: Tier | str) -> None:
        """A request in ``tier`` was answered without a 429: let the rate recover."""
        lane = self._lane(tier)
        if lane.rate < lane.configured_rate:
            lane.state = lane.state.succeeded(self._now())


def make_rate_limiter(
    rate_limits: RateLimits | RateLimiter | None,
    *,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> RateLimiter | None:
    """What the client paces with: ``None`` (pacing off), a given limiter, or the default one.

    ``clock`` and ``sleep`` go to the default limiter only, so that a client built with its own
    clock and sleep (virtual time in tests) paces on them too; a given limiter is used as is.
    """
    if rate_limits is None:
        return None
    if isinstance(rate_limits, RateLimits):
        return AdaptiveRateLimiter(rate_limits, clock=clock, sleep=sleep)
    if isinstance(rate_limits, RateLimiter):
        return rate_limits
    raise TypeError(
        f"rate_limits must be a RateLimits, a RateLimiter or None, got {type(rate_limits).__name__}"
    )
