"""The poll schedule and the progress arithmetic, in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

import knock_async as ka
from knock_async._convert import structure_operation
from knock_async._follow import has_changed, poll_delay
from knock_async._progress import observe
from tests._support import operation

DEFAULT = ka.PollPolicy()


def test_default_schedule() -> None:
    """Without jitter: first poll after 1 s, then x1.5 each time, capped at 30 s."""
    policy = ka.PollPolicy(jitter=0.0)
    delays = [poll_delay(policy, n, rng=lambda: 0.5) for n in range(11)]
    assert delays == pytest.approx(
        [1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375, 11.390625, 17.0859375, 25.62890625, 30.0, 30.0]
    )


@pytest.mark.parametrize(("rng", "expected"), [(0.0, 0.9), (0.5, 1.0), (0.999999, 1.1)])
def test_jitter_spreads_each_delay(rng: float, expected: float) -> None:
    """Jitter spreads a delay by up to ±jitter of itself."""
    assert poll_delay(DEFAULT, 0, rng=lambda: rng) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("hint", "expected"), [(0.0, 0.5), (2.0, 2.0), (500.0, 120.0)])
def test_server_hints_within_bounds(hint: float, expected: float) -> None:
    """A server's hint replaces the schedule, clamped to [min_hint, max_hint]."""
    assert poll_delay(DEFAULT, 3, hint=hint, rng=lambda: 0.5) == expected


@given(
    polls=st.integers(0, 10**12),
    rng=st.floats(0, 1, exclude_max=True),
    initial=st.floats(0.01, 10),
    multiplier=st.floats(1, 10),
    max_delay=st.floats(10, 600),
    jitter=st.floats(0, 0.99),
)
def test_schedule_bounds(
    polls: int, rng: float, initial: float, multiplier: float, max_delay: float, jitter: float
) -> None:
    """Every delay lies in [initial * (1 - jitter), max_delay], however long the poll runs."""
    policy = ka.PollPolicy(
        initial_delay=initial, multiplier=multiplier, max_delay=max_delay, jitter=jitter
    )
    delay = poll_delay(policy, polls, rng=lambda: rng)
    assert initial * (1 - jitter) * (1 - 1e-9) <= delay <= max_delay


@given(st.integers(0, 60))
def test_schedule_never_shrinks_without_jitter(polls: int) -> None:
    """Without jitter the delays are non-decreasing: the poller only ever backs off."""
    policy = ka.PollPolicy(jitter=0.0)
    assert poll_delay(policy, polls + 1, rng=lambda: 0.5) >= poll_delay(
        policy, polls, rng=lambda: 0.5
    )


def test_detection_delay_is_about_half_the_age() -> None:
    """With the defaults, each wait is at most about half the time polled so far plus 1 s."""
    policy = ka.PollPolicy(jitter=0.0)
    elapsed = 0.0
    for n in range(40):
        delay = poll_delay(policy, n, rng=lambda: 0.5)
        assert delay <= 0.5 * elapsed + policy.initial_delay + 1e-9
        elapsed += delay


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"multiplier": 0.5}, r"PollPolicy.multiplier must be a finite number >= 1, got 0.5"),
        ({"jitter": 1.0}, r"PollPolicy.jitter must be a finite number in \[0, 1\), got 1.0"),
        ({"initial_delay": 60.0}, "initial_delay must not exceed max_delay"),
        ({"min_hint": 10.0, "max_hint": 1.0}, "min_hint must not exceed max_hint"),
        ({"error_budget": -1}, "PollPolicy.error_budget must be an int >= 0"),
        ({"max_delay": -1.0}, "PollPolicy.max_delay must be a finite number > 0"),
        ({"initial_delay": 0}, "PollPolicy.initial_delay must be a finite number > 0"),
    ],
)
def test_poll_policy_validation(kwargs: dict[str, float], text: str) -> None:
    """A PollPolicy with a nonsensical value fails when built, naming the field."""
    with pytest.raises(ValueError, match=text):
        ka.PollPolicy(**kwargs)  # type: ignore[arg-type]


def op(**changes: object) -> ka.BulkOperation:
    return structure_operation(operation(**changes))


T0 = datetime(2024, 5, 22, 12, 0, tzinfo=UTC)


def test_progress_arithmetic() -> None:
    """fraction is processed/estimated; rate and ETA come from two observations."""
    first = observe(op(status="processing", processed_rows=100), T0)
    assert first.fraction == 0.1
    assert first.rows_per_second is None
    assert first.eta is None
    second = observe(op(status="processing", processed_rows=300), T0 + timedelta(seconds=10), first)
    assert second.fraction == 0.3
    assert second.rows_per_second == 20.0
    assert second.eta == timedelta(seconds=35)
    assert second.observed_at == T0 + timedelta(seconds=10)
    assert second.operation_id == second.operation.id


def test_progress_edges() -> None:
    """Estimate 0 gives no fraction; past the estimate clamps at 1; terminal means ETA 0."""
    assert observe(op(estimated_total_rows=0), T0).fraction is None
    first = observe(op(status="processing", processed_rows=0, estimated_total_rows=10), T0)
    over = observe(
        op(status="processing", processed_rows=15, estimated_total_rows=10),
        T0 + timedelta(seconds=5),
        first,
    )
    assert over.fraction == 1.0
    assert over.rows_per_second == 3.0
    assert over.eta is None  # past the estimate, nobody knows what is left
    done = observe(op(status="completed", processed_rows=15, estimated_total_rows=0), T0, over)
    assert done.fraction == 1.0
    assert done.eta == timedelta(0)
    failed = observe(op(status="failed", processed_rows=5, estimated_total_rows=10), T0)
    assert failed.fraction == 0.5
    assert failed.eta == timedelta(0)


def test_stalled_operation_has_no_eta() -> None:
    """An operation that made no progress between observations has rate 0 and no ETA."""
    first = observe(op(status="processing", processed_rows=5), T0)
    later = observe(op(status="processing", processed_rows=5), T0 + timedelta(seconds=9), first)
    assert later.rows_per_second == 0.0
    assert later.eta is None


@given(
    rows=st.lists(st.integers(0, 10**6), min_size=1, max_size=8),
    estimate=st.integers(0, 10**6),
)
def test_fraction_always_in_unit_interval(rows: list[int], estimate: int) -> None:
    """fraction is None or within [0, 1], and the rate is never negative."""
    progress = None
    for i, processed in enumerate(rows):
        progress = observe(
            op(status="processing", processed_rows=processed, estimated_total_rows=estimate),
            T0 + timedelta(seconds=i),
            progress,
        )
        assert progress.fraction is None or 0.0 <= progress.fraction <= 1.0
        assert progress.rows_per_second is None or progress.rows_per_second >= 0


def test_has_changed_ignores_updated_at() -> None:
    """A new updated_at alone is not a change worth a snapshot; new counts are."""
    a = op(status="processing", processed_rows=5)
    assert not has_changed(
        a, op(status="processing", processed_rows=5, updated_at="2025-01-01T00:00:00Z")
    )
    assert has_changed(a, op(status="processing", processed_rows=6))
    assert has_changed(a, op(status="completed", processed_rows=5))
