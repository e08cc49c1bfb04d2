"""KnockClient against a scripted Knock on loopback: the wire, errors, retries, sessions."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

import knock_async as ka
from tests._support import (
    API_KEY,
    CHANNEL_ID,
    OPERATION_ID,
    FakeKnock,
    Reply,
    VirtualTime,
    knock_error,
    operation,
)

MakeClient = Callable[..., ka.KnockClient]


async def test_wire_request_with_all_ten_filters(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """A call with all ten filters sends exactly the spec's request: path, headers, body."""
    async with make_client(branch="staging") as knock:
        op = await knock.channels.bulk.update_message_status(
            CHANNEL_ID,
            "archive",
            archived="include",
            delivery_status="delivered",
            engagement_status="seen",
            has_tenant=True,
            newer_than=datetime(2024, 1, 1, tzinfo=UTC),
            older_than="2024-06-01T00:00:00+00:00",
            recipient_ids=["recipient1", "recipient2"],
            tenants=["tenant1", "tenant2"],
            trigger_data={"key": "value"},
            workflows=["workflow1", "workflow2"],
        )
    assert isinstance(op, ka.BulkOperation)
    assert op.status is ka.BulkOperationStatus.QUEUED
    [sent] = fake_knock.requests
    assert sent.method == "POST"
    assert sent.path == f"/v1/channels/{CHANNEL_ID}/messages/bulk/archive"
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["User-Agent"] == f"knock-async/{ka.__version__}"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["X-Knock-Branch"] == "staging"
    assert json.loads(sent.body) == {
        "archived": "include",
        "delivery_status": "delivered",
        "engagement_status": "seen",
        "has_tenant": True,
        "newer_than": "2024-01-01T00:00:00Z",
        "older_than": "2024-06-01T00:00:00Z",
        "recipient_ids": ["recipient1", "recipient2"],
        "tenants": ["tenant1", "tenant2"],
        "trigger_data": '{"key":"value"}',
        "workflows": ["workflow1", "workflow2"],
    }


async def test_get_operation(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """bulk_operations.get(id) GETs /v1/bulk_operations/{id} without a body or Content-Type."""
    async with make_client() as knock:
        op = await knock.bulk_operations.get(OPERATION_ID)
    assert op.status is ka.BulkOperationStatus.COMPLETED
    [sent] = fake_knock.requests
    assert (sent.method, sent.path, sent.body) == (
        "GET",
        f"/v1/bulk_operations/{OPERATION_ID}",
        b"",
    )
    assert "Content-Type" not in sent.headers
    assert "X-Knock-Branch" not in sent.headers


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ka.BadRequestError),
        (401, ka.AuthenticationError),
        (403, ka.PermissionDeniedError),
        (404, ka.NotFoundError),
        (422, ka.UnprocessableEntityError),
        (500, ka.InternalServerError),
    ],
)
async def test_error_statuses(
    fake_knock: FakeKnock, make_client: MakeClient, status: int, cls: type[ka.APIError]
) -> None:
    """Each error status with a Knock error body raises its typed error with code and request id."""
    fake_knock.reply("POST", Reply(status, knock_error(status, "some_code", "what went wrong")))
    async with make_client() as knock:
        with pytest.raises(cls) as info:
            await knock.channels.bulk.update_message_status(CHANNEL_ID, "read")
    error = info.value
    assert (error.status, error.code, error.message) == (status, "some_code", "what went wrong")
    assert error.request_id == "req_1"
    assert API_KEY not in str(error)
    assert API_KEY not in repr(error)
    assert len(fake_knock.requests) == 1


async def test_500_on_post_is_not_retried(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """A 500 on the bulk POST may have started an operation: it is raised, not retried."""
    fake_knock.reply("POST", Reply(500, knock_error(500, "internal")), Reply(200, operation()))
    async with make_client() as knock:
        with pytest.raises(ka.InternalServerError):
            await knock.channels.bulk.update_message_status(CHANNEL_ID, "archive")
    assert len(fake_knock.requests) == 1


async def test_ambiguous_post_retry_opt_in(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """With retry_ambiguous_post=True (per call) a 500 on the POST is retried."""
    fake_knock.reply("POST", Reply(500, knock_error(500, "internal")))
    async with make_client() as knock:
        op = await knock.channels.bulk.update_message_status(
            CHANNEL_ID, "archive", retry=ka.RetryPolicy(retry_ambiguous_post=True)
        )
    assert op.id == OPERATION_ID
    assert len(fake_knock.requests) == 2


async def test_429_without_retry_after_is_retried(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """A bare 429 (Knock's norm) on the POST is retried after at least a second."""
    fake_knock.reply("POST", Reply(429, knock_error(429, "rate_limited")))
    async with make_client() as knock:
        op = await knock.channels.bulk.update_message_status(CHANNEL_ID, "archive")
    assert op.id == OPERATION_ID
    assert len(fake_knock.requests) == 2
    assert vtime.sleeps == [1.0]


async def test_429_with_retry_after_waits_what_it_says(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """A 429 with Retry-After (seconds or -ms) is retried after exactly that long."""
    fake_knock.reply(
        "GET",
        Reply(429, knock_error(429, "rate_limited"), headers={"Retry-After": "7"}),
        Reply(429, knock_error(429, "rate_limited"), headers={"retry-after-ms": "1500"}),
    )
    async with make_client() as knock:
        await knock.bulk_operations.get(OPERATION_ID)
    assert vtime.sleeps == [7.0, 1.5]


async def test_429_retry_after_over_the_cap_gives_up(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """A Retry-After longer than the cap ends the retries; the error carries the hint."""
    fake_knock.reply(
        "GET", Reply(429, knock_error(429, "rate_limited"), headers={"Retry-After": "3600"})
    )
    async with make_client() as knock:
        with pytest.raises(ka.RateLimitError) as info:
            await knock.bulk_operations.get(OPERATION_ID)
    assert info.value.retry_after == 3600.0
    assert len(fake_knock.requests) == 1


async def test_get_retries_transient_errors_then_gives_up(
    fake_knock: FakeKnock, make_client: MakeClient, vtime: VirtualTime
) -> None:
    """GETs are retried on 5xx/408 with full-jitter backoff until attempts run out."""
    fake_knock.reply(
        "GET",
        Reply(503, knock_error(503, "unavailable")),
        Reply(408, knock_error(408, "timeout")),
        Reply(502, raw=b"<html>bad gateway</html>"),
        Reply(500, knock_error(500, "internal")),
    )
    async with make_client(retry=ka.RetryPolicy(attempts=4)) as knock:
        with pytest.raises(ka.InternalServerError) as info:
            await knock.bulk_operations.get(OPERATION_ID)
    assert info.value.code == "internal"
    assert len(fake_knock.requests) == 4
    assert vtime.sleeps == [0.25, 0.5, 1.0]  # rng 0.5 x 0.5 s x 2**n


async def test_dropped_connection_on_get_is_retried(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """A GET whose connection drops mid-exchange is retried and then succeeds."""
    fake_knock.reply("GET", Reply(drop=True))
    async with make_client() as knock:
        op = await knock.bulk_operations.get(OPERATION_ID)
    assert op.is_terminal
    assert len(fake_knock.requests) == 2


async def test_dropped_connection_on_post_is_not_retried(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """A POST whose connection drops after sending may have started an operation: raised."""
    fake_knock.reply("POST", Reply(drop=True))
    async with make_client() as knock:
        with pytest.raises(ka.APIConnectionError) as info:
            await knock.channels.bulk.update_message_status(CHANNEL_ID, "archive")
    assert info.value.failure is ka.Failure.CONNECTION
    assert len(fake_knock.requests) == 1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_refused_connection_on_post_is_retried_then_raised(vtime: VirtualTime) -> None:
    """A POST that could not connect never started anything: retried, then APIConnectionError."""
    async with ka.KnockClient(
        api_key=API_KEY,
        base_url=f"http://127.0.0.1:{closed_port()}",
        clock=vtime.clock,
        sleep=vtime.sleep,
        rng=lambda: 0.5,
        retry=ka.RetryPolicy(attempts=3),
    ) as knock:
        with pytest.raises(ka.APIConnectionError) as info:
            await knock.channels.bulk.update_message_status(CHANNEL_ID, "archive")
    assert info.value.failure is ka.Failure.NOT_SENT
    assert len(vtime.sleeps) == 2
    assert API_KEY not in str(info.value)


async def test_timeout_is_api_timeout_error(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """No answer within the per-request timeout raises APITimeoutError (POST: not retried)."""
    fake_knock.reply("POST", Reply(delay=0.5))
    async with make_client(timeout=0.05) as knock:
        with pytest.raises(ka.APITimeoutError) as info:
            await knock.channels.bulk.update_message_status(CHANNEL_ID, "archive")
    assert info.value.failure is ka.Failure.TIMEOUT
    assert len(fake_knock.requests) == 1


async def test_per_call_timeout(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """timeout= on a call overrides the client's per-request timeout."""
    fake_knock.reply("GET", Reply(delay=0.5))
    async with make_client(retry=ka.RetryPolicy(attempts=1)) as knock:
        with pytest.raises(ka.APITimeoutError):
            await knock.bulk_operations.get(OPERATION_ID, timeout=0.05)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(raw=b"{truncated"), "not valid JSON"),
        (Reply(body={"__typename": "BulkOperation", "id": OPERATION_ID}), "required field missing"),
        (Reply(body=operation(processed_rows="many")), "expected int, got str @ $.processed_rows"),
    ],
)
async def test_bad_success_bodies(
    fake_knock: FakeKnock, make_client: MakeClient, reply: Reply, expected: str
) -> None:
    """A 200 whose body breaks the schema raises ResponseValidationError, not KeyError."""
    fake_knock.reply("GET", reply)
    async with make_client() as knock:
        with pytest.raises(ka.ResponseValidationError, match=re.escape(expected)) as info:
            await knock.bulk_operations.get(OPERATION_ID)
    assert info.value.request_id == "req_1"


async def test_unknown_status_and_extra_fields(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """An unknown status and unknown fields are accepted; the status is kept, not finished."""
    fake_knock.reply("GET", Reply(body=operation(status="paused", brand_new={"x": 1})))
    async with make_client() as knock:
        op = await knock.bulk_operations.get(OPERATION_ID)
    assert op.status == "paused"
    assert not op.status.is_known
    assert not op.is_terminal


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (
            {"channel_id": "not-a-uuid", "action": "archive"},
            ValueError,
            "channel_id must be a UUID",
        ),
        ({"channel_id": CHANNEL_ID, "action": "archive_everything"}, ValueError, "action must be"),
        ({"channel_id": CHANNEL_ID, "action": "read", "archived": "nope"}, ValueError, "archived"),
        (
            {"channel_id": CHANNEL_ID, "action": "delete", "older_than": datetime(2024, 1, 1)},
            ValueError,
            "older_than must be timezone-aware",
        ),
        (
            {"channel_id": CHANNEL_ID, "action": "read", "trigger_data": "[]"},
            ValueError,
            "trigger_data",
        ),
        (
            {"channel_id": CHANNEL_ID, "action": "read", "recipient_ids": "u1"},
            TypeError,
            "recipient_ids",
        ),
        (
            {"channel_id": CHANNEL_ID, "action": "read", "has_tenant": "yes"},
            TypeError,
            "has_tenant",
        ),
    ],
)
async def test_bad_input_fails_before_any_request(
    fake_knock: FakeKnock,
    make_client: MakeClient,
    call: dict[str, Any],
    error: type[Exception],
    text: str,
) -> None:
    """Bad arguments raise ValueError/TypeError naming the argument; nothing is sent."""
    async with make_client() as knock:
        with pytest.raises(error, match=text):
            await knock.channels.bulk.update_message_status(**call)
    assert fake_knock.requests == []


def test_configuration_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """api_key, base_url and branch come from KNOCK_API_KEY, KNOCK_BASE_URL, KNOCK_BRANCH."""
    monkeypatch.setenv("KNOCK_API_KEY", "sk_env")
    monkeypatch.setenv("KNOCK_BASE_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("KNOCK_BRANCH", "dev")
    knock = ka.KnockClient()
    assert str(knock.base_url) == "http://127.0.0.1:9999"
    assert repr(knock) == "<KnockClient base_url='http://127.0.0.1:9999', branch='dev'>"


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without api_key or KNOCK_API_KEY the client refuses to build, saying what to set."""
    monkeypatch.delenv("KNOCK_API_KEY", raising=False)
    with pytest.raises(ValueError, match="KNOCK_API_KEY"):
        ka.KnockClient()


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a base URL the client talks to https://api.knock.app."""
    monkeypatch.delenv("KNOCK_BASE_URL", raising=False)
    assert str(ka.KnockClient(api_key="sk_x").base_url) == "https://api.knock.app"


def test_insecure_http_refused_when_built() -> None:
    """A plain-http base URL off loopback is refused at construction unless opted in."""
    with pytest.raises(ValueError, match="plain http"):
        ka.KnockClient(api_key="sk_x", base_url="http://knock.example.com")
    ka.KnockClient(api_key="sk_x", base_url="http://knock.example.com", allow_insecure_http=True)


def test_clock_and_sleep_go_together() -> None:
    """Injecting a sleep without the clock it advances (or the reverse) is refused."""
    with pytest.raises(ValueError, match="clock and sleep go together"):
        ka.KnockClient(api_key="sk_x", sleep=VirtualTime().sleep)


def test_key_never_in_repr() -> None:
    """The API key appears nowhere in the client's repr or vars' reprs of its resources."""
    knock = ka.KnockClient(api_key=API_KEY)
    assert API_KEY not in repr(knock)
    assert API_KEY not in repr(knock.channels.bulk) + repr(knock.bulk_operations)


async def test_key_never_logged(
    fake_knock: FakeKnock, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Debug logs of requests, retries and errors never contain the key."""
    caplog.set_level(logging.DEBUG, logger="knock_async")
    fake_knock.reply("GET", Reply(503, knock_error(503, "unavailable")))
    async with make_client() as knock:
        await knock.bulk_operations.get(OPERATION_ID)
    assert "retry in" in caplog.text
    assert f"/v1/bulk_operations/{OPERATION_ID}" in caplog.text
    assert API_KEY not in caplog.text


async def test_caller_session_is_left_open(fake_knock: FakeKnock) -> None:
    """A caller's session is used for requests and never closed by the client."""
    async with aiohttp.ClientSession() as session:
        async with ka.KnockClient(
            api_key=API_KEY, base_url=fake_knock.base_url, session=session
        ) as knock:
            await knock.bulk_operations.get(OPERATION_ID)
        assert not session.closed
        async with session.get(fake_knock.base_url + "/v1/bulk_operations/x") as response:
            assert response.status == 200


async def test_per_call_timeout_none_means_no_timeout(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """timeout=None on a call lifts the client's per-request timeout (it no longer means
    "the client's default": that is USE_CLIENT_DEFAULT, the default)."""
    fake_knock.reply("GET", *[Reply(body=operation(), delay=0.2)] * 2)
    async with make_client(timeout=0.05, retry=ka.RetryPolicy(attempts=1)) as knock:
        with pytest.raises(ka.APITimeoutError):
            await knock.bulk_operations.get(OPERATION_ID, timeout=ka.USE_CLIENT_DEFAULT)
        operation_ = await knock.bulk_operations.get(OPERATION_ID, timeout=None)
    assert operation_.id == OPERATION_ID


async def test_per_call_retry_none_is_one_try(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """retry=None on a call makes one try; the default (USE_CLIENT_DEFAULT) is the client's
    policy, which retries a 503 on a GET."""
    fake_knock.reply("GET", Reply(503, {}), Reply(503, {}))
    async with make_client() as knock:
        with pytest.raises(ka.InternalServerError):
            await knock.bulk_operations.get(OPERATION_ID, retry=None)
        assert len(fake_knock.requests) == 1
        await knock.bulk_operations.get(OPERATION_ID)
    assert len(fake_knock.requests) == 3
    with pytest.raises(TypeError, match="retry must be a RetryPolicy, None or USE_CLIENT_"):
        await knock.bulk_operations.get(OPERATION_ID, retry=3)  # type: ignore[arg-type]


def test_use_client_default_reads_as_its_name() -> None:
    """The sentinel shows as USE_CLIENT_DEFAULT in signatures and reprs."""
    assert repr(ka.USE_CLIENT_DEFAULT) == "USE_CLIENT_DEFAULT"


async def test_one_clock_object_drives_the_client(fake_knock: FakeKnock) -> None:
    """clock= may be one object with monotonic() and async sleep() (the emulator's
    ManualClock): retries wait on it, in no real time."""
    from knock_async.testing import ManualClock

    clock = ManualClock()
    fake_knock.reply("GET", Reply(503, {}), Reply(503, {}))
    async with ka.KnockClient(
        api_key=API_KEY, base_url=fake_knock.base_url, clock=clock, rng=lambda: 1.0
    ) as knock:
        operation_ = await knock.bulk_operations.get(OPERATION_ID)
    assert operation_.id == OPERATION_ID
    assert clock.monotonic() >= 0.5 + 1.0  # the two retry delays, on the clock's time
    with pytest.raises(ValueError, match="clock and sleep go together"):
        ka.KnockClient(api_key=API_KEY, clock=clock, sleep=clock.sleep)


def test_help_shows_the_namespaces() -> None:
    """help(KnockClient) documents channels and bulk_operations (properties with docstrings
    naming their methods), not only the constructor."""
    import pydoc

    text = pydoc.plain(pydoc.render_doc(ka.KnockClient))
    assert re.search(r"\bchannels\n[ |]+Channel endpoints: ``channels.bulk.update_message", text)
    assert re.search(r"\bbulk_operations\n[ |]+Bulk operations: ``bulk_operations.get", text)
    assert "update_many" in text
    assert "poll(target)" in text


async def test_own_session_is_closed_and_client_unusable_after(fake_knock: FakeKnock) -> None:
    """aclose() closes the client's own session; aclose is idempotent; use after raises."""
    knock = ka.KnockClient(api_key=API_KEY, base_url=fake_knock.base_url)
    await knock.bulk_operations.get(OPERATION_ID)
    session = knock._session
    assert session is not None
    await knock.aclose()
    await knock.aclose()
    assert session.closed
    with pytest.raises(RuntimeError, match="closed"):
        await knock.bulk_operations.get(OPERATION_ID)


async def test_no_session_is_made_until_needed() -> None:
    """Building and closing a client without requests opens nothing (no unclosed warnings)."""
    knock = ka.KnockClient(api_key=API_KEY)
    assert knock._session is None
    await knock.aclose()


async def test_one_session_reused_across_requests(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """Every request goes through one session and its pooled connections."""
    async with make_client() as knock:
        await knock.bulk_operations.get(OPERATION_ID)
        first = knock._session
        await knock.channels.bulk.update_message_status(CHANNEL_ID, "read")
        assert knock._session is first
    peers = {r.headers.get("Connection", "keep-alive") for r in fake_knock.requests}
    assert "close" not in peers


async def test_redirects_are_not_followed(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """A redirect is not followed (it could carry the key elsewhere): it is an APIError."""
    fake_knock.reply("GET", Reply(302, {}, headers={"Location": "https://evil.example/steal"}))
    async with make_client() as knock:
        with pytest.raises(ka.APIError) as info:
            await knock.bulk_operations.get(OPERATION_ID)
    assert info.value.status == 302
    assert len(fake_knock.requests) == 1


async def test_unknown_filter_is_named(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """A misspelt filter keyword is a TypeError naming it and listing the real ones."""
    async with make_client() as knock:
        with pytest.raises(TypeError, match="unknown filter archive; the filters are archived"):
            await knock.channels.bulk.update_message_status(CHANNEL_ID, "read", archive="x")  # type: ignore[call-arg]
    assert fake_knock.requests == []
