"""The poller against a scripted Knock on loopback, in virtual time."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestServer

import knock_async as ka
from knock_async._convert import structure_operation
from tests._support import (
    API_KEY,
    OPERATION_ID,
    FakeKnock,
    Reply,
    VirtualTime,
    knock_error,
    operation,
)

MakeClient = Callable[..., ka.KnockClient]
PROCESSING = {"status": "processing", "processed_rows": 250}
DONE = {"status": "completed", "processed_rows": 1000, "success_count": 1000}
QUEUED_OP = structure_operation(operation())


async def test_follows_to_completion(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """Snapshots come as the operation changes, the terminal one last; await gives the op."""
    fake_knock.progress_of(PROCESSING, {"status": "processing", "processed_rows": 500}, DONE)
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(QUEUED_OP, policy=ka.PollPolicy(eta=False))
        seen = [p async for p in poller]
        final = await poller
    assert [p.status for p in seen] == ["queued", "processing", "processing", "completed"]
    assert [p.operation.processed_rows for p in seen] == [0, 250, 500, 1000]
    assert final == seen[-1].operation
    assert final.status is ka.BulkOperationStatus.COMPLETED
    assert len(fake_knock.requests) == 3  # awaiting after iterating sends nothing more
    assert all(r.path == f"/v1/bulk_operations/{OPERATION_ID}" for r in fake_knock.requests)
    # First poll after about a second, then backing off by 1.5.
    assert vtime.sleeps == pytest.approx([1.0, 1.5, 2.25])
    assert seen[2].rows_per_second == pytest.approx(500 / 2.5)
    assert seen[2].eta == timedelta(seconds=500 / 200)
    assert seen[2].observed_at - seen[0].observed_at == timedelta(seconds=2.5)


async def test_await_without_iterating(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """Awaiting the poller alone runs the poll to the end and returns the final operation."""
    fake_knock.progress_of(PROCESSING, DONE)
    async with make_client() as knock:
        final = await knock.bulk_operations.poll(OPERATION_ID)
    assert final.processed_rows == 1000


async def test_only_changes_are_yielded(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """By default an unchanged poll yields nothing; yield_unchanged=True yields every poll."""
    fake_knock.progress_of(PROCESSING, PROCESSING, PROCESSING, DONE)
    async with make_client() as knock:
        changes = [p async for p in knock.bulk_operations.poll(OPERATION_ID)]
        fake_knock.progress_of(PROCESSING, PROCESSING, PROCESSING, DONE)
        every = [
            p
            async for p in knock.bulk_operations.poll(
                OPERATION_ID, policy=ka.PollPolicy(yield_unchanged=True)
            )
        ]
    assert [p.operation.processed_rows for p in changes] == [250, 1000]
    assert [p.operation.processed_rows for p in every] == [250, 250, 250, 1000]


async def test_terminal_operation_needs_no_request(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """Polling an operation already completed yields it once and sends nothing."""
    done = structure_operation(operation(**DONE))
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(done)
        assert [p.operation async for p in poller] == [done]
        assert await poller == done
    assert fake_knock.requests == []


async def test_503s_are_ridden_out(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """Transient errors while polling (503, 429, dropped connection) do not end the poll."""
    fake_knock.reply(
        "GET",
        Reply(503, knock_error(503, "unavailable")),
        Reply(503, knock_error(503, "unavailable")),
        Reply(429, knock_error(429, "rate_limited"), headers={"Retry-After": "4"}),
        Reply(drop=True),
        Reply(body=operation(**DONE)),
    )
    async with make_client() as knock:
        final = await knock.bulk_operations.poll(OPERATION_ID)
    assert final.status == "completed"
    assert len(fake_knock.requests) == 5
    assert vtime.sleeps[3] == 4.0  # the 429's Retry-After, within the hint bounds


async def test_error_budget_spent_raises_and_keeps_the_last_snapshot(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """Past the error budget the transient error is raised; the last snapshot is kept."""
    fake_knock.progress_of(PROCESSING)
    fake_knock.reply("GET", *[Reply(503, knock_error(503, "unavailable"))] * 4)
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(OPERATION_ID, policy=ka.PollPolicy(error_budget=2))
        with pytest.raises(ka.InternalServerError):
            await poller
    assert len(fake_knock.requests) == 4
    assert poller.last_progress is not None
    assert poller.last_progress.operation.processed_rows == 250


async def test_non_transient_error_ends_the_poll(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """A 404 or 401 while polling is not transient: raised at once."""
    fake_knock.reply("GET", Reply(404, knock_error(404, "resource_missing")))
    async with make_client() as knock:
        with pytest.raises(ka.NotFoundError):
            await knock.bulk_operations.poll(OPERATION_ID)
    assert len(fake_knock.requests) == 1


async def test_failed_operation(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """Iteration ends normally with the failed snapshot; await raises with what resumes it."""
    failed = {
        "status": "failed",
        "processed_rows": 300,
        "error_count": 1,
        "error_items": [{"id": "m1", "collection": "messages"}],
        "failed_at": "2024-05-22T12:00:09Z",
    }
    fake_knock.progress_of(PROCESSING, failed)
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(OPERATION_ID)
        seen = [p async for p in poller]
        with pytest.raises(ka.BulkOperationFailedError) as info:
            await poller
    assert seen[-1].status == "failed"
    error = info.value
    assert error.operation_id == OPERATION_ID
    assert error.progress is seen[-1]
    assert error.progress.operation.error_items == (ka.ErrorItem(id="m1", collection="messages"),)
    assert "failed" in str(error)


async def test_completed_with_errors_is_data(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """A completed operation with error_count > 0 is returned, not raised."""
    fake_knock.progress_of({**DONE, "error_count": 3, "success_count": 997})
    async with make_client() as knock:
        final = await knock.bulk_operations.poll(OPERATION_ID)
    assert final.error_count == 3


async def test_stuck_operation_hits_the_deadline_and_resumes(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """A stuck operation raises PollTimeoutError at the deadline; poll(id) resumes it."""
    fake_knock.progress_of(*[PROCESSING] * 50)
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(QUEUED_OP, timeout=60.0)
        start = vtime.now
        seen = []

        async def consume() -> None:
            async for progress in poller:
                seen.append(progress)

        with pytest.raises(ka.PollTimeoutError) as info:
            await consume()
        assert vtime.now - start == pytest.approx(60.0)  # the last poll lands on the deadline
        error = info.value
        assert error.operation_id == OPERATION_ID
        assert error.progress is not None
        assert error.progress.status == "processing"
        assert "resumes" in str(error)
        with pytest.raises(ka.PollTimeoutError):
            await poller  # the deadline has passed: awaiting again says so at once
        fake_knock.script["GET"].clear()
        fake_knock.progress_of(DONE)
        assert (await knock.bulk_operations.poll(error.operation_id)).status == "completed"
    assert [p.status for p in seen] == ["queued", "processing"]


async def test_no_deadline(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """timeout=None and stall_timeout=None poll for as long as it takes, the delay capped at
    max_delay."""
    fake_knock.progress_of(*[PROCESSING] * 130, DONE)
    async with make_client() as knock:
        final = await knock.bulk_operations.poll(OPERATION_ID, timeout=None, stall_timeout=None)
    assert final.status == "completed"
    assert max(vtime.sleeps) <= 30.0
    assert vtime.now - 1000.0 > 3600  # past the default deadline, still polling


async def test_unknown_status_keeps_polling(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """A status the spec does not list counts as not finished: polling goes on."""
    fake_knock.progress_of({"status": "paused"}, DONE)
    async with make_client() as knock:
        seen = [p async for p in knock.bulk_operations.poll(OPERATION_ID)]
    assert [p.status for p in seen] == ["paused", "completed"]
    assert not seen[0].is_terminal


@pytest.fixture
async def elsewhere() -> AsyncIterator[FakeKnock]:
    """A second server, standing for another origin."""
    fake = FakeKnock()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    fake.server = server
    try:
        yield fake
    finally:
        await server.close()


async def test_foreign_progress_path_never_gets_the_key(
    fake_knock: FakeKnock,
    elsewhere: FakeKnock,
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A progress_path on another origin is polled on the base URL; the other host sees nothing."""
    foreign = f"{elsewhere.base_url}/v1/bulk_operations/{OPERATION_ID}"
    op = structure_operation(operation(progress_path=foreign))
    fake_knock.progress_of(DONE, DONE)
    async with make_client() as knock:
        await knock.bulk_operations.poll(op)
        await knock.bulk_operations.poll(foreign)
    assert elsewhere.requests == []
    assert [r.path for r in fake_knock.requests] == [f"/v1/bulk_operations/{OPERATION_ID}"] * 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per origin, not per poll
    assert elsewhere.base_url in warnings[0].getMessage()
    assert API_KEY not in caplog.text


async def test_relative_progress_path_and_progress_targets(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """poll() takes a relative progress_path or a Progress as well as an op or an id."""
    fake_knock.progress_of(PROCESSING, DONE, DONE)
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(f"/v1/bulk_operations/{OPERATION_ID}")
        first = await anext(aiter(poller))
        assert first.status == "processing"
        assert (await knock.bulk_operations.poll(first)).status == "completed"
        with pytest.raises(TypeError, match="poll\\(\\) takes"):
            knock.bulk_operations.poll(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            knock.bulk_operations.poll(OPERATION_ID, timeout=-1)


async def test_break_and_resume(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """Leaving the loop early and awaiting later carries on from the same state."""
    fake_knock.progress_of(PROCESSING, DONE)
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(OPERATION_ID)
        async for progress in poller:
            assert progress.status == "processing"
            break
        assert (await poller).status == "completed"
    assert len(fake_knock.requests) == 2


async def test_cancellation_leaves_nothing_behind(fake_knock: FakeKnock) -> None:
    """Cancelling the consumer mid-request stops polling cleanly: no task, no open connection,
    no request to cancel the operation server-side; the poller can be resumed afterwards."""
    fake_knock.reply("GET", Reply(body=operation(**PROCESSING), delay=0.3))
    policy = ka.PollPolicy(initial_delay=0.001, max_delay=0.01)
    async with ka.KnockClient(api_key=API_KEY, base_url=fake_knock.base_url, poll=policy) as knock:
        poller = knock.bulk_operations.poll(OPERATION_ID)

        async def consume() -> list[ka.Progress]:
            return [p async for p in poller]

        task = asyncio.create_task(consume())
        await fake_knock.request_seen.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The only tasks left are the test server's own handlers.
        ours = [
            t
            for t in asyncio.all_tasks()
            if t is not asyncio.current_task()
            and not t.get_coro().__qualname__.startswith("RequestHandler.")  # type: ignore[union-attr]
        ]
        assert ours == []
        assert knock._session is not None
        connector = knock._session.connector
        assert connector is not None
        fake_knock.progress_of(DONE)
        assert (await poller).status == "completed"
    assert [r.method for r in fake_knock.requests] == ["GET", "GET"]
    assert connector.closed


async def test_base_url_path_prefix_is_kept_when_polling(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """Behind a gateway prefix, the POST and the polls of its progress_path keep the prefix."""
    fake_knock.progress_of(DONE)
    async with make_client(base_url=fake_knock.base_url + "/knock") as knock:
        op = await knock.channels.bulk.update_message_status(
            "7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c11", "read"
        )
        assert op.progress_path == f"/v1/bulk_operations/{OPERATION_ID}"
        await knock.bulk_operations.poll(op)
    assert [r.path.split("/")[1] for r in fake_knock.requests] == ["knock", "knock"]


async def test_resumed_poll_gets_a_fresh_error_budget(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """After the budget is spent and the poll is awaited again, it rides out errors anew."""
    fake_knock.reply("GET", *[Reply(503, knock_error(503, "unavailable"))] * 3)
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(OPERATION_ID, policy=ka.PollPolicy(error_budget=2))
        with pytest.raises(ka.InternalServerError):
            await poller
        fake_knock.reply("GET", *[Reply(503, knock_error(503, "unavailable"))] * 2)
        assert (await poller).status == "completed"
    assert len(fake_knock.requests) == 3 + 3


async def test_the_deadline_bounds_a_hanging_request(fake_knock: FakeKnock) -> None:
    """A poll request that hangs is cut at the deadline, not at the longer request timeout."""
    fake_knock.reply("GET", *[Reply(body=operation(**PROCESSING), delay=0.5)] * 3)
    policy = ka.PollPolicy(initial_delay=0.01, max_delay=0.01)
    async with ka.KnockClient(
        api_key=API_KEY, base_url=fake_knock.base_url, timeout=30.0, poll=policy
    ) as knock:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ka.PollTimeoutError):
            await knock.bulk_operations.poll(OPERATION_ID, timeout=0.2)
        assert loop.time() - started < 0.45  # well under the hanging server's 0.5 s


async def test_iterating_and_awaiting_at_once_is_a_clear_error(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """A second consumer of a Poller busy in another task gets an error that says what to do;
    the first consumer is not disturbed."""
    fake_knock.progress_of(PROCESSING, DONE)
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(OPERATION_ID)
        first = asyncio.ensure_future(poller)
        await fake_knock.request_seen.wait()
        with pytest.raises(RuntimeError, match="already being iterated or awaited"):
            await poller
        assert (await first).status == "completed"


# -- the public surface ---------------------------------------------------------------------


def test_the_poller_shows_nothing_of_the_follow_state() -> None:
    """``Poller``'s public names are exactly its surface: ``aclose``, ``handle``,
    ``last_progress`` and ``operation_id`` (iteration and ``await`` are dunders); nothing of the
    state machine it owns (``start``, ``resume``, ``outcome``, ``failed``, ...)."""
    names = {n for n in dir(ka.Poller) if not n.startswith("_")}
    assert names == {"aclose", "handle", "last_progress", "operation_id"}


async def test_handle_and_operation_id_name_the_operation(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """``handle`` resumes the operation from anywhere before any poll (from the id given, or the
    operation's own handle) and after (from the latest snapshot); ``operation_id`` is its id."""
    fake_knock.progress_of(DONE)
    async with make_client() as knock:
        by_id = knock.bulk_operations.poll(OPERATION_ID)
        assert by_id.operation_id == OPERATION_ID
        assert by_id.handle == ka.BulkOperationHandle(operation_id=OPERATION_ID)
        known = knock.bulk_operations.poll(QUEUED_OP)
        assert known.handle == QUEUED_OP.handle
        await by_id
        last = by_id.last_progress
        assert last is not None
        assert by_id.handle == last.handle
        assert by_id.handle.progress_path == last.operation.progress_path


async def test_aclose_ends_the_loop_and_a_later_loop_resumes(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """``aclose()`` ends an iteration left at a snapshot at once (its generator is closed, not
    left to the garbage collector), is idempotent, and keeps what was seen: awaiting the poller
    afterwards carries on from there with no request sent twice."""
    fake_knock.progress_of(PROCESSING, DONE)
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(OPERATION_ID)
        await poller.aclose()  # nothing started: nothing to do
        stream = aiter(poller)
        first = await anext(stream)
        assert first.status == "processing"
        await poller.aclose()
        await poller.aclose()
        with pytest.raises(StopAsyncIteration):
            await anext(stream)  # the closed iteration yields nothing more
        assert poller.last_progress == first
        assert (await poller).status == "completed"
        await poller.aclose()  # after the end too
    assert len(fake_knock.requests) == 2


async def test_aclose_while_another_task_iterates_is_a_clear_error(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """An iteration running in another task cannot be closed under it: ``aclose()`` says so,
    and the iteration goes on undisturbed."""
    fake_knock.reply("GET", Reply(body=operation(**DONE), delay=0.05))
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(OPERATION_ID)
        loop = asyncio.ensure_future(_collect(poller))
        await fake_knock.request_seen.wait()
        with pytest.raises(RuntimeError, match="already being iterated"):
            await poller.aclose()
        assert [p.status for p in await loop] == ["completed"]


async def _collect(poller: ka.Poller) -> list[ka.Progress]:
    return [p async for p in poller]


# -- what a server says that makes no sense --------------------------------------------------


async def test_an_unreadable_200_is_ridden_out_like_a_503(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """A poll answered 200 with a body cut short (or empty, or not JSON at all) is transient:
    the poller asks again within its error budget and follows the operation to the end."""
    body = json.dumps(operation(**PROCESSING)).encode()
    fake_knock.reply("GET", Reply(raw=body[: len(body) // 2]), Reply(raw=b""))
    fake_knock.progress_of(PROCESSING, DONE)
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(OPERATION_ID, policy=ka.PollPolicy(error_budget=2))
        seen = [p.status for p in [p async for p in poller]]
        assert (await poller).status == "completed"
    assert seen == ["processing", "completed"]
    assert len(fake_knock.requests) == 4


async def test_unreadable_200s_past_the_budget_end_the_poll(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """Past the error budget, the last unreadable body ends the poll with the
    ResponseValidationError it is, the last snapshot kept; well-formed JSON of the wrong shape
    ends it at once."""
    fake_knock.progress_of(PROCESSING)
    fake_knock.reply("GET", *(Reply(raw=b'{"id": "12') for _ in range(2)))
    fake_knock.reply("GET", Reply(body={"id": OPERATION_ID}))
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(OPERATION_ID, policy=ka.PollPolicy(error_budget=1))
        with pytest.raises(ka.ResponseValidationError, match="not valid JSON"):
            await poller
        assert poller.last_progress is not None
        with pytest.raises(ka.ResponseValidationError, match="not a valid BulkOperation"):
            await poller  # resumed: a fresh budget, but a wrong shape is never ridden out
    assert len(fake_knock.requests) == 4


NONSENSE = [
    {"status": "processing", "processed_rows": -5, "estimated_total_rows": -100},
    {"status": "processing", "processed_rows": 900, "estimated_total_rows": 10},
    {"status": "processing", "processed_rows": 3, "success_count": 50, "error_count": 70},
    {"status": "processing", "processed_rows": -(2**63), "estimated_total_rows": 2**63 - 1},
    {"status": "processing", "processed_rows": 2**63 - 1, "estimated_total_rows": -(2**63)},
]


async def test_nonsense_snapshots_never_end_a_poll(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """Negative counts, rows processed past the estimate, more successes and errors than rows:
    the server's numbers are data. The poll follows the operation to its end, and every
    snapshot's fraction stays in [0, 1] (or None), its rate and ETA non-negative (or None)."""
    fake_knock.progress_of(*NONSENSE, DONE)
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(OPERATION_ID, policy=ka.PollPolicy(eta=True))
        seen = [p async for p in poller]
        assert (await poller).status == "completed"
    assert len(seen) == len(NONSENSE) + 1
    for progress in seen:
        assert progress.fraction is None or 0.0 <= progress.fraction <= 1.0
        assert progress.rows_per_second is None or progress.rows_per_second >= 0
        assert progress.eta is None or progress.eta >= timedelta(0)
    assert seen[0].operation.processed_rows == -5
