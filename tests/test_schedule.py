"""The ETA-aware poll schedule and its forecast, in virtual time (no clock, no sleeps)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from knock_async._convert import structure_operation
from knock_async._follow import Changed, Finished, Follow, PollPolicy, WaitUntil, limits
from knock_async._hooks import HookEvent, PollObserved
from knock_async._models import BulkOperation
from knock_async._responses import Answer
from knock_async._schedule import EtaSchedule, Forecast, backoff_delay
from tests._support import OPERATION_ID, operation

DEFAULT = EtaSchedule()


def _backoff(polls: int, spread: float = 0.5) -> float:
    """The old default schedule: 1 s, x1.5, capped at 30 s, ±10%."""
    return backoff_delay(polls, initial=1.0, multiplier=1.5, cap=30.0, jitter=0.1, spread=spread)


@attrs.frozen
class _Operation:
    """Rows done as a piecewise-linear function of time: ``(seconds, rows)`` segments after
    ``queued`` seconds; ``estimate(t)`` is what the server says the total is at ``t``."""

    segments: tuple[tuple[float, int], ...]
    queued: float = 0.0
    estimate: Callable[[float], int | None] | None = None
    batch: int = 1  # progress reported in multiples of this many rows

    @property
    def total(self) -> int:
        return sum(rows for _, rows in self.segments)

    @property
    def end(self) -> float:
        return self.queued + sum(seconds for seconds, _ in self.segments)

    def rows(self, at: float) -> int:
        t, done = at - self.queued, 0.0
        for seconds, rows in self.segments:
            if t < seconds:
                reported = math.floor(done + rows * max(t, 0.0) / seconds)
                return reported - reported % self.batch
            t, done = t - seconds, done + rows
        return self.total

    def estimated(self, at: float) -> int | None:
        return self.total if self.estimate is None else self.estimate(at)


@attrs.frozen
class _Run:
    gets: int
    late: float
    waits: tuple[float, ...]


def _follow(operation: _Operation, *, eta: bool = True, seed: int = 0) -> _Run:
    """Polls ``operation`` from its POST at t=0 until a poll lands after its end."""
    rng = random.Random(seed)
    now, polls, waits = 0.0, 0, []
    forecast = Forecast().observe(0.0, 0, operation.estimated(0.0))
    while True:
        fallback, spread = _backoff(polls, rng.random()), rng.random()
        wait = DEFAULT.delay(forecast, now, fallback=fallback, spread=spread) if eta else fallback
        waits.append(wait)
        now += wait
        polls += 1
        if now >= operation.end:
            return _Run(gets=polls, late=now - operation.end, waits=tuple(waits))
        forecast = forecast.observe(now, operation.rows(now), operation.estimated(now))


STEADY_HOUR = _Operation(((3600.0, 5000),), queued=1.3)
FASTER = _Operation(((1800.0, 2500), (600.0, 2500)), queued=0.7)
SLOWER = _Operation(((1800.0, 2500), (5400.0, 2500)), queued=0.7)


@pytest.mark.parametrize("seed", range(5))
def test_steady_hour_few_gets_and_a_prompt_end(seed: int) -> None:
    """A steady 1 h operation is followed in at most 45 GETs and its end seen within 5 s
    (the old backoff: about 130 GETs, up to 30 s late)."""
    run = _follow(STEADY_HOUR, seed=seed)
    assert run.gets <= 45
    assert run.late <= 5.0
    assert _follow(STEADY_HOUR, eta=False, seed=seed).gets > 3 * run.gets


@pytest.mark.parametrize("operation", [FASTER, SLOWER], ids=["3x-faster", "3x-slower"])
@pytest.mark.parametrize("seed", range(5))
def test_rate_changing_threefold_halfway(operation: _Operation, seed: int) -> None:
    """A rate that triples or drops to a third halfway is still followed closely: no later and
    in fewer GETs than the old backoff."""
    run = _follow(operation, seed=seed)
    old = _follow(operation, eta=False, seed=seed)
    assert run.late <= min(5.0, old.late)
    assert run.gets < old.gets


def test_estimate_that_grows_and_shrinks() -> None:
    """An estimate revised on the way (up by half, then down) moves the predicted end with it:
    the end is still seen within 5 s."""

    def estimate(at: float) -> int:
        return 4000 if at < 600 else (7000 if at < 1800 else 6000)

    operation = _Operation(((3600.0, 6000),), estimate=estimate)
    run = _follow(operation)
    assert run.late <= 5.0
    assert run.gets <= 60


@pytest.mark.parametrize("estimate", [None, 0])
def test_no_estimate_falls_back_to_the_backoff(estimate: int | None) -> None:
    """Without an estimate of the total there is no end to predict: the waits are the plain
    backoff's."""
    operation = _Operation(((600.0, 1000),), estimate=lambda _: estimate)
    run = _follow(operation, seed=3)
    assert run.waits == _follow(operation, eta=False, seed=3).waits


def test_queued_operation_backs_off_then_forecasts() -> None:
    """While queued (no rows yet) the waits are the backoff's; once rows move, the forecast
    takes over and the waits grow past the backoff's 30 s cap."""
    operation = _Operation(((3600.0, 5000),), queued=120.0)
    run = _follow(operation)
    old = _follow(operation, eta=False)
    queued_polls = sum(1 for t in _times(run.waits) if t <= operation.queued)
    assert run.waits[:queued_polls] == old.waits[:queued_polls]
    assert max(run.waits) > 30.0
    assert run.late <= 5.0


def _times(waits: tuple[float, ...]) -> list[float]:
    times, now = [], 0.0
    for wait in waits:
        now += wait
        times.append(now)
    return times


def test_forecast_rate_and_end() -> None:
    """The rate is measured from when each count was first seen; the end is the newest count's
    time plus the rows left at that rate."""
    forecast = Forecast().observe(0.0, 0, 1000).observe(10.0, 100, 1000)
    assert forecast.rate == pytest.approx(10.0)
    assert forecast.end == pytest.approx(100.0)
    # The same count seen again later does not slow the rate down: progress comes in batches.
    stalled = forecast.observe(15.0, 100, 1000)
    assert stalled.rate == pytest.approx(10.0)
    assert stalled.end == pytest.approx(100.0)


def test_forecast_follows_a_recent_rate_change() -> None:
    """The rate is measured over the recent half of the progress, so a rate that tripled is
    picked up within a few polls."""
    forecast = Forecast()
    for at in range(0, 100, 10):
        forecast = forecast.observe(float(at), 10 * at, 10_000)
    for at in range(100, 200, 10):
        forecast = forecast.observe(float(at), 1000 + 30 * (at - 100), 10_000)
    assert forecast.rate == pytest.approx(30.0)


def test_forecast_past_the_estimate_ends_when_the_rows_reached_it() -> None:
    """Once the rows reach the estimate, the predicted end is when they first did."""
    forecast = Forecast().observe(0.0, 0, 100).observe(10.0, 50, 100).observe(20.0, 100, 100)
    assert forecast.observe(25.0, 120, 100).end == 20.0


def test_forecast_restarts_when_the_count_goes_back() -> None:
    """A count that goes back (a server restarted the operation) discards the old rate."""
    forecast = Forecast().observe(0.0, 0, 100).observe(10.0, 50, 100)
    assert forecast.observe(20.0, 10, 100).rate is None


def test_before_the_end_waits_a_fraction_of_what_is_left() -> None:
    """Before the predicted end the wait is ``fraction`` of the time left, bounded by the
    time the operation has been watched and by ``[min_delay, max_delay]``."""
    forecast = Forecast().observe(0.0, 0, 10_000).observe(100.0, 100, 10_000)  # ends at 10,000
    schedule = EtaSchedule(jitter=0.0)
    assert schedule.delay(forecast, 9000.0, fallback=7.0, spread=0.0) == pytest.approx(300.0)
    assert schedule.delay(forecast, 9900.0, fallback=7.0, spread=0.0) == pytest.approx(30.0)
    assert schedule.delay(forecast, 9999.5, fallback=7.0, spread=0.0) == 1.0
    # Early on the watched time bounds the wait: 100 s watched, not 0.3 x 9,900 s.
    assert schedule.delay(forecast, 100.0, fallback=7.0, spread=0.0) == pytest.approx(100.0)


def test_after_the_end_short_growing_waits() -> None:
    """Past the predicted end the waits start at ``min_delay`` and grow with the time overdue,
    up to ``max_overdue_delay``."""
    forecast = Forecast().observe(0.0, 0, 1000).observe(10.0, 100, 1000)  # ends at 100
    waits = [DEFAULT.delay(forecast, at, fallback=7.0, spread=0.0) for at in (100, 102, 110, 200)]
    assert waits == [1.0, 1.0, 5.0, 30.0]


def test_jitter_only_shortens_the_waits() -> None:
    """Jitter spreads a wait before the end downwards only, so it never lands later."""
    forecast = Forecast().observe(0.0, 0, 10_000).observe(1000.0, 1000, 10_000)
    plain = EtaSchedule(jitter=0.0).delay(forecast, 9500.0, fallback=1.0, spread=0.0)
    spread = EtaSchedule(jitter=0.1).delay(forecast, 9500.0, fallback=1.0, spread=0.99)
    assert plain == pytest.approx(150.0)
    assert plain * 0.9 <= spread < plain


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fraction": 1.0}, r"EtaSchedule.fraction must be a finite number in \(0, 1\)"),
        ({"fraction": 0.0}, r"EtaSchedule.fraction must be a finite number in \(0, 1\)"),
        ({"min_delay": math.nan}, "EtaSchedule.min_delay must be a finite number > 0"),
        ({"min_delay": 5.0, "max_delay": 4.0}, "min_delay must not exceed max_delay"),
        ({"jitter": 1.0}, r"EtaSchedule.jitter must be a finite number in \[0, 1\)"),
    ],
)
def test_bad_settings_are_named(changes: dict[str, float], message: str) -> None:
    """A setting out of range is refused with its name."""
    with pytest.raises(ValueError, match=message):
        EtaSchedule(**changes)


def test_backoff_is_the_old_default_schedule() -> None:
    """Without jitter the plain backoff is 1 s, x1.5, capped at 30 s."""
    delays = [
        backoff_delay(n, initial=1.0, multiplier=1.5, cap=30.0, jitter=0.0, spread=0.5)
        for n in range(11)
    ]
    assert delays == pytest.approx(
        [1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375, 11.390625, 17.0859375, 25.62890625, 30.0, 30.0]
    )


_times_st = st.one_of(st.floats(-1e12, 1e12), st.sampled_from([math.nan, math.inf, -math.inf]))
_observations = st.lists(
    st.tuples(_times_st, st.integers(-10, 10**15), st.one_of(st.none(), st.integers(0, 10**15))),
    max_size=30,
)


@given(
    observations=_observations,
    now=_times_st,
    fallback=st.floats(0.001, 100),
    spread=st.floats(0, 1, exclude_max=True),
    min_delay=st.floats(0.001, 100),
    extra=st.floats(0, 10_000),
    fraction=st.floats(0.01, 0.99),
)
def test_delay_always_within_bounds(
    observations: list[tuple[float, int, int | None]],
    now: float,
    fallback: float,
    spread: float,
    min_delay: float,
    extra: float,
    fraction: float,
) -> None:
    """Whatever the snapshots say (times out of order, counts going back, estimates of 0,
    absurd numbers), the wait is the backoff's while no end is predicted, else a finite number
    within ``[min_delay, max_delay]``."""
    schedule = EtaSchedule(fraction=fraction, min_delay=min_delay, max_delay=min_delay + extra)
    forecast = Forecast()
    for at, rows, estimate in observations:
        forecast = forecast.observe(at, rows, estimate)
        rate = forecast.rate
        assert rate is None or (math.isfinite(rate) and rate > 0)
    delay = schedule.delay(forecast, now, fallback=fallback, spread=spread)
    if forecast.end is None or not math.isfinite(now):
        assert delay == fallback
    else:
        assert math.isfinite(delay)
        assert schedule.min_delay <= delay <= schedule.max_delay


@given(
    rows_per_second=st.floats(1, 10_000),
    seconds=st.floats(5, 20_000),
    ratio=st.sampled_from([1 / 3, 1.0, 3.0]),
    seed=st.integers(0, 2**32),
)
def test_never_overshoots_the_end_by_more_than_a_few_seconds(
    rows_per_second: float, seconds: float, ratio: float, seed: int
) -> None:
    """With progress reported row by row (at least a row a second), a rate that is steady or
    changes threefold halfway is followed to its end with the last poll at most a few seconds
    late."""
    total = math.ceil(rows_per_second * seconds)
    half = total // 2
    operation = _Operation(((seconds / 2, half), (seconds / 2 / ratio, total - half)))
    assert _follow(operation, seed=seed).late <= 5.0


def test_coarse_batches_aim_at_the_earliest_plausible_end() -> None:
    """A count that stood still for a while (progress in batches) makes the schedule aim that
    much before the predicted end, and poll from there as past an end."""
    forecast = Forecast().observe(0.0, 0, 1000)
    for at, rows in [(100.0, 100), (150.0, 100), (200.0, 200)]:
        forecast = forecast.observe(at, rows, 1000)
    assert forecast.longest_stall == 50.0
    assert forecast.end == pytest.approx(1000.0)
    schedule = EtaSchedule(jitter=0.0)
    assert schedule.delay(forecast, 900.0, fallback=7.0, spread=0.0) == pytest.approx(15.0)
    assert schedule.delay(forecast, 960.0, fallback=7.0, spread=0.0) == pytest.approx(5.0)


def test_standing_still_while_queued_is_not_a_batch() -> None:
    """Polls that see 0 rows while the operation waits in the queue are not taken for coarse
    batches."""
    forecast = Forecast()
    for at, rows in [(0.0, 0), (60.0, 0), (120.0, 0), (130.0, 10), (140.0, 20)]:
        forecast = forecast.observe(at, rows, 1000)
    assert forecast.longest_stall == 0.0


@given(seed=st.integers(0, 2**32), batches=st.integers(5, 50))
def test_coarse_batches_never_later_than_the_backoff_cap(seed: int, batches: int) -> None:
    """With progress reported in batches, the end is still noticed within the 30 s the
    backoff would allow."""
    operation = _Operation(((3600.0, 10_000),), batch=10_000 // batches)
    assert _follow(operation, seed=seed).late <= 30.0


# -- the follow state uses it ------------------------------------------------------------------

WALL = datetime(2024, 5, 22, 12, 0, tzinfo=UTC)


def _snapshot(rows: int, status: str = "processing") -> BulkOperation:
    return structure_operation(
        operation(status=status, processed_rows=rows, estimated_total_rows=36_000)
    )


def _answer(rows: int, status: str = "processing") -> Answer:
    body = operation(status=status, processed_rows=rows, estimated_total_rows=36_000)
    return Answer(200, {}, json.dumps(body).encode())


def _follow_state(policy: PollPolicy, hooks: list[HookEvent] | None = None) -> list[float]:
    """The waits a ``Follow`` decides for a steady 10 rows/s operation of an hour, polled
    exactly when it says, until it ends."""
    follow = Follow(
        OPERATION_ID,
        limits=limits(None, None),
        policy=policy,
        hooks=[] if hooks is None else [hooks.append],
    )
    decision = follow.begin(0.0, WALL, _snapshot(0), rng=lambda: 0.5)
    waits, now = [], 0.0
    while not isinstance(decision, Finished):
        assert isinstance(decision, Changed | WaitUntil)
        waits.append(decision.until - now)
        now = decision.until
        rows = min(36_000, int(10 * now))
        status = "completed" if rows == 36_000 else "processing"
        decision = follow.answered(now, _answer(rows, status), rng=lambda: 0.5)
    return waits


def test_follow_state_is_eta_aware_by_default() -> None:
    """``PollPolicy()`` follows an hour-long operation in few polls with waits well past the
    backoff's 30 s; ``eta=False`` is the plain backoff."""
    eta = _follow_state(PollPolicy())
    backoff = _follow_state(PollPolicy(eta=False))
    assert len(eta) <= 45
    assert max(eta) > 30.0
    assert max(backoff) <= 30.0 * 1.1
    assert len(backoff) > 3 * len(eta)


def test_follow_state_reports_each_observation() -> None:
    """Every snapshot the follow state takes in is reported with when the next poll is due
    (on the wall clock), and the last one, the end, with none."""
    events: list[HookEvent] = []
    waits = _follow_state(PollPolicy(), events)
    observed = [e for e in events if isinstance(e, PollObserved)]
    assert len(observed) == len(waits) + 1  # the start, every poll
    assert observed[0].next_poll_at == WALL + timedelta(seconds=waits[0])
    assert observed[0].fraction == 0.0
    assert observed[-1].status == "completed"
    assert observed[-1].next_poll_at is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"eta": 1}, "PollPolicy.eta must be a bool"),
        ({"eta_fraction": 1.0}, r"PollPolicy.eta_fraction must be a finite number in \(0, 1\)"),
        ({"max_eta_delay": 0.0}, "PollPolicy.max_eta_delay must be a finite number > 0"),
        ({"initial_delay": 5.0, "max_eta_delay": 4.0}, "must not exceed max_eta_delay"),
    ],
)
def test_poll_policy_eta_settings_are_checked(changes: dict[str, Any], message: str) -> None:
    """The ETA settings of ``PollPolicy`` are refused with their name when out of range."""
    with pytest.raises((TypeError, ValueError), match=message):
        PollPolicy(**changes)


def test_a_nonsense_estimate_predicts_nothing() -> None:
    """A negative estimate (or negative rows) from a server is taken as no estimate: the
    forecast predicts no end, and the schedule falls back to the plain backoff."""
    forecast = Forecast().observe(0.0, -5, -100).observe(10.0, 50, -100)
    assert forecast.estimated_total_rows is None
    assert forecast.end is None
    assert DEFAULT.delay(forecast, 10.0, fallback=2.5, spread=0.5) == 2.5
