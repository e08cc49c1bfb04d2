"""Retry decisions and Retry-After parsing, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from knock_async import Failure, RetryPolicy
from knock_async._retry import parse_retry_after, retry_delay

POLICY = RetryPolicy()
HALF = 0.5


def half() -> float:
    return HALF


@pytest.mark.parametrize(
    ("method", "status", "failure", "retried"),
    [
        ("GET", None, Failure.NOT_SENT, True),
        ("GET", None, Failure.CONNECTION, True),
        ("GET", None, Failure.TIMEOUT, True),
        ("GET", 408, None, True),
        ("GET", 429, None, True),
        ("GET", 500, None, True),
        ("GET", 503, None, True),
        ("GET", 599, None, True),
        ("GET", 400, None, False),
        ("GET", 401, None, False),
        ("GET", 404, None, False),
        ("GET", 422, None, False),
        # The bulk POST: only where it certainly did not start an operation.
        ("POST", 429, None, True),
        ("POST", None, Failure.NOT_SENT, True),
        ("POST", None, Failure.CONNECTION, False),
        ("POST", None, Failure.TIMEOUT, False),
        ("POST", 408, None, False),
        ("POST", 500, None, False),
        ("POST", 503, None, False),
        ("POST", 422, None, False),
    ],
)
def test_what_is_retried(
    method: str, status: int | None, failure: Failure | None, retried: bool
) -> None:
    """GETs retry transient failures; the POST only 429 and connections that never sent."""
    delay = retry_delay(POLICY, method=method, attempt=1, status=status, failure=failure, rng=half)
    assert (delay is not None) is retried


@pytest.mark.parametrize(
    ("status", "failure"),
    [(500, None), (408, None), (None, Failure.CONNECTION), (None, Failure.TIMEOUT)],
)
def test_ambiguous_post_retried_only_when_opted_in(
    status: int | None, failure: Failure | None
) -> None:
    """retry_ambiguous_post=True retries POST failures that may have started an operation."""
    policy = RetryPolicy(retry_ambiguous_post=True)
    assert retry_delay(policy, method="POST", attempt=1, status=status, failure=failure, rng=half)


def test_attempts_bound_the_retries() -> None:
    """attempts counts the first try: the last allowed attempt is not followed by another."""
    policy = RetryPolicy(attempts=3)
    assert retry_delay(policy, method="GET", attempt=2, status=503, rng=half) is not None
    assert retry_delay(policy, method="GET", attempt=3, status=503, rng=half) is None
    assert (
        retry_delay(RetryPolicy(attempts=1), method="GET", attempt=1, status=503, rng=half) is None
    )


@pytest.mark.parametrize(
    ("attempt", "rng", "expected"),
    [
        (1, 0.5, 0.25),
        (2, 0.5, 0.5),
        (3, 0.5, 1.0),
        (3, 0.0, 0.0),
        (10, 0.5, 4.0),
        (10, 0.999, 7.992),
    ],
)
def test_full_jitter_exponential_backoff(attempt: int, rng: float, expected: float) -> None:
    """The wait is uniform in [0, min(max_delay, initial * 2**(attempt-1))]."""
    policy = RetryPolicy(attempts=20)
    delay = retry_delay(policy, method="GET", attempt=attempt, status=503, rng=lambda: rng)
    assert delay == pytest.approx(expected)


def test_rate_limited_waits_at_least_a_second() -> None:
    """A 429 without a hint waits at least rate_limited_delay (Knock's limits are per second)."""
    delay = retry_delay(POLICY, method="POST", attempt=1, status=429, rng=lambda: 0.0)
    assert delay == 1.0


@pytest.mark.parametrize(
    ("status", "hint", "expected"),
    [
        (503, 0.0, 0.0),
        (503, 3.0, 3.0),
        (429, 0.0, 1.0),  # a 429 still waits its floor: no back-to-back retries
        (429, 3.0, 3.0),
        (429, 60.0, 60.0),
        (429, 61.0, None),
    ],
)
def test_retry_after_is_honoured_within_the_cap(
    status: int, hint: float, expected: float | None
) -> None:
    """A Retry-After up to max_retry_after is waited (a 429 at least its floor); a longer one
    ends the retries."""
    delay = retry_delay(POLICY, method="GET", attempt=1, status=status, retry_after=hint, rng=half)
    assert delay == expected


NOW = datetime(2024, 5, 22, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "Wed, 22 May 2024 12:00:10 GMT"}, 10.0),
        ({"retry-after": "Wed, 22 May 2024 11:59:00 GMT"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "bad", "retry-after": "9"}, 9.0),
        ({"retry-after-ms": "-5"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    """retry-after-ms wins; retry-after is seconds or an HTTP date; junk is no hint."""
    assert parse_retry_after(headers, now=NOW) == expected


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"attempts": 0}, "attempts must be an int >= 1"),
        ({"initial_delay": -1}, "initial_delay must be a finite number"),
        ({"max_delay": float("inf")}, "max_delay must be a finite number"),
    ],
)
def test_policy_validation(kwargs: dict[str, float], text: str) -> None:
    """A RetryPolicy with a nonsensical value fails when built, naming the field."""
    with pytest.raises(ValueError, match=text):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@given(
    attempt=st.integers(1, 50),
    rng=st.floats(0, 1, exclude_max=True),
    status=st.sampled_from([408, 429, 500, 503]),
)
def test_delays_stay_within_bounds(attempt: int, rng: float, status: int) -> None:
    """Any retry delay without a hint lies in [0, max(max_delay, rate_limited_delay)]."""
    policy = RetryPolicy(attempts=100)
    delay = retry_delay(policy, method="GET", attempt=attempt, status=status, rng=lambda: rng)
    assert delay is not None
    assert 0 <= delay <= max(policy.max_delay, policy.rate_limited_delay)
