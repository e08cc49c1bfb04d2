"""Retry decisions and Retry-After parsing. Pure: the caller supplies the clock and the dice.

Why the bulk POST is not blindly retried: Knock ignores ``Idempotency-Key`` on this endpoint,
so a POST that may have reached the server (a 5xx, a timeout, a connection dropped after the
request was written) may already have started a bulk operation, and sending it again can start
a second one. It is retried only when it certainly did not start one: a 429, or a connection
that failed before the request was written. ``RetryPolicy(retry_ambiguous_post=True)`` opts in
to retrying the rest (safe for idempotent actions such as ``archive`` or ``read``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import attrs

from ._validate import attrs_check, boolean, non_negative, positive_int

__all__ = ["Failure", "RetryPolicy", "may_have_started", "parse_retry_after", "retry_delay"]


class Failure(enum.Enum):
    """How an attempt failed when no HTTP status came back."""

    NOT_SENT = "not_sent"  # connecting failed: the request never left
    CONNECTION = "connection"  # dropped mid-exchange: the server may have acted on it
    TIMEOUT = "timeout"  # no answer in time: the server may have acted on it


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    ``attempts`` counts the first try (``1`` disables retries). The wait before retry *n* is
    full-jitter exponential: uniform in ``[0, min(max_delay, initial_delay * 2**(n-1))]``; a
    429 waits at least ``rate_limited_delay`` (Knock's limits are per second and its 429s carry
    no Retry-After). A server's Retry-After is honoured when it is at most ``max_retry_after``;
    a longer one ends the retries and the ``RateLimitError`` carries it.

    The client's own policy (``KnockClient(retry=...)``) also bounds how long a 429's
    Retry-After holds the client's rate limiter, for every request of the client, polls
    included: a hint up to its ``max_retry_after`` holds the tier that long, a longer one (which
    nobody waits out) no longer than the limiter's usual slow-down.
    """

    attempts: int = attrs.field(default=4, validator=attrs_check(positive_int))
    initial_delay: float = attrs.field(default=0.5, validator=attrs_check(non_negative))
    max_delay: float = attrs.field(default=8.0, validator=attrs_check(non_negative))
    rate_limited_delay: float = attrs.field(default=1.0, validator=attrs_check(non_negative))
    max_retry_after: float = attrs.field(default=60.0, validator=attrs_check(non_negative))
    retry_ambiguous_post: bool = attrs.field(default=False, validator=attrs_check(boolean))


RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def is_transient(status: int | None, failure: Failure | None) -> bool:
    """Whether an outcome may go away by itself: transport failures, 408, 429 and 5xx."""
    if failure is not None:
        return True
    return status is not None and (status in RETRYABLE_STATUSES or status >= 500)


def retry_delay(
    policy: RetryPolicy,
    *,
    method: str,
    attempt: int,
    status: int | None = None,
    failure: Failure | None = None,
    retry_after: float | None = None,
    rng: Callable[[], float],
) -> float | None:
    """Seconds to wait before the next try, or ``None`` to give up.

    ``attempt`` is the number of tries made so far (1 after the first). ``rng`` returns a
    uniform float in ``[0, 1)``.
    """
    if attempt >= policy.attempts or not is_transient(status, failure):
        return None
    if not policy.retry_ambiguous_post and may_have_started(method, status=status, failure=failure):
        return None
    if retry_after is not None:
        if retry_after > policy.max_retry_after:
            return None
        # "Retry-After: 0" on a 429 must not turn into back-to-back requests.
        return max(retry_after, policy.rate_limited_delay) if status == 429 else retry_after
    ceiling = min(policy.max_delay, policy.initial_delay * 2.0 ** (attempt - 1))
    delay = rng() * ceiling
    if status == 429:
        delay = max(delay, policy.rate_limited_delay)
    return delay


def may_have_started(method: str, *, status: int | None, failure: Failure | None) -> bool:
    """Whether a request that ended this way may have started an operation on Knock: never
    for a GET; for the bulk POST, unless it certainly did not (a status Knock answers before
    acting: 4xx but 408; a connection that failed before the request was written). A 2xx
    counts: the operation started, whatever its body said."""
    if method == "GET":
        return False
    if failure is not None:
        return failure is not Failure.NOT_SENT
    return status is None or status < 300 or status == 408 or status >= 500


def parse_retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds the server asks us to wait, from ``retry-after-ms`` or ``retry-after``.

    ``retry-after`` may be delta-seconds or an HTTP date (then ``now`` is used, default the
    current time). Unparseable or negative values count as no hint.
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            ms = float(raw_ms)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms >= 0:
            return ms / 1000.0
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
        return max(0.0, seconds)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
