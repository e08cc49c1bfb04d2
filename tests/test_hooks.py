"""Instrumentation hooks: the event records, how they are delivered, and what a client reports
to them end to end against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import attrs
import pytest
from yarl import URL

import knock_async as ka
from knock_async._hooks import (
    Hook,
    HookEvent,
    PollErrorRiddenOut,
    PollObserved,
    RateLimitWait,
    RequestAnswered,
    RequestSent,
    RetryScheduled,
    emit,
    request_answered,
    request_sent,
)
from knock_async._requests import operation_request
from knock_async.testing import FastClock, KnockEmulator
from tests._hanging import Hanging, hanging_server
from tests._support import CHANNEL_ID, OPERATION_ID

RECORDS = [
    RequestSent,
    RequestAnswered,
    RetryScheduled,
    RateLimitWait,
    PollObserved,
    PollErrorRiddenOut,
]


def _answered() -> RequestAnswered:
    return RequestAnswered(
        method="GET",
        route="/v1/bulk_operations/{id}",
        server_address="127.0.0.1",
        server_port=8080,
        attempt=1,
        tier="get",
        status=200,
        duration=0.01,
        request_id="req_1",
        error_type=None,
    )


def test_emit_calls_every_hook_in_order() -> None:
    """Each hook gets the same record, in the order the hooks were given."""
    seen: list[tuple[str, HookEvent]] = []
    event = RateLimitWait(tier="post", seconds=0.2)
    emit([lambda e: seen.append(("a", e)), lambda e: seen.append(("b", e))], event)
    assert seen == [("a", event), ("b", event)]


def test_a_raising_hook_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hook that raises does not stop the next one; the failure is logged with its type."""
    seen: list[HookEvent] = []

    def broken(event: HookEvent) -> None:
        raise RuntimeError("dashboard down")

    with caplog.at_level(logging.ERROR, logger="knock_async"):
        emit([broken, seen.append], _answered())
    assert seen == [_answered()]
    (record,) = caplog.records
    assert "RequestAnswered" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_records_are_frozen() -> None:
    """Records are values: a hook cannot change what the next hook sees."""
    event = _answered()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.status = 500  # type: ignore[misc]


@pytest.mark.parametrize("record", RECORDS)
def test_records_hold_no_credentials_or_headers(record: type) -> None:
    """No record has a field that could carry the API key: no headers, URL, body or key."""
    names = {field.name for field in attrs.fields(record)}
    assert names, "every record has fields"
    forbidden = {"headers", "api_key", "key", "authorization", "url", "body", "token"}
    assert not names & forbidden


def test_records_from_a_request_name_its_route_not_its_ids() -> None:
    """A request's records carry the route template, host, port and tier, never the URL with
    its ids, nor the headers holding the key."""
    url = URL("https://api.knock.app/v1/bulk_operations/8d1c0c2e-1f7b-4c84-a5de-2b6e8c8d0f11")
    request = operation_request(url, {"Authorization": "Bearer sk_secret"})
    sent = request_sent(request, 2)
    assert sent == RequestSent(
        method="GET",
        route="/v1/bulk_operations/{id}",
        server_address="api.knock.app",
        server_port=443,
        attempt=2,
        tier="get",
    )
    ok = request_answered(sent, duration=0.1, status=200, request_id="r1")
    assert (ok.status, ok.error_type, ok.request_id, ok.attempt) == (200, None, "r1", 2)
    assert request_answered(sent, duration=0.1, status=503).error_type == "503"
    timeout = request_answered(sent, duration=5.0, failure="timeout")
    assert (timeout.status, timeout.error_type) == (None, "timeout")
    assert "sk_secret" not in repr([sent, ok, timeout])


# -- end to end, against the emulator ----------------------------------------------------------

FAST = FastClock(speed=20.0)
KEY = "sk_test_hooks_e2e"


def _client(emu: KnockEmulator, hooks: list[Hook], **options: Any) -> ka.KnockClient:
    return ka.KnockClient(
        api_key=KEY,
        base_url=emu.base_url,
        clock=FAST.monotonic,
        sleep=FAST.sleep,
        hooks=hooks,
        **options,
    )


async def _update_and_follow(
    emu: KnockEmulator, messages: int, *, seed: int
) -> tuple[ka.BulkOperation, list[HookEvent]]:
    """A bulk update of a channel of ``messages`` messages, followed to its end (checked
    ``completed``): the operation and every event the hooks saw."""
    channel = emu.add_channel(type="in_app_feed")
    emu.add_messages(channel, messages, seed=seed)
    events: list[HookEvent] = []
    async with _client(emu, [events.append]) as knock:
        op = await knock.channels.bulk.update_message_status(channel, "read")
        final = await knock.bulk_operations.poll(op)
    assert final.status == "completed"
    return op, events


@pytest.mark.knock_emulator(clock=FAST, rows_per_second=400.0, batch_size=50)
async def test_hooks_see_every_request_and_poll(knock_emulator: KnockEmulator) -> None:
    """A bulk update and its poll: each request is announced then answered (route template,
    status, request id, tier), each poll's observation is reported with the next poll's time,
    and the last one (the end) with none. No record holds the key."""
    emu = knock_emulator
    op, events = await _update_and_follow(emu, 1_000, seed=5)

    sent = [e for e in events if isinstance(e, RequestSent)]
    answered = [e for e in events if isinstance(e, RequestAnswered)]
    assert len(sent) == len(answered) == emu.stats.requests
    post = answered[0]
    assert (post.method, post.route, post.status, post.tier) == (
        "POST",
        "/v1/channels/{channel_id}/messages/bulk/{action}",
        200,
        "post",
    )
    assert post.server_address == "127.0.0.1"
    assert all(a.request_id for a in answered)
    gets = answered[1:]
    assert gets
    assert {(a.method, a.route, a.tier) for a in gets} == {
        ("GET", "/v1/bulk_operations/{id}", "get")
    }
    # Each answer follows its announcement.
    for a, s in zip(answered, sent, strict=True):
        assert events.index(s) < events.index(a)

    observed = [e for e in events if isinstance(e, PollObserved)]
    assert observed
    assert {o.operation_id for o in observed} == {op.id}
    assert observed[-1].status == "completed"
    assert observed[-1].fraction == 1.0
    assert observed[-1].next_poll_at is None
    assert all(o.next_poll_at is not None for o in observed[:-1])
    assert KEY not in repr(events)


@pytest.mark.knock_emulator(clock=FAST)
async def test_retries_are_reported(knock_emulator: KnockEmulator) -> None:
    """A POST answered 429 is retried, and the retry is reported with why and how long."""
    emu = knock_emulator
    channel = emu.add_channel(type="in_app_feed")
    emu.add_messages(channel, 10, seed=1)
    emu.faults.add("POST", "/v1/channels/{channel_id}/messages/bulk/{action}", status=429)
    events: list[HookEvent] = []
    async with _client(emu, [events.append]) as knock:
        await knock.channels.bulk.update_message_status(channel, "read")
    (retry,) = [e for e in events if isinstance(e, RetryScheduled)]
    assert (retry.method, retry.why, retry.attempt) == ("POST", "429", 1)
    assert retry.delay > 0
    statuses = [e.status for e in events if isinstance(e, RequestAnswered)]
    assert statuses == [429, 200]


async def test_rate_limiter_waits_are_reported(make_client: Callable[..., ka.KnockClient]) -> None:
    """Requests held back by the client's own limiter report the tier and how long: at one
    POST every 2 s, the first goes at once and each later one waits 2 s (virtual time)."""
    events: list[HookEvent] = []
    limits = ka.RateLimits(post_per_second=0.5)
    async with make_client(hooks=[events.append], rate_limits=limits) as knock:
        for _ in range(3):
            await knock.channels.bulk.update_message_status(CHANNEL_ID, "read")
    waits = [e for e in events if isinstance(e, RateLimitWait)]
    assert [(w.tier, w.seconds) for w in waits] == [("post", 2.0), ("post", 2.0)]


@pytest.mark.knock_emulator(clock=FAST)
async def test_a_raising_hook_never_breaks_the_request(
    knock_emulator: KnockEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that raises on every event is logged; the update and its poll still succeed,
    and the other hooks still see everything."""
    emu = knock_emulator
    channel = emu.add_channel(type="in_app_feed")
    emu.add_messages(channel, 20, seed=2)

    def broken(event: HookEvent) -> None:
        raise RuntimeError("exporter down")

    events: list[HookEvent] = []
    with caplog.at_level(logging.ERROR, logger="knock_async"):
        async with _client(emu, [broken, events.append]) as knock:
            op = await knock.channels.bulk.update_message_status(channel, "read")
            final = await knock.bulk_operations.poll(op)
    assert final.status == "completed"
    assert len(caplog.records) == len(events)
    assert KEY not in caplog.text


@pytest.mark.knock_emulator(clock=FAST, rows_per_second=500.0, batch_size=50)
async def test_fan_out_reports_each_operation(knock_emulator: KnockEmulator) -> None:
    """``update_many`` reports the observations of every operation it follows, each ending
    with no next poll."""
    emu = knock_emulator
    channels = [emu.add_channel(type="in_app_feed") for _ in range(3)]
    for channel in channels:
        emu.add_messages(channel, 200, seed=3)
    events: list[HookEvent] = []
    async with _client(emu, [events.append]) as knock:
        summary = await knock.channels.bulk.update_many(channels, "read")
    assert summary.ok
    assert len(summary.results) == 3
    observed = [e for e in events if isinstance(e, PollObserved)]
    finals = [o for o in observed if o.next_poll_at is None]
    assert len(finals) == 3
    assert {o.status for o in finals} == {"completed"}


@pytest.mark.knock_emulator(clock=FAST)
async def test_tries_without_an_answer_are_reported_too(knock_emulator: KnockEmulator) -> None:
    """A dropped connection and a body over ``max_response_bytes`` each end their try with a
    record: no status for the first, and the error type for both."""
    emu = knock_emulator
    channel = emu.add_channel(type="in_app_feed")
    route = "/v1/channels/{channel_id}/messages/bulk/{action}"
    emu.faults.add("POST", route, drop=True)
    emu.faults.add("POST", route, status=200, body=b"x" * 4096)
    events: list[HookEvent] = []
    async with _client(emu, [events.append], max_response_bytes=1024) as knock:
        with pytest.raises(ka.APIConnectionError):
            await knock.channels.bulk.update_message_status(channel, "read")
        with pytest.raises(ka.ResponseTooLargeError):
            await knock.channels.bulk.update_message_status(channel, "read")
    answered = [e for e in events if isinstance(e, RequestAnswered)]
    assert [(a.status, a.error_type) for a in answered] == [
        (None, "connection"),
        (200, "response_too_large"),
    ]
    assert len([e for e in events if isinstance(e, RequestSent)]) == 2


@pytest.mark.parametrize("hooks", [print, "print", [1]], ids=["a-bare-hook", "a-str", "an-int"])
def test_hooks_that_are_not_a_list_of_callables_are_refused(hooks: Any) -> None:
    """``hooks`` must be an iterable of callables; anything else is a TypeError naming it,
    before anything is sent."""
    with pytest.raises(TypeError, match="hooks must be"):
        ka.KnockClient(api_key=KEY, base_url="http://127.0.0.1:9", hooks=hooks)


async def _async_hook(event: HookEvent) -> None:
    """An async hook: the kind the client refuses."""


class _AsyncCallable:
    async def __call__(self, event: HookEvent) -> None:
        """An object whose ``__call__`` is a coroutine function."""


@pytest.mark.parametrize(
    "hook",
    [_async_hook, _AsyncCallable(), functools.partial(_async_hook)],
    ids=["a-coroutine-function", "an-async-call", "a-partial-of-one"],
)
def test_async_hooks_are_refused_saying_how_to_hand_work_to_a_task(hook: Any) -> None:
    """A coroutine function (or an object whose ``__call__`` is one) would only ever make a
    coroutine that nobody awaits: the client refuses it when built, saying hooks run inline
    and how to hand async work to a task."""
    with pytest.raises(TypeError, match="hooks must be synchronous") as caught:
        ka.KnockClient(api_key=KEY, base_url="http://127.0.0.1:9", hooks=[hook])
    message = str(caught.value)
    assert "run inline" in message
    assert "create_task" in message


@pytest.mark.knock_emulator(clock=FAST)
async def test_a_hook_returning_a_coroutine_is_closed_and_logged(
    knock_emulator: KnockEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A plain function that returns a coroutine slips past the check: each coroutine is
    closed (no "never awaited" warning, which this suite turns into an error) and an error
    names the hook; the request goes through."""
    channel = knock_emulator.add_channel(type="in_app_feed")

    def sneaky(event: HookEvent) -> Any:
        return _async_hook(event)

    with caplog.at_level(logging.ERROR, logger="knock_async"):
        async with _client(knock_emulator, [sneaky]) as knock:
            await knock.channels.bulk.update_message_status(channel, "read")
    assert caplog.records
    assert all("returned a coroutine" in r.getMessage() for r in caplog.records)


class _Around:
    """A hook whose context manager records when it is entered and how it is left, and
    whether the request's record came while it was open."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def __call__(self, event: HookEvent) -> contextlib.AbstractContextManager[None] | None:
        self.log.append(type(event).__name__)
        return self._around() if isinstance(event, RequestSent) else None

    @contextlib.contextmanager
    def _around(self) -> Iterator[None]:
        self.log.append("enter")
        try:
            yield
        except BaseException as exc:
            self.log.append(f"exit {type(exc).__name__}")
            raise
        self.log.append("exit")


@pytest.mark.knock_emulator(clock=FAST)
async def test_a_context_manager_returned_for_a_send_is_held_around_the_request(
    knock_emulator: KnockEmulator,
) -> None:
    """What a hook returns for ``RequestSent`` is entered before the request leaves and
    exited after its ``RequestAnswered`` record, a dropped connection included."""
    emu = knock_emulator
    channel = emu.add_channel(type="in_app_feed")
    emu.faults.add("POST", "/v1/channels/{channel_id}/messages/bulk/{action}", drop=True)
    around = _Around()
    async with _client(emu, [around], rate_limits=None) as knock:
        with pytest.raises(ka.APIConnectionError):
            await knock.channels.bulk.update_message_status(channel, "read")
        await knock.channels.bulk.update_message_status(channel, "read")
    one_try = ["RequestSent", "enter", "RequestAnswered", "exit"]
    assert around.log == one_try + one_try


@pytest.fixture
async def hanging() -> AsyncIterator[Hanging]:
    async with hanging_server() as server:
        yield server


async def test_a_cancelled_request_leaves_the_context_manager_with_the_cancellation(
    hanging: Hanging,
) -> None:
    """A request cancelled while it waits for its answer has no ``RequestAnswered``, but the
    hook's context manager is still exited, with the ``CancelledError``."""
    around = _Around()
    async with ka.KnockClient(api_key=KEY, base_url=hanging.url, hooks=[around]) as knock:
        task = asyncio.create_task(knock.bulk_operations.get(OPERATION_ID))
        await hanging.arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert around.log == ["RequestSent", "enter", "exit CancelledError"]


@pytest.mark.knock_emulator(clock=FAST, rows_per_second=400.0, batch_size=50)
async def test_poll_errors_ridden_out_are_reported(knock_emulator: KnockEmulator) -> None:
    """A poll answered 503 (then 503 again) does not end the follow: each error is reported
    with its type and how many came in a row, and the follow goes on to the end."""
    emu = knock_emulator
    emu.faults.add("GET", "/v1/bulk_operations/{id}", status=503, times=2)
    op, events = await _update_and_follow(emu, 500, seed=6)
    ridden = [e for e in events if isinstance(e, PollErrorRiddenOut)]
    assert ridden == [
        PollErrorRiddenOut(operation_id=op.id, error_type="503", consecutive=1),
        PollErrorRiddenOut(operation_id=op.id, error_type="503", consecutive=2),
    ]
