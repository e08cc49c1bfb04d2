"""What users' production meets at the joins: absurd numbers, one channel's trouble in a
fan-out, secrets reachable from errors, answers about another operation, exits mid-way, and a
client used from two event loops."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, FunctionType, ModuleType, TracebackType
from typing import Any

import pytest

import knock_async as ka
from knock_async.testing import FastClock, KnockEmulator
from tests._support import API_KEY, CHANNEL_ID, OPERATION_ID, FakeKnock, Reply, operation

MakeClient = Callable[..., ka.KnockClient]
OTHER_CHANNELS = ["7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c12", "7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c13"]


# -- the object graph ---------------------------------------------------------------------


_LEAVES = (str, bytes, bytearray, int, float, bool, type(None), datetime, date, timedelta)
_OPAQUE = (type, ModuleType, FunctionType, FrameType, TracebackType)


def reachable(root: object) -> Iterator[object]:
    """Everything reachable from ``root`` through exception chains and args, attributes
    (``__dict__`` and slots), mappings and sequences. Tracebacks (frames hold any local
    variable of any caller) and code are not followed."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, _LEAVES):
            continue
        if isinstance(obj, BaseException):
            stack.extend((obj.__cause__, obj.__context__, *obj.args))
        if isinstance(obj, Mapping):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        stack.extend(getattr(obj, "__dict__", {}).values())
        for cls in type(obj).__mro__:
            for name in getattr(cls, "__slots__", ()):
                if isinstance(name, str) and hasattr(obj, name):
                    stack.append(getattr(obj, name))


def assert_no_secrets(root: object) -> None:
    """No string, bytes or header mapping reachable from ``root`` holds the key or headers."""
    for obj in reachable(root):
        if isinstance(obj, str):
            assert API_KEY not in obj
        elif isinstance(obj, bytes | bytearray):
            assert API_KEY.encode() not in obj
        elif isinstance(obj, Mapping):
            assert not any(str(k).lower() == "authorization" for k in obj), obj
        assert type(obj).__name__ != "RequestInfo", "aiohttp's RequestInfo holds the headers"


async def test_nothing_reachable_from_a_connection_error_holds_the_key(broken_http: str) -> None:
    """On a malformed HTTP answer the APIConnectionError keeps no aiohttp error in its
    __cause__ or __context__: nothing reachable from it holds the key or the headers."""
    async with ka.KnockClient(
        api_key=API_KEY, base_url=broken_http, retry=ka.RetryPolicy(attempts=1)
    ) as knock:
        with pytest.raises(ka.APIConnectionError) as info:
            await knock.bulk_operations.get(OPERATION_ID)
        assert info.value.__context__ is None
        assert_no_secrets(info.value)
        with pytest.raises(ka.KnockError) as polled:
            await knock.bulk_operations.poll(
                OPERATION_ID, policy=ka.PollPolicy(error_budget=0, initial_delay=0.01)
            )
        assert_no_secrets(polled.value)


async def test_nothing_reachable_from_fan_out_events_holds_the_key(broken_http: str) -> None:
    """A fan-out's events, results and summary over a broken server hold no key or headers."""
    async with ka.KnockClient(api_key=API_KEY, base_url=broken_http) as knock:
        fan = knock.channels.bulk.update_many([CHANNEL_ID, *OTHER_CHANNELS], "read")
        events = [event async for event in fan]
        summary = await fan
    assert [e.kind for e in events] == [ka.FanOutEventKind.ERROR] * 3
    assert_no_secrets(events)
    assert_no_secrets(summary)


# -- absurd numbers -------------------------------------------------------------------------


def huge_body(**changes: Any) -> bytes:
    """An operation whose processed_rows is 10**400 (valid JSON; no float can hold it)."""
    text = json.dumps(operation(**changes, processed_rows=123456789))
    return text.replace("123456789", "1" + "0" * 400).encode()


async def test_a_count_too_large_for_a_float_is_a_validation_error(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """processed_rows = 10**400 (or -2**63-1, below a signed 64-bit count) is a
    ResponseValidationError naming the field, never a bare OverflowError from the progress
    arithmetic."""
    fake_knock.reply(
        "GET",
        Reply(raw=huge_body(status="processing")),
        Reply(body=operation(status="processing", processed_rows=-(2**63) - 1)),
    )
    async with make_client() as knock:
        for _ in range(2):
            with pytest.raises(ka.ResponseValidationError, match="processed_rows") as info:
                await knock.bulk_operations.get(OPERATION_ID)
            assert "-2**63..2**63-1" in str(info.value)


async def test_one_absurd_answer_ends_only_its_channel(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """In update_many, one channel's absurd answer is that channel's error; the others go
    on and the summary lists every channel exactly once."""
    fake_knock.reply("GET", Reply(raw=huge_body(status="processing")))
    ids = [CHANNEL_ID, *OTHER_CHANNELS]
    async with make_client() as knock:
        fan = knock.channels.bulk.update_many(ids, "read", concurrency=1)
        events = [event async for event in fan]
        summary = await fan
    assert [r.channel_id for r in summary.results] == ids
    assert sorted(r.status for r in summary.results) == ["completed", "completed", "error"]
    (errored,) = summary.by_status("error")
    assert isinstance(errored.error, ka.ResponseValidationError)
    endings = [e for e in events if e.kind in ("completed", "failed", "error")]
    assert sorted(str(e.channel_id) for e in endings) == sorted(ids)


async def test_any_exception_on_one_channel_is_that_channels_error(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """Even an exception that is not a KnockError (here from the application's own rate
    limiter) becomes that channel's error event and result; the fan-out goes on."""

    class Flaky:
        def __init__(self) -> None:
            self.posts = 0

        async def acquire(self, tier: ka.Tier) -> None:
            if tier == ka.Tier.POST:
                self.posts += 1
                if self.posts == 2:
                    raise RuntimeError("the shared limiter's backend is down")

        def on_rate_limited(self, tier: ka.Tier, *, retry_after: float | None = None) -> None:
            pass

        def on_success(self, tier: ka.Tier) -> None:
            pass

    ids = [CHANNEL_ID, *OTHER_CHANNELS]
    async with make_client(rate_limits=Flaky()) as knock:
        fan = knock.channels.bulk.update_many(ids, "read", concurrency=1)
        events = [event async for event in fan]
        summary = await fan
    errors = [e for e in events if e.kind is ka.FanOutEventKind.ERROR]
    assert len(errors) == 1
    assert isinstance(errors[0].error, ka.KnockError)
    assert "RuntimeError: the shared limiter's backend is down" in str(errors[0].error)
    assert [r.channel_id for r in summary.results] == ids
    assert sorted(r.status for r in summary.results) == ["completed", "completed", "error"]


# -- following the operation it was given -------------------------------------------------


async def test_poll_refuses_an_answer_about_another_operation(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """poll(A) answered with operation B raises ResponseValidationError naming both ids,
    instead of reporting B as A's result; so does a progress_path of A that names B."""
    other = "99999999-e89b-12d3-a456-426614174999"
    fake_knock.reply("GET", Reply(body=operation(id=other, status="completed")))
    async with make_client() as knock:
        with pytest.raises(ka.ResponseValidationError) as info:
            await knock.bulk_operations.poll(OPERATION_ID)
        assert OPERATION_ID in str(info.value)
        assert other in str(info.value)
        a = ka.BulkOperationHandle(
            operation_id=OPERATION_ID, progress_path=f"/v1/bulk_operations/{other}"
        )
        fake_knock.reply("GET", Reply(body=operation(id=other, status="completed")))
        with pytest.raises(ka.ResponseValidationError, match=other):
            await knock.bulk_operations.poll(a)


@pytest.mark.parametrize("path", ["null", "bulk_operations/x", "", "ftp://h/v1/bulk_operations/x"])
async def test_a_progress_path_that_is_not_absolute_is_ignored(
    fake_knock: FakeKnock, make_client: MakeClient, path: str
) -> None:
    """A progress_path without a leading slash (or an http(s) origin) is not a path: the
    operation is polled by its id."""
    queued = ka.BulkOperationHandle(operation_id=OPERATION_ID, progress_path=path or None)
    async with make_client() as knock:
        final = await knock.bulk_operations.poll(queued)
    assert final.id == OPERATION_ID
    assert fake_knock.requests[-1].path == f"/v1/bulk_operations/{OPERATION_ID}"


# -- bad input ------------------------------------------------------------------------------


def deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["a"] = {}
        node = node["a"]
    return root


@pytest.mark.parametrize(
    ("trigger_data", "text"),
    [
        ({"score": float("nan")}, "trigger_data must be strict JSON"),
        ({"score": float("inf")}, "trigger_data must be strict JSON"),
        ('{"score": NaN}', "trigger_data must be strict JSON, got NaN"),
        ('{"score": -Infinity}', "trigger_data must be strict JSON, got -Infinity"),
        (deep(100_000), "trigger_data is nested more than 32 levels deep"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "trigger_data is nested more than"),
    ],
)
async def test_trigger_data_must_be_strict_shallow_json(
    fake_knock: FakeKnock, make_client: MakeClient, trigger_data: Any, text: str
) -> None:
    """NaN, infinities and absurd nesting in trigger_data are a ValueError naming it, before
    anything is sent (never text that is not JSON, never a RecursionError)."""
    async with make_client() as knock:
        with pytest.raises(ValueError, match=text):
            await knock.channels.bulk.update_message_status(
                CHANNEL_ID, "read", trigger_data=trigger_data
            )
    assert fake_knock.requests == []


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://alice:hunter2@example.com/?token=tok_SECRET",
        "https://alice:hunter2@example.com/v1?token=tok_SECRET",
        "https://example.com/v1?token=tok_SECRET#frag",
        "http://alice:hunter2@example.com/?token=tok_SECRET",
        "//alice:hunter2@example.com?token=tok_SECRET",
        "https://alice:hunter2@[::1/?token=tok_SECRET",
    ],
)
def test_refused_base_url_messages_hide_userinfo_and_query(base_url: str) -> None:
    """A refused base_url is never echoed with its password or query token."""
    with pytest.raises(ValueError, match="base_url") as info:
        ka.KnockClient(api_key=API_KEY, base_url=base_url)
    assert "hunter2" not in str(info.value)
    assert "tok_SECRET" not in str(info.value)
    assert "alice" not in str(info.value)


# -- exits mid-way and event loops ----------------------------------------------------------


def run_watching(scenario: Callable[[], Any]) -> list[str]:
    """Run ``scenario()`` in a fresh event loop, then collect garbage; the messages the loop's
    exception handler received (never-retrieved task exceptions, destroyed pending tasks)."""
    messages: list[str] = []
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _, context: messages.append(str(context.get("message"))))
    try:
        loop.run_until_complete(scenario())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    gc.collect()
    return messages


async def stop_fan_out(knock: ka.KnockClient, ids: list[str], stop: str) -> ka.FanOut:
    """Start update_many and leave it the way ``stop`` says."""
    fan = knock.channels.bulk.update_many(ids, "read", concurrency=4)
    if stop == "break":
        async for event in fan:
            if event.kind is ka.FanOutEventKind.SUBMITTED:
                break
    elif stop == "cancel":

        async def consume() -> None:
            async for _ in fan:
                pass

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:  # close the client mid-fan-out, then read the rest
        seen = 0
        async for _ in fan:
            seen += 1
            if seen == 2:
                await knock.aclose()
        summary = await fan
        assert [r.channel_id for r in summary.results] == ids
    return fan


async def fan_out_scenario(stop: str) -> None:
    fast = FastClock(speed=20)
    async with KnockEmulator(clock=fast, rows_per_second=50.0) as emu:
        ids = [emu.add_channel("in_app_feed") for _ in range(6)]
        for channel in ids:
            emu.add_messages(channel, 20, seed=0)
        async with ka.KnockClient(
            api_key=API_KEY, base_url=emu.base_url, clock=fast.monotonic, sleep=fast.sleep
        ) as knock:
            kept = await stop_fan_out(knock, ids, stop)
        # The client is closed with the fan-out still referenced (as a variable of the
        # caller's is) and its requests perhaps in flight; they run on, then it is collected.
        await asyncio.sleep(0.1)
        del kept
        gc.collect()
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("stop", ["break", "cancel", "close client"])
def test_no_exit_path_leaves_a_task_behind(stop: str) -> None:
    """A break out of update_many inside ``async with KnockClient()``, cancelling its
    consumer, or closing the client mid-fan-out leaves no task whose exception is never
    retrieved and no pending task destroyed."""
    messages = run_watching(lambda: fan_out_scenario(stop))
    assert not [m for m in messages if "never retrieved" in m or "destroyed" in m], messages


@pytest.fixture
def threaded_knock() -> Iterator[str]:
    """A tiny Knock on a thread (so that it outlives the test's event loops): every GET
    answers the completed operation, over HTTP/1.1 keep-alive."""
    body = json.dumps(operation(status="completed", processed_rows=1000)).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_a_client_works_across_two_asyncio_runs(threaded_knock: str) -> None:
    """A client owning its session, used in two asyncio.run() calls, works in both: the
    first loop's session is closed as that loop shuts down, the second gets its own."""
    knock = ka.KnockClient(api_key=API_KEY, base_url=threaded_knock)
    first = asyncio.run(knock.bulk_operations.get(OPERATION_ID))
    second = asyncio.run(knock.bulk_operations.get(OPERATION_ID))
    assert first == second
    asyncio.run(knock.aclose())
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(knock.bulk_operations.get(OPERATION_ID))
    gc.collect()
