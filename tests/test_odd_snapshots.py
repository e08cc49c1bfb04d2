"""Snapshots that make no sense (negative counts, processed past the estimate, more successes
and errors than rows) are data: they never end a follow, and what is derived from them stays
in range. Hypothesis over sequences of them, through the pure core a poll goes through."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import knock_async as ka
from knock_async._follow import Changed, Finished, Follow, PollPolicy, WaitUntil, limits
from knock_async._progress import Progress, RowTally, pace
from knock_async._responses import Answer
from tests._support import OPERATION_ID, operation

WALL = datetime(2024, 5, 22, 12, 0, tzinfo=UTC)
INT64 = st.integers(-(2**63), 2**63 - 1)
# Mostly small odd numbers (where the arithmetic's branches are), sometimes the extremes.
COUNT = st.one_of(st.integers(-1000, 1000), INT64)
STATUS = st.sampled_from(["queued", "processing", "processing", "processing", "paused"])

snapshots = st.fixed_dictionaries(
    {
        "status": STATUS,
        "processed_rows": COUNT,
        "estimated_total_rows": COUNT,
        "success_count": COUNT,
        "error_count": COUNT,
    }
)


def in_range(progress: Progress) -> None:
    assert progress.fraction is None or 0.0 <= progress.fraction <= 1.0
    assert progress.rows_per_second is None or progress.rows_per_second >= 0.0
    assert progress.eta is None or progress.eta >= timedelta(0)


def answer(changes: dict[str, Any]) -> Answer:
    return Answer(200, {}, json.dumps(operation(**changes)).encode())


@given(
    steps=st.lists(st.tuples(st.floats(0.0, 1e5), snapshots), min_size=1, max_size=25),
    end=st.sampled_from(["completed", "failed"]),
    eta=st.booleans(),
)
def test_odd_snapshots_never_end_a_follow(
    steps: list[tuple[float, dict[str, Any]]], end: str, eta: bool
) -> None:
    """Whatever counts each answer carries, the follow reads it as a snapshot: no decision
    gives up, the next poll is never in the past, every snapshot's fraction is in [0, 1] or
    None and its rate and ETA non-negative or None, and the final answer finishes the follow."""
    follow = Follow(OPERATION_ID, limits=limits(None, None), policy=PollPolicy(eta=eta))
    now = 0.0
    decision = follow.begin(now, WALL, None, rng=lambda: 0.5)
    for advance, changes in steps:
        assert isinstance(decision, WaitUntil | Changed)
        assert decision.until >= now
        now = decision.until + advance
        decision = follow.answered(now, answer(changes), rng=lambda: 0.5)
        assert follow.last is not None
        in_range(follow.last)
    final = follow.answered(now + 1, answer({"status": end, "processed_rows": -1}), rng=lambda: 0.5)
    assert isinstance(final, Finished)
    in_range(final.progress)
    if end == "completed":
        assert final.progress.fraction == 1.0


@given(
    events=st.lists(
        st.tuples(
            st.integers(0, 4),  # which channel
            snapshots,
            st.sampled_from(["processing", "completed", "failed"]),
            st.booleans(),  # the channel is over (an error stopped it)
        ),
        max_size=40,
    ),
    elapsed=st.floats(0.0, 1e6),
)
def test_fan_out_totals_stay_sane_whatever_the_snapshots(
    events: list[tuple[int, dict[str, Any], str, bool]], elapsed: float
) -> None:
    """Across any sequence of odd snapshots of many channels, the fan-out's row sums stay
    ordered (0 <= processed <= estimated), the totals' fraction is in [0, 1] (or None), and its
    rate and ETA are non-negative (or None)."""
    tally = RowTally()
    for channel, changes, status, over in events:
        operation_ = Follow(OPERATION_ID, limits=limits(None, None), policy=PollPolicy())
        decision = operation_.begin(0.0, WALL, None, rng=lambda: 0.5)
        assert not isinstance(decision, Finished)
        operation_.answered(1.0, answer({**changes, "status": status}), rng=lambda: 0.5)
        assert operation_.last is not None
        tally.update(f"channel-{channel}", operation_.last.operation, over=over)
        assert 0 <= tally.processed <= tally.estimated
        rate, eta = pace(tally.processed, tally.estimated, elapsed, running=True)
        totals = ka.FanOutTotals(
            channels=5,
            submitted=5,
            completed=0,
            failed=0,
            errored=0,
            processed_rows=tally.processed,
            estimated_total_rows=tally.estimated,
            rows_per_second=rate,
            eta=eta,
        )
        assert totals.fraction is None or 0.0 <= totals.fraction <= 1.0
        assert rate is None or rate >= 0.0
        assert eta is None or eta >= timedelta(0)


@given(
    processed=st.integers(-(2**70), 2**70),
    estimated=st.integers(-(2**70), 2**70),
    finished=st.integers(0, 3),
)
def test_fan_out_totals_fraction_is_clamped(processed: int, estimated: int, finished: int) -> None:
    """``FanOutTotals.fraction`` is in [0, 1] or None for any counts it is built with, as the
    CLI builds its own."""
    totals = ka.FanOutTotals(
        channels=3,
        submitted=3,
        completed=finished,
        failed=0,
        errored=0,
        processed_rows=processed,
        estimated_total_rows=estimated,
        rows_per_second=None,
        eta=None,
    )
    assert totals.fraction is None or 0.0 <= totals.fraction <= 1.0
