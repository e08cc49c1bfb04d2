"""The poll schedule: when to ask again about a bulk operation. Pure.

The first poll comes after about ``initial_delay``; each later one waits ``multiplier`` times
longer, up to ``max_delay``, each delay spread by ``±jitter`` so that many pollers started
together do not ask in lockstep. With the defaults (1 s, x1.5, 30 s cap) a poll's delay is
about half the time already spent polling, so a finished operation is noticed within about
half its age (and never later than ``max_delay``), with a number of requests that grows with
the logarithm of the operation's duration instead of linearly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from ._models import BulkOperation
from ._validate import (
    attrs_check,
    boolean,
    non_negative,
    non_negative_int,
    number_where,
    positive,
)

__all__ = ["PollPolicy", "has_changed", "poll_delay"]


def _at_least_one(name: str, value: object) -> float:
    return number_where(name, value, "a finite number >= 1", lambda v: v >= 1)


def _below_one(name: str, value: object) -> float:
    return number_where(name, value, "a finite number in [0, 1)", lambda v: 0 <= v < 1)


def _validate(policy: PollPolicy) -> None:
    if policy.initial_delay > policy.max_delay:
        raise ValueError("PollPolicy.initial_delay must not exceed max_delay")
    if policy.min_hint > policy.max_hint:
        raise ValueError("PollPolicy.min_hint must not exceed max_hint")


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How the poller paces itself. Durations are in seconds.

    ``min_hint``/``max_hint`` bound a server's Retry-After while polling; ``error_budget`` is
    how many transient failures in a row (connection errors, timeouts, 408, 429, 5xx) are
    ridden out before the poll gives up; ``yield_unchanged`` yields a snapshot on every poll
    instead of only when the operation changed.
    """

    initial_delay: float = attrs.field(default=1.0, validator=attrs_check(positive))
    multiplier: float = attrs.field(default=1.5, validator=attrs_check(_at_least_one))
    max_delay: float = attrs.field(default=30.0, validator=attrs_check(positive))
    jitter: float = attrs.field(default=0.1, validator=attrs_check(_below_one))
    min_hint: float = attrs.field(default=0.5, validator=attrs_check(non_negative))
    max_hint: float = attrs.field(default=120.0, validator=attrs_check(non_negative))
    error_budget: int = attrs.field(default=8, validator=attrs_check(non_negative_int))
    yield_unchanged: bool = attrs.field(default=False, validator=attrs_check(boolean))

    def __attrs_post_init__(self) -> None:
        _validate(self)


def poll_delay(
    policy: PollPolicy, polls: int, *, hint: float | None = None, rng: Callable[[], float]
) -> float:
    """Seconds to wait before poll number ``polls + 1`` (``polls`` made so far).

    A server hint (Retry-After) replaces the schedule, clamped to ``[min_hint, max_hint]``.
    Otherwise the result lies in ``[initial_delay * (1 - jitter), max_delay]``.
    """
    if hint is not None:
        return min(policy.max_hint, max(policy.min_hint, hint))
    base = policy.initial_delay
    if policy.multiplier > 1 and 0 < policy.initial_delay < policy.max_delay:
        # Stop growing once past the cap, so a long poll cannot overflow a float.
        cap_steps = math.ceil(math.log(policy.max_delay / base) / math.log(policy.multiplier))
        base = min(policy.max_delay, base * policy.multiplier ** min(polls, cap_steps))
    spread = 1.0 + policy.jitter * (2.0 * rng() - 1.0)
    return min(policy.max_delay, base * spread)


def has_changed(before: BulkOperation, after: BulkOperation) -> bool:
    """Whether a new observation says something new (``updated_at`` alone does not count)."""
    return (
        before.status != after.status
        or before.processed_rows != after.processed_rows
        or before.success_count != after.success_count
        or before.error_count != after.error_count
        or before.estimated_total_rows != after.estimated_total_rows
        or before.error_items != after.error_items
    )
