"""The clocks the emulator reads time from."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from knock_async.testing import Clock, ManualClock, SystemClock


def test_manual_clock_moves_only_when_told() -> None:
    """ManualClock starts at its start time and moves by advance() and set() only."""
    clock = ManualClock(datetime(2024, 5, 1, tzinfo=UTC))
    assert clock.monotonic() == 0.0
    assert clock.now() == datetime(2024, 5, 1, tzinfo=UTC)
    clock.advance(1.5)
    assert clock.monotonic() == 1.5
    assert clock.now() == datetime(2024, 5, 1, 0, 0, 1, 500000, tzinfo=UTC)
    clock.set(datetime(2024, 5, 2, tzinfo=UTC))
    assert clock.now() == datetime(2024, 5, 2, tzinfo=UTC)
    assert clock.to_datetime(0.0) == datetime(2024, 5, 1, tzinfo=UTC)


def test_manual_clock_never_goes_backwards() -> None:
    """Negative or NaN steps, naive datetimes and setting the past are refused."""
    clock = ManualClock()
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(float("nan"))
    with pytest.raises(ValueError, match="seconds"):
        clock.set(clock.now() - timedelta(seconds=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2030, 1, 1))


def test_system_clock_ties_monotonic_time_to_utc() -> None:
    """SystemClock's datetimes are UTC, near the wall clock, and follow monotonic time."""
    clock = SystemClock()
    now = clock.now()
    assert now.tzinfo is not None
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)
    base = clock.monotonic()
    assert clock.to_datetime(base + 2) - clock.to_datetime(base) == timedelta(seconds=2)


def test_both_clocks_satisfy_the_protocol() -> None:
    """Either clock can be given to the emulator."""
    assert isinstance(ManualClock(), Clock)
    assert isinstance(SystemClock(), Clock)


async def test_manual_clock_sleep_moves_time_without_waiting() -> None:
    """ManualClock.sleep moves the clock by the seconds asked; concurrent sleepers share one
    timeline (time ends at the furthest deadline, not at the sum); a negative sleep is
    refused."""
    clock = ManualClock()
    await clock.sleep(2.5)
    assert clock.monotonic() == 2.5
    await asyncio.gather(clock.sleep(1.0), clock.sleep(3.0), clock.sleep(0.0))
    assert clock.monotonic() == 5.5
    with pytest.raises(ValueError, match="seconds"):
        await clock.sleep(-1)
