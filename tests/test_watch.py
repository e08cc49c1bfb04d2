"""Progress a person can watch: whole-run totals, heartbeats, deadlines that follow progress,
and ``follow_many``, against the emulator on loopback in emulated time (issue 22's checks)."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

import knock_async as ka
from knock_async._convert import structure_operation
from knock_async._fanout import FanOutEventKind, post_rate, run_totals
from knock_async._models import BulkOperation
from knock_async._progress import RowTally
from knock_async.testing import FastClock, KnockEmulator, ManualClock
from tests._support import operation as wire_operation

KEY = "sk_test_watch"


def operation(**changes: object) -> BulkOperation:
    return structure_operation(wire_operation(**changes))


def _channel(emu: KnockEmulator, messages: int) -> str:
    channel_id = emu.add_channel(type="in_app_feed")
    emu.add_messages(channel_id, messages, seed=1)
    return channel_id


# -- 1. totals for the whole run ---------------------------------------------------------------


async def test_a_quarter_submitted_reads_about_a_quarter() -> None:
    """With 10 of 40 channels submitted, the fraction is at most 0.25 + 0.1, and every ETA
    while channels are unsent covers submitting them at 5 POST/s."""
    fast = FastClock(speed=20)
    async with KnockEmulator(clock=fast, rows_per_second=100.0, batch_size=20) as emu:
        ids = [_channel(emu, 200) for _ in range(40)]
        async with ka.KnockClient(
            api_key=KEY, base_url=emu.base_url, clock=fast.monotonic, sleep=fast.sleep
        ) as knock:
            fan = knock.channels.bulk.update_many(ids, "read")
            quarter, etas = [], []
            async for event in fan:
                totals = event.totals
                assert totals.submitted + totals.unsubmitted + totals.errored == 40
                if totals.submitted == 10:
                    quarter.append(totals.fraction)
                if totals.unsubmitted and totals.eta is not None:
                    etas.append((totals.eta, totals.unsubmitted))
            summary = await fan
    assert summary.outcome is ka.Outcome.COMPLETED
    assert quarter
    assert all(f is not None and f <= 0.25 + 0.1 for f in quarter), quarter
    assert etas  # rows were processed while channels were still unsent
    assert all(eta >= timedelta(seconds=unsent / 5.0) for eta, unsent in etas), etas


def test_totals_count_unsent_channels_at_the_average_estimate() -> None:
    """Unsent channels count at the average estimate of those seen; the ETA is at least the
    time to submit them at the POST rate."""
    rows = RowTally()
    rows.update(
        "a", operation(status="processing", processed_rows=50, estimated_total_rows=100), over=False
    )
    counts = dict.fromkeys(FanOutEventKind, 0)
    totals = run_totals(
        counts, channels=4, submitted=1, unsubmitted=3, rows=rows, elapsed=10.0, post_per_second=0.1
    )
    assert totals.estimated_unsubmitted_rows == 300
    assert totals.fraction == pytest.approx(50 / 400)
    # Rows: 350 left at 5 rows/s is 70 s; submitting 3 at 0.1/s is 30 s: the later wins.
    assert totals.eta == timedelta(seconds=70)
    slow_posts = run_totals(
        counts,
        channels=4,
        submitted=1,
        unsubmitted=3,
        rows=rows,
        elapsed=10.0,
        post_per_second=0.01,
    )
    assert slow_posts.eta == timedelta(seconds=300)


def test_before_any_estimate_the_fraction_counts_channels() -> None:
    """Until an operation gives rows to go by, the fraction is the share of channels finished."""
    counts = dict.fromkeys(FanOutEventKind, 0)
    counts[FanOutEventKind.ERROR] = 1
    totals = run_totals(
        counts, channels=4, submitted=0, unsubmitted=3, rows=RowTally(), elapsed=1.0,
        post_per_second=5.0,
    )  # fmt: skip
    assert totals.fraction == 0.25
    assert totals.eta is None  # no rate to go by yet


@given(
    st.lists(st.tuples(st.integers(-10, 10**6), st.integers(-10, 10**6)), max_size=5),
    st.integers(0, 50),
    st.integers(0, 5),
    st.booleans(),
)
def test_whole_run_fraction_stays_in_range(
    snapshots: list[tuple[int, int]], unsent: int, finished: int, baseline: bool
) -> None:
    """Whatever the operations report (a key seen again may go backwards), the whole run's
    fraction is in [0, 1] and its rate and ETA non-negative, with baselines or without."""
    rows = RowTally(baseline=baseline)
    for index, (done, estimate) in enumerate(snapshots):
        snapshot = operation(
            status="processing", processed_rows=done, estimated_total_rows=estimate
        )
        rows.update(str(index % 3), snapshot, over=False)
    counts = dict.fromkeys(FanOutEventKind, 0)
    counts[FanOutEventKind.COMPLETED] = min(finished, len(snapshots))
    channels = len(snapshots) + unsent
    totals = run_totals(
        counts, channels=channels, submitted=len(snapshots), unsubmitted=unsent, rows=rows,
        elapsed=1.0, post_per_second=5.0,
    )  # fmt: skip
    fraction = totals.fraction
    assert fraction is not None
    assert 0.0 <= fraction <= 1.0
    assert totals.rows_per_second is None or totals.rows_per_second > 0
    assert totals.eta is None or totals.eta >= timedelta(0)


async def _follow_later(
    rows: int, after: float, *, fetched: bool = False, started: bool = False, age: float = 0.0
) -> tuple[list[ka.FanOutEvent], ka.FanOutSummary]:
    """``follow_many``'s events and summary over an operation of ``rows`` rows (at 1,000
    rows/s) started ``after`` seconds before following began, given by its id or, with
    ``fetched``, as fetched ``age`` seconds before, or with ``started``, as its starter
    returned it."""
    clock = ManualClock()
    async with KnockEmulator(clock=clock, rows_per_second=1_000.0, batch_size=100) as emu:
        channel_id = _channel(emu, rows)
        async with emu.client() as knock:
            op = await knock.channels.bulk.update_message_status(channel_id, "read")
            clock.advance(after)
            target: ka.BulkOperation | str = op if started else op.id
            if fetched:
                target = await knock.bulk_operations.get(op.id)
                clock.advance(age)
            fan = knock.bulk_operations.follow_many([target])
            return [e async for e in fan], await fan


async def test_follow_many_rate_counts_only_rows_done_while_watching() -> None:
    """Following an operation already 4,000 rows into 20,000 (at 1,000 rows/s): the first
    event's totals have no rate and no ETA (nothing was watched yet), later ones the
    operation's own rate and ETA, not the rows done before following over the time since."""
    events, _ = await _follow_later(20_000, 4.0)
    first = events[0]
    assert first.progress is not None
    assert first.progress.operation.processed_rows >= 3_000
    assert (first.totals.rows_per_second, first.totals.eta) == (None, None)
    running = [e for e in events[1:] if e.kind is ka.FanOutEventKind.PROGRESS]
    assert running, "the operation reports progress on the way"
    for event in running:
        assert event.progress is not None
        own_rate, own_eta = event.progress.rows_per_second, event.progress.eta
        assert own_rate is not None
        assert own_eta is not None
        assert event.totals.rows_per_second == pytest.approx(own_rate, rel=1e-6)
        assert event.totals.eta is not None
        assert event.totals.eta.total_seconds() == pytest.approx(own_eta.total_seconds(), rel=1e-6)
    last = events[-1]
    assert last.kind is ka.FanOutEventKind.COMPLETED
    assert last.totals.rows_per_second == pytest.approx(1_000.0, rel=0.1)


@pytest.mark.parametrize("fetched", [False, True])
async def test_follow_many_of_a_given_snapshot_times_from_its_first_fetch(fetched: bool) -> None:
    """An operation given as a snapshot of unknown age (as its starter returned it, 0 rows,
    followed 4 s later; or as fetched 3 s before following): the rows done before this run's
    first GET are not divided by the time since, so the totals' rate is the operation's
    1,000 rows/s, not several times that, and the ETA is not short."""
    events, summary = await _follow_later(
        20_000, 4.0, fetched=fetched, started=not fetched, age=3.0
    )
    assert summary.outcome is ka.Outcome.COMPLETED
    assert (events[0].totals.rows_per_second, events[0].totals.eta) == (None, None)
    rates = [e.totals.rows_per_second for e in events[1:] if e.totals.rows_per_second]
    assert rates, "a rate once rows were done while watched"
    assert all(rate == pytest.approx(1_000.0, rel=0.15) for rate in rates), rates


@pytest.mark.parametrize("fetched", [False, True])
async def test_follow_many_of_a_finished_operation_has_no_rate(fetched: bool) -> None:
    """A completed operation followed afterwards (by id, or as fetched) did nothing while
    watched: no rate, no ETA (not its whole row count over the time the follow took)."""
    _, summary = await _follow_later(2_000, 10.0, fetched=fetched)
    assert summary.outcome is ka.Outcome.COMPLETED
    assert summary.totals.processed_rows == 2_000
    assert (summary.totals.rows_per_second, summary.totals.eta) == (None, None)


def test_one_operation_going_back_does_not_cancel_the_others_progress() -> None:
    """With baselines, an operation whose rows drop below its first snapshot (a server's odd
    answer) lowers its own baseline: another operation's 3,000 rows in 10 s still read
    300 rows/s (they read 200, or no rate at all, when the drop was subtracted)."""
    rows = RowTally(baseline=True)

    def see(key: str, done: int) -> None:
        op = operation(status="processing", processed_rows=done, estimated_total_rows=50_000)
        rows.update(key, op, over=False)

    see("a", 5_000)
    see("b", 0)
    for dropped_to in (4_000, 1_000):
        see("a", dropped_to)
        see("b", 3_000)
        totals = run_totals(
            dict.fromkeys(FanOutEventKind, 0), channels=2, submitted=2, unsubmitted=0,
            rows=rows, elapsed=10.0, post_per_second=None,
        )  # fmt: skip
        assert totals.rows_per_second == pytest.approx(300.0)


def test_rows_seen_before_watching_are_not_this_runs_rate() -> None:
    """With baselines (operations the run did not start), the rate counts only the rows each
    operation did after its first snapshot; the fraction and rows left count them all."""
    rows = RowTally(baseline=True)
    rows.update(
        "a", operation(status="processing", processed_rows=400, estimated_total_rows=1000),
        over=False,
    )  # fmt: skip
    counts = dict.fromkeys(FanOutEventKind, 0)

    def totals(elapsed: float) -> ka.FanOutTotals:
        return run_totals(
            counts, channels=2, submitted=2, unsubmitted=0, rows=rows, elapsed=elapsed,
            post_per_second=None,
        )  # fmt: skip

    assert (totals(0.0).rows_per_second, totals(0.0).eta) == (None, None)
    assert (totals(5.0).rows_per_second, totals(5.0).eta) == (None, None)
    rows.update(
        "b", operation(status="processing", processed_rows=100, estimated_total_rows=1000),
        over=False,
    )  # fmt: skip
    rows.update(
        "a", operation(status="processing", processed_rows=600, estimated_total_rows=1000),
        over=False,
    )  # fmt: skip
    later = totals(2.0)
    assert later.processed_rows == 700
    assert later.fraction == pytest.approx(700 / 2000)
    assert later.rows_per_second == pytest.approx(200 / 2.0)
    assert later.eta == timedelta(seconds=1300 / 100)


def test_operations_the_run_started_count_from_zero() -> None:
    """Without baselines (update_many, the _all methods) every row processed is this run's."""
    rows = RowTally()
    rows.update(
        "a", operation(status="processing", processed_rows=400, estimated_total_rows=1000),
        over=False,
    )  # fmt: skip
    totals = run_totals(
        dict.fromkeys(FanOutEventKind, 0), channels=1, submitted=1, unsubmitted=0, rows=rows,
        elapsed=2.0, post_per_second=None,
    )  # fmt: skip
    assert totals.rows_per_second == 200.0
    assert totals.eta == timedelta(seconds=3)


def test_post_rate_is_the_limiters() -> None:
    """The submit ETA uses the POST rate of the client's limiter, none without one."""
    limiter = ka.AdaptiveRateLimiter(ka.RateLimits(post_per_second=2.5))
    assert post_rate(limiter) == 2.5
    assert post_rate(None) is None


# -- 3. heartbeats -----------------------------------------------------------------------------


async def test_max_silence_over_a_ten_minute_operation() -> None:
    """poll(max_silence=5) never leaves a gap over 5 s; heartbeats repeat the latest snapshot
    and are marked, and no request is made for them."""
    clock = ManualClock()
    async with KnockEmulator(clock=clock, rows_per_second=10.0, batch_size=100) as emu:
        channel_id = _channel(emu, 6000)
        async with emu.client() as knock:
            op = await knock.channels.bulk.update_message_status(channel_id, "read")
            start = clock.monotonic()
            times, beats = [start], 0
            changes: list[ka.Progress] = []
            gets_before = len(emu.requests)
            async for progress in knock.bulk_operations.poll(op, max_silence=5):
                times.append(clock.monotonic())
                if progress.heartbeat:
                    beats += 1
                    assert progress == changes[-1] or progress.operation == changes[-1].operation
                else:
                    changes.append(progress)
            gets = len(emu.requests) - gets_before
    assert clock.monotonic() - start >= 600
    assert max(b - a for a, b in itertools.pairwise(times)) <= 5.0 + 1e-6
    assert changes[-1].status is ka.BulkOperationStatus.COMPLETED
    assert not changes[-1].heartbeat
    assert beats > 100
    assert gets < beats  # heartbeats cost no request


async def test_heartbeats_in_a_merged_stream() -> None:
    """follow_many(max_silence=...) yields heartbeat events (fresh totals, the latest
    operation) so that the stream is never quiet longer than that."""
    clock = ManualClock()
    async with KnockEmulator(clock=clock, rows_per_second=5.0, batch_size=100) as emu:
        ids = [_channel(emu, 500) for _ in range(2)]
        async with emu.client() as knock:
            ops = [await knock.channels.bulk.update_message_status(c, "read") for c in ids]
            start = clock.monotonic()
            times = [start]
            kinds = []
            async for event in knock.bulk_operations.follow_many(ops, max_silence=3):
                times.append(clock.monotonic())
                kinds.append(event.kind)
                if event.kind is ka.FanOutEventKind.HEARTBEAT:
                    assert event.progress is not None
                    assert event.progress.heartbeat
                    assert event.operation_id in {op.id for op in ops}
    assert max(b - a for a, b in itertools.pairwise(times)) <= 3.0 + 1e-6
    assert kinds.count(ka.FanOutEventKind.HEARTBEAT) > 10
    assert kinds.count(ka.FanOutEventKind.COMPLETED) == 2


# -- 4. deadlines that follow progress ---------------------------------------------------------


async def test_defaults_follow_a_two_and_a_half_hour_operation() -> None:
    """poll() with its defaults follows a steady 2.5-hour operation to completed."""
    clock = ManualClock()
    async with KnockEmulator(clock=clock, rows_per_second=1.0, batch_size=100) as emu:
        channel_id = _channel(emu, 9000)
        async with emu.client() as knock:
            op = await knock.channels.bulk.update_message_status(channel_id, "read")
            start = clock.monotonic()
            final = await knock.bulk_operations.poll(op)
    assert final.status is ka.BulkOperationStatus.COMPLETED
    assert final.processed_rows == 9000
    assert clock.monotonic() - start >= 9000


async def test_a_stuck_operation_stalls_within_the_stall_timeout() -> None:
    """stall_timeout=120 gives up on a stuck operation about 120 s after its last change,
    with a PollTimeoutError saying "stalled" that carries the last snapshot."""
    clock = ManualClock()
    async with KnockEmulator(clock=clock, rows_per_second=10.0, batch_size=10) as emu:
        channel_id = _channel(emu, 1000)
        emu.faults.stick_next_operation(after_rows=200)
        async with emu.client() as knock:
            op = await knock.channels.bulk.update_message_status(channel_id, "read")
            changed_at = clock.monotonic()
            poller = knock.bulk_operations.poll(op, stall_timeout=120)
            rows = []

            async def follow() -> None:
                nonlocal changed_at
                async for progress in poller:
                    changed_at = clock.monotonic()
                    rows.append(progress.operation.processed_rows)

            with pytest.raises(ka.PollTimeoutError, match="stalled") as caught:
                await follow()
            ended_at = clock.monotonic()
    assert max(rows) == 200
    assert caught.value.progress is not None
    assert caught.value.progress.operation.processed_rows == 200
    assert caught.value.operation_id == op.id
    assert caught.value.stalled_for == 120
    # The last change was seen at most one poll after it happened; the stall ends at 120 s.
    assert 120 - 1e-6 <= ended_at - changed_at <= 121


async def test_the_default_stall_timeout_notices_within_minutes() -> None:
    """With the defaults, a stuck operation ends the poll within ten minutes of its last
    change, with no total deadline involved."""
    clock = ManualClock()
    async with KnockEmulator(clock=clock, rows_per_second=10.0, batch_size=10) as emu:
        channel_id = _channel(emu, 100)
        emu.faults.stick_next_operation(after_rows=50)
        async with emu.client() as knock:
            op = await knock.channels.bulk.update_message_status(channel_id, "read")
            start = clock.monotonic()
            with pytest.raises(ka.PollTimeoutError, match="stalled"):
                await knock.bulk_operations.poll(op)
    assert clock.monotonic() - start <= 600 + 10


# -- 2. follow_many ----------------------------------------------------------------------------


async def test_follow_many_over_an_operation_an_id_and_a_handle() -> None:
    """follow_many completes an operation, an id and a handle; events and results name their
    operation, and the summary's outcome is completed."""
    clock = ManualClock()
    async with KnockEmulator(clock=clock, rows_per_second=100.0, batch_size=50) as emu:
        ids = [_channel(emu, 300) for _ in range(3)]
        async with emu.client() as knock:
            ops = [await knock.channels.bulk.update_message_status(c, "archive") for c in ids]
            targets: list[ka.BulkOperation | str | ka.BulkOperationHandle]
            targets = [ops[0], ops[1].id, ops[2].handle]
            fan = knock.bulk_operations.follow_many(targets, concurrency=2)
            events = [event async for event in fan]
            summary = await fan
    assert summary.outcome is ka.Outcome.COMPLETED
    assert [r.operation_id for r in summary.results] == [op.id for op in ops]
    assert all(r.outcome is ka.Outcome.COMPLETED for r in summary.results)
    assert [r.status for r in summary.results] == ["completed"] * 3
    # A bare id knows no channel; an operation and a handle do.
    assert [r.channel_id for r in summary.results] == [ids[0], None, ids[2]]
    assert summary.totals.channels == 3
    assert summary.totals.completed == 3
    assert summary.totals.fraction == 1.0
    completed = [e for e in events if e.kind is ka.FanOutEventKind.COMPLETED]
    assert sorted(e.operation_id or "" for e in completed) == sorted(op.id for op in ops)
    assert all(e.progress is not None for e in completed)


async def test_follow_many_reports_each_outcome() -> None:
    """A failed operation, an unknown id and a stalled one each get their outcome, the
    others complete; the summary's outcome is the worst (error); the totals count the
    stalled one as timed out, apart from the error."""
    clock = ManualClock()
    async with KnockEmulator(clock=clock, rows_per_second=100.0, batch_size=10) as emu:
        ids = [_channel(emu, 100) for _ in range(3)]
        async with emu.client() as knock:
            emu.faults.fail_next_operation(after_rows=20, channel_id=ids[1])
            emu.faults.stick_next_operation(after_rows=20, channel_id=ids[2])
            ops = [await knock.channels.bulk.update_message_status(c, "read") for c in ids]
            missing = "00000000-0000-4000-8000-000000000000"
            summary = await knock.bulk_operations.follow_many([*ops, missing], stall_timeout=60)
    outcomes = [r.outcome for r in summary.results]
    assert outcomes == [
        ka.Outcome.COMPLETED,
        ka.Outcome.FAILED,
        ka.Outcome.TIMED_OUT,
        ka.Outcome.ERROR,
    ], [repr(r.error) for r in summary.results]
    assert isinstance(summary.results[3].error, ka.NotFoundError)
    assert summary.results[3].operation_id == missing
    assert summary.outcome is ka.Outcome.ERROR
    totals = summary.totals  # the stalled one is timed out, not errored
    assert (totals.completed, totals.failed, totals.timed_out, totals.errored) == (1, 1, 1, 1)
    assert totals.finished == 4


def test_follow_many_checks_its_targets_first() -> None:
    """A bad target or an operation listed twice is refused before any request, naming its
    place in the list."""
    knock = ka.KnockClient(api_key=KEY, base_url="http://127.0.0.1:9")
    op = operation()
    with pytest.raises(ValueError, match=r"targets\[1\]: .* listed twice"):
        knock.bulk_operations.follow_many([op, op.id])
    with pytest.raises(TypeError, match=r"targets\[0\]: follow_many\(\) takes"):
        knock.bulk_operations.follow_many([42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not a single string"):
        knock.bulk_operations.follow_many(op.id)
    with pytest.raises(ValueError, match="max_silence"):
        knock.bulk_operations.follow_many([op], max_silence=0)
    with pytest.raises(ValueError, match="stall_timeout"):
        knock.bulk_operations.poll(op, stall_timeout=-1.0)
    with pytest.raises(ValueError, match="max_silence"):
        knock.bulk_operations.poll(op, max_silence=math.nan)


def test_summary_outcome_is_the_worst() -> None:
    """The summary's outcome ranks error > failed > timed_out > running > pending >
    completed; no results is completed."""
    done = operation(status="completed", processed_rows=1, success_count=1)
    running = operation(status="processing")
    timeout = ka.PollTimeoutError("late", progress=None, operation_id="x")
    completed = ka.ChannelResult(channel_id="a", operation=done, error=None)
    pending = ka.ChannelResult(channel_id="b", operation=None, error=None)
    stopped = ka.ChannelResult(channel_id="c", operation=running, error=None)
    late = ka.ChannelResult(channel_id="d", operation=running, error=timeout)
    totals = run_totals(
        dict.fromkeys(FanOutEventKind, 0), channels=0, submitted=0, unsubmitted=0,
        rows=RowTally(), elapsed=None, post_per_second=None,
    )  # fmt: skip

    def outcome(*results: ka.ChannelResult) -> ka.Outcome:
        return ka.FanOutSummary(results=results, totals=totals).outcome

    assert outcome() is ka.Outcome.COMPLETED
    assert outcome(completed, pending) is ka.Outcome.PENDING
    assert outcome(pending, stopped, completed) is ka.Outcome.RUNNING
    assert outcome(stopped, late) is ka.Outcome.TIMED_OUT
    assert late.status == "error"  # what update_many users read keeps its meaning
