"""The one set of argument checks: same mistake, same exception type, same message shape."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import knock_async as ka
from knock_async._validate import (
    boolean,
    fraction,
    non_negative,
    non_negative_int,
    optional,
    positive,
    positive_int,
)
from knock_async.testing import EmulatorRateLimits, ProcessingSettings

SHAPE = re.compile(r"^\S+ must be .+, got .+$")
Check = Callable[[str, object], Any]


@pytest.mark.parametrize("check", [positive, non_negative, fraction])
@pytest.mark.parametrize("value", [True, False, "1", None, b"1", [1]])
def test_number_checks_refuse_non_numbers_with_type_error(check: Check, value: object) -> None:
    """A bool, a string, None or a list where a number belongs is a TypeError of one shape."""
    with pytest.raises(TypeError) as info:
        check("thing", value)
    assert SHAPE.match(str(info.value))
    assert str(info.value).startswith("thing must be ")
    assert str(info.value).endswith(f"got {value!r}")


@pytest.mark.parametrize("check", [positive, non_negative, fraction])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_number_checks_refuse_nan_and_infinities(check: Check, value: float) -> None:
    """NaN and the infinities are ValueErrors wherever a number is expected."""
    with pytest.raises(ValueError, match=r"^thing must be .*, got "):
        check("thing", value)


@pytest.mark.parametrize("check", [positive_int, non_negative_int])
@pytest.mark.parametrize("value", [True, 1.0, "2", None])
def test_int_checks_refuse_bools_floats_and_strings(check: Check, value: object) -> None:
    """An int check takes ints only: a bool or a whole float is a TypeError."""
    with pytest.raises(TypeError, match=r"^n must be an int >= [01], got "):
        check("n", value)


@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers())
def test_number_checks_agree_with_their_bounds(value: float) -> None:
    """Each check accepts exactly the finite numbers within its bounds and returns them."""
    for check, ok in (
        (positive, value > 0),
        (non_negative, value >= 0),
        (fraction, 0 < value <= 1),
    ):
        if ok:
            assert check("x", value) == value
        else:
            with pytest.raises(ValueError, match=r"^x must be "):
                check("x", value)


@given(st.integers())
def test_int_checks_agree_with_their_bounds(value: int) -> None:
    """positive_int takes ints >= 1, non_negative_int ints >= 0."""
    for check, minimum in ((positive_int, 1), (non_negative_int, 0)):
        if value >= minimum:
            assert check("n", value) == value
        else:
            with pytest.raises(ValueError, match=rf"^n must be an int >= {minimum}, got {value}$"):
                check("n", value)


def test_optional_allows_none_and_says_so() -> None:
    """optional(check) passes None through and names None as an option in its message."""
    assert optional(positive)("timeout", None) is None
    assert optional(positive)("timeout", 2.5) == 2.5
    with pytest.raises(ValueError, match=r"^timeout must be None or a finite number > 0, got 0$"):
        optional(positive)("timeout", 0)
    with pytest.raises(TypeError, match=r"^timeout must be None or a finite number > 0, got True$"):
        optional(positive)("timeout", True)


def test_boolean_refuses_truthy_non_bools() -> None:
    """A flag must be a real bool: 1 or "yes" is a TypeError."""
    assert boolean("flag", True) is True
    for value in (1, "yes", None):
        with pytest.raises(TypeError, match=r"^flag must be a bool, got "):
            boolean("flag", value)


@pytest.mark.parametrize(
    ("build", "error", "text"),
    [
        (lambda: ka.PollPolicy(error_budget=True), TypeError, "PollPolicy.error_budget"),
        (lambda: ka.PollPolicy(max_hint=math.nan), ValueError, "PollPolicy.max_hint"),
        (lambda: ka.PollPolicy(initial_delay=True), TypeError, "PollPolicy.initial_delay"),
        (
            lambda: ka.PollPolicy(yield_unchanged=1),  # type: ignore[arg-type]
            TypeError,
            "PollPolicy.yield_unchanged",
        ),
        (lambda: ka.RetryPolicy(attempts=True), TypeError, "RetryPolicy.attempts"),
        (lambda: ka.RetryPolicy(max_retry_after=math.inf), ValueError, "RetryPolicy.max_retry"),
        (lambda: ka.RetryPolicy(initial_delay=-1), ValueError, "RetryPolicy.initial_delay"),
        (lambda: ka.RateLimits(post_per_second=True), TypeError, "RateLimits.post_per_second"),
        (lambda: ka.RateLimits(get_burst=True), TypeError, "RateLimits.get_burst"),
        (lambda: ka.KnockClient("sk_x", timeout=math.nan), ValueError, "timeout"),
        (lambda: ka.KnockClient("sk_x", timeout=True), TypeError, "timeout"),
        (lambda: ka.KnockClient("sk_x", connect_timeout=-1), ValueError, "connect_timeout"),
        (
            lambda: ka.KnockClient("sk_x", allow_insecure_http="yes"),  # type: ignore[arg-type]
            TypeError,
            "allow_insecure_http",
        ),
        (lambda: ProcessingSettings(batch_size=True), TypeError, "ProcessingSettings.batch_size"),
        (lambda: ProcessingSettings(queue_delay=math.nan), ValueError, "ProcessingSettings"),
        (lambda: ProcessingSettings(rows_per_second=0), ValueError, "ProcessingSettings.rows"),
        (lambda: EmulatorRateLimits(post_per_second=True), TypeError, "EmulatorRateLimits"),
        (lambda: EmulatorRateLimits(burst_seconds=math.nan), ValueError, "EmulatorRateLimits"),
    ],
)
def test_every_policy_uses_the_same_checks(
    build: Callable[[], object], error: type[Exception], text: str
) -> None:
    """Policies, the client and the emulator's settings refuse bools, NaN and infinities with
    the same exception type and the same "NAME must be ..., got X" message."""
    with pytest.raises(error) as info:
        build()
    assert type(info.value) is error
    assert str(info.value).startswith(text)
    assert SHAPE.match(str(info.value))


def test_emulator_still_accepts_an_infinite_processing_rate() -> None:
    """rows_per_second=math.inf stays a documented emulator setting."""
    assert ProcessingSettings(rows_per_second=math.inf).rows_per_second == math.inf


async def test_update_many_and_poll_check_their_numbers() -> None:
    """update_many's concurrency and poll's timeout use the same checks, before any request."""
    async with ka.KnockClient("sk_x", base_url="http://127.0.0.1:9") as knock:
        with pytest.raises(TypeError, match=r"^concurrency must be an int >= 1, got True$"):
            knock.channels.bulk.update_many([], "archive", concurrency=True)
        with pytest.raises(ValueError, match=r"^timeout must be None or a finite number >= 0"):
            knock.bulk_operations.poll("op", timeout=math.inf)
