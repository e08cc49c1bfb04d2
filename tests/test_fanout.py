"""Fan-out over many channels against the emulator, with Knock's rate limits on.

The emulator and the client share a FastClock, so Knock's 5 POST/s is enforced and paced for
real over loopback while the emulated minute passes in a few real seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest

import knock_async as ka
from knock_async.testing import FastClock, KnockEmulator, ManualClock
from tests._support import FakeKnock, LoopClock, Reply, VirtualLoop, operation

KEY = "sk_test_fanout"
SPEED = 10.0


@pytest.fixture
def fast() -> FastClock:
    return FastClock(speed=SPEED)


@pytest.fixture
async def emu(fast: FastClock) -> AsyncIterator[KnockEmulator]:
    async with KnockEmulator(clock=fast, rows_per_second=2_000.0, strict=True) as emulator:
        yield emulator


def client(emu: KnockEmulator, fast: FastClock, **kwargs: object) -> ka.KnockClient:
    return ka.KnockClient(
        api_key=KEY,
        base_url=emu.base_url,
        clock=fast.monotonic,
        sleep=fast.sleep,
        **kwargs,  # type: ignore[arg-type]
    )


def channels(emu: KnockEmulator, count: int, messages: int = 20) -> list[str]:
    ids = []
    for i in range(count):
        channel_id = emu.add_channel(type="in_app_feed")
        emu.add_messages(channel_id, messages, seed=i)
        ids.append(channel_id)
    return ids


async def _200_channels() -> tuple[list[float], ka.FanOutSummary, KnockEmulator, list[str]]:
    loop = asyncio.get_running_loop()
    async with KnockEmulator(clock=LoopClock(loop), rows_per_second=2_000.0, strict=True) as emu:
        ids = channels(emu, 200, messages=5)
        async with ka.KnockClient(
            api_key=KEY, base_url=emu.base_url, clock=loop.time, sleep=asyncio.sleep
        ) as knock:
            fan = knock.channels.bulk.update_many(ids, "read", concurrency=20)
            start = loop.time()
            submitted_at: list[float] = []
            async for event in fan:
                if event.kind is ka.FanOutEventKind.SUBMITTED:
                    submitted_at.append(loop.time() - start)
            return submitted_at, await fan, emu, ids


def test_200_channels_at_the_post_limit_without_a_429() -> None:
    """200 channels fan out with zero 429s, submitted within 10% of the 40 s the limit sets
    (on a virtual-time loop, so that the machine's load cannot move the figures)."""
    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        submitted_at, summary, emu, ids = runner.run(_200_channels())
    floor = (200 - 1) / 5.0  # the first POST goes at once, then one every 0.2 s
    assert len(submitted_at) == 200
    assert floor * 0.9 <= max(submitted_at) <= floor * 1.1
    assert emu.stats.rate_limited == 0
    assert summary.ok
    assert len(summary.results) == 200
    assert all(m.read_at is not None for c in ids for m in emu.messages(c))


async def test_mixed_outcomes_are_each_reported(emu: KnockEmulator, fast: FastClock) -> None:
    """Good channels complete, an unknown channel is an error, a failing operation fails;
    none of them stops the others."""
    good = channels(emu, 3)
    failing = channels(emu, 1)[0]
    unknown = "00000000-0000-4000-8000-000000000000"
    emu.faults.fail_next_operation(after_rows=5, channel_id=failing)
    order = [good[0], unknown, failing, good[1], good[2]]
    async with client(emu, fast) as knock:
        fan = knock.channels.bulk.update_many(order, "archive")
        events = [event async for event in fan]
        summary = await fan
    assert [r.channel_id for r in summary.results] == order
    statuses = {r.channel_id: r.status for r in summary.results}
    assert statuses == {
        good[0]: "completed",
        unknown: "error",
        failing: "failed",
        good[1]: "completed",
        good[2]: "completed",
    }
    [error] = [e for e in events if e.kind is ka.FanOutEventKind.ERROR]
    assert isinstance(error.error, ka.NotFoundError)
    [failed] = [e for e in events if e.kind is ka.FanOutEventKind.FAILED]
    assert isinstance(failed.error, ka.BulkOperationFailedError)
    assert failed.progress is not None
    assert failed.progress.status == "failed"
    assert not summary.ok
    assert [r.channel_id for r in summary.by_status("completed")] == [good[0], good[1], good[2]]
    totals = summary.totals
    assert (totals.completed, totals.failed, totals.errored, totals.submitted) == (3, 1, 1, 4)


async def test_merged_progress_adds_up() -> None:
    """Totals on each event add up the operations; at the end they match the final counts.
    (On a ManualClock moved by the client's sleeps: a loaded machine cannot skip the progress
    on the way, as it could in a FastClock's real time.)"""
    async with KnockEmulator(clock=ManualClock(), rows_per_second=2_000.0, strict=True) as emu:
        ids = channels(emu, 4, messages=4000)
        async with emu.client(api_key=KEY) as knock:
            policy = ka.PollPolicy(initial_delay=0.05)
            fan = knock.channels.bulk.update_many(ids, "seen", policy=policy)
            events = [event async for event in fan]
            summary = await fan
    done = [r.operation for r in summary.results]
    assert all(op is not None for op in done)
    final = events[-1].totals
    assert final.processed_rows == sum(op.processed_rows for op in done if op is not None)
    assert final.fraction == 1.0
    assert final.finished == final.channels == 4
    fractions = [e.totals.fraction for e in events if e.totals.fraction is not None]
    assert fractions[-1] == 1.0
    progress = [e for e in events if e.kind is ka.FanOutEventKind.PROGRESS]
    assert progress, "operations at 2,000 rows/s over 4,000 rows report progress on the way"
    assert any(e.totals.rows_per_second for e in progress)


async def test_bounded_requests_in_flight(emu: KnockEmulator, fast: FastClock) -> None:
    """However many channels, the server never sees more than `concurrency` requests at once."""
    ids = channels(emu, 60, messages=2)
    # Every request takes a while, so that a scheduler over its bound would show at the server.
    emu.faults.add("*", "*", delay=0.01, after_handling=True, times=10_000)
    peak = 0
    async with client(emu, fast, rate_limits=None) as knock:
        fan = knock.channels.bulk.update_many(ids, "read", concurrency=4)
        async for _ in fan:
            peak = max(peak, emu.stats.peak_concurrent_requests)
        summary = await fan
    assert summary.ok
    assert 2 <= emu.stats.peak_concurrent_requests <= 4


async def test_cancelling_the_consumer_stops_everything(
    emu: KnockEmulator, fast: FastClock
) -> None:
    """Cancelling mid-fan-out leaves no task behind, sends nothing more, cancels nothing
    server-side, and every operation Knock started is in the summary with its handle."""
    ids = channels(emu, 30)
    async with client(emu, fast) as knock:
        fan = knock.channels.bulk.update_many(ids, "archive", concurrency=5)
        seen: list[ka.FanOutEvent] = []
        three_seen = asyncio.Event()

        async def consume() -> None:
            async for event in fan:
                seen.append(event)
                if len(seen) == 3:
                    three_seen.set()

        task = asyncio.create_task(consume())
        await three_seen.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        posts_at_stop = len(emu.operations())
        leftovers = [
            t
            for t in asyncio.all_tasks()
            if t is not asyncio.current_task()
            and not t.get_coro().__qualname__.startswith("RequestHandler.")  # type: ignore[union-attr]
        ]
        assert leftovers == []
        summary = await fan
        await fast.sleep(2.0)
    assert len(emu.operations()) == posts_at_stop < 30  # nothing sent after the stop
    started = {op.id for op in emu.operations()}
    known = {r.operation.id for r in summary.results if r.operation is not None}
    assert known == started  # no operation is left without a handle
    assert not summary.ok
    statuses = {r.status for r in summary.results}
    assert "pending" in statuses
    assert statuses <= {"pending", "running", "completed"}


async def test_aclose_from_another_task(emu: KnockEmulator, fast: FastClock) -> None:
    """aclose() while another task iterates stops the fan-out; the iterating task just ends."""
    ids = channels(emu, 20)
    async with client(emu, fast) as knock:
        fan = knock.channels.bulk.update_many(ids, "read", concurrency=3)
        first = asyncio.Event()

        async def consume() -> int:
            count = 0
            async for _ in fan:
                count += 1
                first.set()
            return count

        task = asyncio.create_task(consume())
        await first.wait()
        await fan.aclose()
        assert await task >= 1
        summary = await fan
    assert len([r for r in summary.results if r.status == "pending"]) > 0


async def test_totals_after_aclose_count_every_channel(emu: KnockEmulator, fast: FastClock) -> None:
    """Closed while POSTs wait in the rate limiter (never sent), the summary's totals still
    cover every channel: submitted + unsubmitted + errored == channels, and the unsubmitted
    are the channels the summary calls pending."""
    ids = channels(emu, 20)
    async with client(emu, fast) as knock:
        fan = knock.channels.bulk.update_many(ids, "seen", concurrency=10)
        async for event in fan:
            if event.totals.submitted == 3:
                break
        await fan.aclose()
        summary = await fan
    totals = summary.totals
    assert totals.channels == 20
    assert totals.submitted + totals.unsubmitted + totals.errored == 20, totals
    assert totals.unsubmitted == len(summary.by_status("pending")) > 0
    assert totals.submitted == len(emu.operations())


async def test_totals_finish_at_100_percent_when_a_channel_errors(
    emu: KnockEmulator, fast: FastClock
) -> None:
    """A channel whose follow gives up (here at its deadline: timed out, not errored) counts
    as done: the totals end at 100%, no ETA."""
    good, stuck = channels(emu, 2, messages=50)
    emu.faults.stick_next_operation(after_rows=10, channel_id=stuck)
    async with client(emu, fast) as knock:
        fan = knock.channels.bulk.update_many([good, stuck], "read", timeout=5.0)
        events = [event async for event in fan]
    final = events[-1].totals
    assert (final.completed, final.timed_out, final.errored) == (1, 1, 0)
    assert final.fraction == 1.0
    assert final.eta is None
    [error] = [e for e in events if e.kind is ka.FanOutEventKind.ERROR]
    assert isinstance(error.error, ka.PollTimeoutError)


async def test_handles_resume_in_another_client(emu: KnockEmulator, fast: FastClock) -> None:
    """An event's handle (JSON, no secret) lets another client follow the operation."""
    ids = channels(emu, 2)
    async with client(emu, fast) as knock:
        fan = knock.channels.bulk.update_many(ids, "unread")
        handles = []
        async for event in fan:
            if event.kind is ka.FanOutEventKind.SUBMITTED:
                assert event.handle is not None
                handles.append(event.handle.to_json())
                if len(handles) == 2:
                    break
        await fan.aclose()
    async with client(emu, fast) as worker:
        for text in handles:
            handle = ka.BulkOperationHandle.from_json(text)
            assert handle.channel_id in ids
            assert KEY not in text
            assert (await worker.bulk_operations.poll(handle)).status == "completed"


@pytest.mark.parametrize(
    ("ids", "kwargs", "error", "text"),
    [
        (["not-a-uuid"], {}, ValueError, r"channel_ids\[0\]: channel_id must be a UUID"),
        ("7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c11", {}, TypeError, "not a single string"),
        (
            ["7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c11"] * 2,
            {},
            ValueError,
            r"channel_ids\[1\]: .* is listed twice",
        ),
        (["7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c11"], {"concurrency": 0}, ValueError, "concurrency"),
        (["7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c11"], {"archived": "nope"}, ValueError, "archived"),
    ],
)
async def test_bad_input_before_any_request(
    emu: KnockEmulator,
    fast: FastClock,
    ids: list[str],
    kwargs: dict[str, object],
    error: type[Exception],
    text: str,
) -> None:
    """Bad channel ids, duplicates and bad filters fail before anything is sent."""
    async with client(emu, fast) as knock:
        with pytest.raises(error, match=text):
            knock.channels.bulk.update_many(ids, "read", **kwargs)  # type: ignore[arg-type]
    assert emu.requests == []


async def test_an_unpollable_answer_is_that_channels_error(
    fake_knock: FakeKnock, make_client: Callable[..., ka.KnockClient]
) -> None:
    """An operation the server names with an unusable id fails its own channel only."""
    body = operation(id="weird/id")
    del body["progress_path"]
    fake_knock.reply("POST", Reply(body=body))
    first, second = "7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c11", "7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c12"
    async with make_client() as knock:
        summary = await knock.channels.bulk.update_many([first, second], "read")
    assert [r.status for r in summary.results] == ["error", "completed"]
    error = summary.results[0].error
    assert isinstance(error, ka.ResponseValidationError)
    assert "cannot be polled" in str(error)


# -- what a server says that makes no sense --------------------------------------------------

CHANNELS = [f"7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c{n:02d}" for n in range(11, 14)]


def _in_range(totals: ka.FanOutTotals) -> None:
    assert 0 <= totals.processed_rows <= totals.estimated_total_rows or (
        totals.estimated_total_rows == 0 and totals.processed_rows == 0
    )
    assert totals.fraction is None or 0.0 <= totals.fraction <= 1.0
    assert totals.rows_per_second is None or totals.rows_per_second >= 0
    assert totals.eta is None or totals.eta.total_seconds() >= 0


async def test_nonsense_snapshots_never_end_a_channel(
    fake_knock: FakeKnock, make_client: Callable[..., ka.KnockClient]
) -> None:
    """Negative counts and rows past the estimate are data in a fan-out too: every channel is
    followed to completed, and the totals after every event stay sane (rows done between 0 and
    the rows estimated, a fraction in [0, 1], a non-negative rate and ETA)."""
    fake_knock.progress_of(
        {"status": "processing", "processed_rows": -50, "estimated_total_rows": -100},
        {"status": "processing", "processed_rows": 900, "estimated_total_rows": 10},
        {"status": "processing", "processed_rows": -(2**63), "estimated_total_rows": 2**63 - 1},
        {"status": "processing", "processed_rows": 5, "success_count": 70, "error_count": 90},
        {"status": "completed", "processed_rows": -3, "estimated_total_rows": -3},
    )
    async with make_client() as knock:
        fan = knock.channels.bulk.update_many(CHANNELS, "read", concurrency=1)
        events = [event async for event in fan]
        summary = await fan
    assert summary.ok, [r.status for r in summary.results]
    for event in events:
        _in_range(event.totals)
    _in_range(summary.totals)
    assert summary.totals.fraction == 1.0


async def test_an_unreadable_200_is_ridden_out_in_a_fan_out(
    fake_knock: FakeKnock, make_client: Callable[..., ka.KnockClient]
) -> None:
    """A poll answered 200 with a body cut short is transient for the fan-out's channel as for
    a poller: it is asked again, and the channel completes."""
    body = json.dumps(operation(status="processing", processed_rows=1)).encode()
    fake_knock.reply("GET", Reply(raw=body[:40]), Reply(raw=b"not json"))
    async with make_client() as knock:
        summary = await knock.channels.bulk.update_many(CHANNELS[:1], "read")
    assert summary.ok, summary.results[0].error
    assert len([r for r in fake_knock.requests if r.method == "GET"]) == 3
