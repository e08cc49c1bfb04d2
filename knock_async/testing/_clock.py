"""Clocks: the emulator reads time only through one of these, so tests can control it.

A clock gives two things: a monotonic reading in seconds (durations: processing speed, rate
limits, queue delays) and the wall-clock ``datetime`` that a monotonic reading corresponds to
(timestamps: ``started_at``, ``read_at``, ...). Deriving the second from the first keeps the two
consistent: an event scheduled at monotonic time ``t`` is stamped ``to_datetime(t)`` whenever
it is actually applied.
"""

from __future__ import annotations

import asyncio
import copy
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FastClock", "ManualClock", "SystemClock", "fresh_clock"]


@runtime_checkable
class Clock(Protocol):
    """What the emulator needs from a clock."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...

    def to_datetime(self, monotonic: float) -> datetime:
        """The timezone-aware UTC wall-clock time of a monotonic reading."""
        ...

    def now(self) -> datetime:
        """``to_datetime(monotonic())``."""
        ...


class SystemClock:
    """Real time: ``time.monotonic`` for durations, anchored to the wall clock once at creation."""

    def __init__(self) -> None:
        self._origin = time.monotonic()
        self._wall_origin = datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        return time.monotonic()

    def to_datetime(self, monotonic: float) -> datetime:
        """The timezone-aware UTC wall-clock time of a ``monotonic`` reading."""
        return self._wall_origin + timedelta(seconds=monotonic - self._origin)

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware UTC."""
        return self.to_datetime(self.monotonic())

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)``: real time is this clock's time."""
        await asyncio.sleep(seconds)

    def fresh(self) -> SystemClock:
        """A new clock with the same settings (for a test of its own)."""
        return SystemClock()

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """Time that moves only when a test says so: ``advance(seconds)`` or ``set(datetime)``.

    ``monotonic()`` starts at 0.0; ``now()`` starts at ``start`` (default 2025-01-01T00:00:00Z).
    """

    DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)

    def __init__(self, start: datetime | None = None) -> None:
        start = self.DEFAULT_START if start is None else start
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be a timezone-aware datetime")
        self._start = start.astimezone(UTC)
        self._elapsed = 0.0

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        return self._elapsed

    def to_datetime(self, monotonic: float) -> datetime:
        """The timezone-aware UTC wall-clock time of a ``monotonic`` reading."""
        return self._start + timedelta(seconds=monotonic)

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware UTC."""
        return self.to_datetime(self._elapsed)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (>= 0)."""
        if not seconds >= 0:  # also refuses NaN
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        self._elapsed += seconds

    async def sleep(self, seconds: float) -> None:
        """Move time forward ``seconds`` and let other tasks run: a client sleeping on this
        clock (``knock_emulator.client()``) waits no real time at all.

        Concurrent sleepers share one timeline: time moves to the furthest deadline asked for,
        and a sleeper whose deadline has passed meanwhile returns at once.
        """
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        deadline = self._elapsed + seconds
        await asyncio.sleep(0)
        if self._elapsed < deadline:
            self._elapsed = deadline

    def fresh(self) -> ManualClock:
        """A new clock at this one's start time (for a test of its own)."""
        return ManualClock(self._start)

    def set(self, when: datetime) -> None:
        """Move time forward to the wall-clock time ``when`` (never backwards)."""
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("when must be a timezone-aware datetime")
        self.advance((when - self.now()).total_seconds())

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now().isoformat()})"


_SPIN = 0.0015  # real seconds before a FastClock deadline spent yielding, not on a timer


class FastClock:
    """Real time sped up ``speed`` times, to share between an emulator and a client.

    ``KnockEmulator(clock=fast)`` processes operations and enforces rate limits in this time,
    and ``KnockClient(clock=fast.monotonic, sleep=fast.sleep)`` paces and polls in it, so a
    minute of Knock (a 200-channel fan-out at 5 POST/s, a poll backing off to 30 s) passes in
    a few real seconds while every request still crosses a real socket.
    """

    def __init__(self, speed: float = 10.0) -> None:
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a finite number > 0, got {speed!r}")
        self.speed = float(speed)
        self._origin = time.monotonic()
        self._wall_origin = datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        return (time.monotonic() - self._origin) * self.speed

    def to_datetime(self, monotonic: float) -> datetime:
        """The timezone-aware UTC wall-clock time of a ``monotonic`` reading."""
        return self._wall_origin + timedelta(seconds=monotonic)

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware UTC."""
        return self.to_datetime(self.monotonic())

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time (``seconds / speed`` real seconds).

        asyncio wakes timers up to a millisecond late, which is ``speed`` milliseconds here
        and would add up over a paced queue: the last stretch is waited out by yielding to
        the loop until the clock gets there.
        """
        deadline = self.monotonic() + seconds
        real = seconds / self.speed
        if real > _SPIN:
            await asyncio.sleep(real - _SPIN)
        while self.monotonic() < deadline:  # noqa: ASYNC110 - a deliberate, bounded spin
            await asyncio.sleep(0)

    def fresh(self) -> FastClock:
        """A new clock at the same speed, starting now (for a test of its own)."""
        return FastClock(self.speed)

    def __repr__(self) -> str:
        return f"FastClock(speed={self.speed:g})"


def fresh_clock(value: object) -> Clock:
    """A clock no other test shares, from what a ``knock_emulator`` marker says: a clock class
    or factory is called; one of this module's clocks gives a new one with its settings
    (``fresh()``); any other clock object is deep-copied."""
    if isinstance(value, type) or (callable(value) and not isinstance(value, Clock)):
        made = value()
        if not isinstance(made, Clock):
            raise TypeError(f"clock factory {value!r} returned {made!r}, not a Clock")
        return made
    if not isinstance(value, Clock):
        raise TypeError(f"clock must be a Clock, a Clock class or a factory; got {value!r}")
    fresh = getattr(value, "fresh", None)
    if callable(fresh):
        made = fresh()
        assert isinstance(made, Clock)
        return made
    return copy.deepcopy(value)
