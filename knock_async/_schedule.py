"""When to poll a bulk operation next: an ETA-aware schedule and the plain backoff. Pure.

Every snapshot of an operation says how many rows are done and how many there will be. A
``Forecast`` keeps the last few (time, rows) points and predicts when the operation ends; the
ETA schedule then waits a ``fraction`` of the predicted remaining time, so that the waits
shrink geometrically towards the predicted end and a rate that changes on the way is seen
long before the end: with ``fraction=0.3`` a rate that triples right after a poll still leaves
the next poll before the end (0.3 < 1/3). Close to the end the waits stop shrinking at
``min_delay``; after the predicted end they grow again from ``min_delay`` with the time the
operation is overdue (up to ``max_overdue_delay``), as a backoff anchored at the predicted end.
Rows that stand still (a stall, or progress reported in coarse batches) move the aim earlier
by the longest stall seen, and once the predicted end has passed they are polled as overdue.

Without a rate (no estimate of the total, or a queued operation with no rows done yet) there
is nothing to predict, and the plain backoff (about 1 s, x1.5, capped) is used instead.
"""

from __future__ import annotations

import math

import attrs

from ._validate import attrs_check, number_where, positive

__all__ = ["EtaSchedule", "Forecast", "backoff_delay"]

# Points kept per operation: enough to reach back over half of the observed progress for a
# rate that is not swamped by one batch's rounding, few enough to keep a followed operation
# small (one fan-out may follow thousands).
_MAX_POINTS = 8


def _below_one(name: str, value: object) -> float:
    return number_where(name, value, "a finite number in (0, 1)", lambda v: 0 < v < 1)


def _jitter(name: str, value: object) -> float:
    return number_where(name, value, "a finite number in [0, 1)", lambda v: 0 <= v < 1)


_POSITIVE = attrs_check(positive)


@attrs.frozen
class _Point:
    at: float
    rows: int


@attrs.frozen(kw_only=True)
class Forecast:
    """What the snapshots so far say about when an operation ends. Immutable: ``observe``
    returns the next forecast.

    Times are seconds on any monotonic clock. Each row count is kept with the time it was
    first seen: servers report progress in batches, and between two batches the count stands
    still, so the newest observation of an old count says nothing about the rate. The rate is
    measured over the more recent half of the observed progress, so that it follows a rate
    that changes while one batch's rounding does not swing it.
    """

    first_at: float | None = None
    last_at: float | None = None
    points: tuple[_Point, ...] = ()
    estimated_total_rows: int | None = None
    # When the rows first reached the estimate: the predicted end once it has passed.
    reached_at: float | None = None
    # The longest a count (after the first) was seen standing still: how coarse the server's
    # batches are, and so how early the end may come before the predicted one.
    longest_stall: float = 0.0

    def observe(self, at: float, processed_rows: int, estimated_total_rows: int | None) -> Forecast:
        """The forecast after one more snapshot (``estimated_total_rows`` ``None`` or ``0``:
        the server has no estimate)."""
        if not math.isfinite(at):
            return self
        rows = max(0, processed_rows)
        # A server's nonsense (a negative estimate) predicts nothing, as no estimate does.
        estimate = (
            estimated_total_rows if estimated_total_rows and estimated_total_rows > 0 else None
        )
        points = self.points
        longest_stall = self.longest_stall
        went_back = self.last_at is not None and at < self.last_at
        if went_back or (points and rows < points[-1].rows):
            points = ()  # the clock or the count went back: what was measured no longer holds
            longest_stall = 0.0
        if not points or rows > points[-1].rows:
            points = (*points, _Point(at, rows))[-_MAX_POINTS:]
        elif len(points) > 1 and points[-1].rows > 0:
            # Not the first count: standing still while queued says nothing about batches.
            longest_stall = max(longest_stall, at - points[-1].at)
        reached_at = self.reached_at
        if estimate is None or rows < estimate:
            reached_at = None
        elif reached_at is None:
            reached_at = at
        return Forecast(
            first_at=at if self.first_at is None else self.first_at,
            last_at=at,
            points=points,
            estimated_total_rows=estimate,
            reached_at=reached_at,
            longest_stall=longest_stall,
        )

    @property
    def rate(self) -> float | None:
        """Rows per second over the recent progress, ``None`` until two row counts have been
        seen some time apart."""
        if len(self.points) < 2:
            return None
        last = self.points[-1]
        half = (last.at - self.points[0].at) / 2
        reference = next(p for p in reversed(self.points[:-1]) if last.at - p.at >= half)
        elapsed = last.at - reference.at
        if not elapsed > 0:
            return None
        rate = (last.rows - reference.rows) / elapsed
        return rate if math.isfinite(rate) and rate > 0 else None

    @property
    def end(self) -> float | None:
        """The predicted monotonic time of the end, ``None`` when nothing predicts it."""
        if self.estimated_total_rows is None or not self.points:
            return None
        if self.reached_at is not None:
            return self.reached_at
        rate = self.rate
        if rate is None:
            return None
        last = self.points[-1]
        end = last.at + (self.estimated_total_rows - last.rows) / rate
        return end if math.isfinite(end) else None


def backoff_delay(
    polls: int, *, initial: float, multiplier: float, cap: float, jitter: float, spread: float
) -> float:
    """The plain backoff: ``initial * multiplier**polls`` capped at ``cap``, spread by
    ``±jitter`` (``spread`` is a uniform draw in ``[0, 1)``), never above ``cap``."""
    base = initial
    if multiplier > 1 and 0 < initial < cap:
        # Stop growing once past the cap, so a long poll cannot overflow a float.
        cap_steps = math.ceil(math.log(cap / base) / math.log(multiplier))
        base = min(cap, base * multiplier ** min(max(polls, 0), cap_steps))
    return min(cap, base * (1.0 + jitter * (2.0 * spread - 1.0)))


@attrs.frozen(kw_only=True)
class EtaSchedule:
    """Waits a ``fraction`` of the predicted remaining time, within
    ``[min_delay, max_delay]``; never more than ``age_factor`` times the time the operation has
    been observed, so an early estimate from a few rows is not trusted for an hour. Past the
    predicted end, waits ``overdue_factor`` times the time the operation is overdue (at least
    ``min_delay``). ``jitter`` shortens the waits before the end by up to that fraction, so
    that many operations started together do not poll in lockstep.
    """

    fraction: float = attrs.field(default=0.3, validator=attrs_check(_below_one))
    min_delay: float = attrs.field(default=1.0, validator=_POSITIVE)
    max_delay: float = attrs.field(default=300.0, validator=_POSITIVE)
    age_factor: float = attrs.field(default=1.0, validator=_POSITIVE)
    overdue_factor: float = attrs.field(default=0.5, validator=_POSITIVE)
    max_overdue_delay: float = attrs.field(default=30.0, validator=_POSITIVE)
    jitter: float = attrs.field(default=0.1, validator=attrs_check(_jitter))

    def __attrs_post_init__(self) -> None:
        if self.min_delay > self.max_delay:
            raise ValueError("EtaSchedule.min_delay must not exceed max_delay")

    def delay(self, forecast: Forecast, now: float, *, fallback: float, spread: float) -> float:
        """Seconds to wait from ``now`` before the next poll.

        ``fallback`` is the plain backoff's delay, returned as it is while the forecast
        predicts no end; ``spread`` is a uniform draw in ``[0, 1)`` for the jitter. Otherwise
        the result is finite and within ``[min_delay, max_delay]``.
        """
        end = forecast.end
        if end is None or forecast.first_at is None or not math.isfinite(now):
            return fallback
        # With progress in coarse batches the end can come up to one stall before the predicted
        # one: aim at the earliest plausible end.
        remaining = end - forecast.longest_stall - now
        if remaining <= 0:
            return self._clamp(min(self.max_overdue_delay, self.overdue_factor * -remaining))
        wait = self.fraction * remaining * (1.0 - self.jitter * spread)
        age = max(0.0, now - forecast.first_at)
        return self._clamp(min(wait, self.age_factor * age))

    def _clamp(self, seconds: float) -> float:
        if math.isnan(seconds):
            return self.min_delay
        return min(self.max_delay, max(self.min_delay, seconds))
