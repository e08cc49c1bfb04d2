"""Every error of a bulk POST that may have started an operation says so, in
``operation_may_have_started`` and in its message, with what is safe to do next; an error
that certainly started nothing (a 4xx, a 429, a connection never made) and any GET error
says it did not."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

import knock_async as ka
from knock_async._retry import Failure, may_have_started
from tests._support import API_KEY, CHANNEL_ID, OPERATION_ID, FakeKnock, Reply, knock_error

MakeClient = Callable[..., ka.KnockClient]
NEXT_STEP = "RetryPolicy(retry_ambiguous_post=True)"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(502, {"message": "bad gateway"}),
        Reply(503, knock_error(503, "unavailable")),
        Reply(500, knock_error(500, "internal")),
        Reply(drop=True),
        Reply(delay=0.5),
        Reply(raw=b"{truncated"),
    ],
    ids=["502", "503", "500", "dropped-after-sending", "timeout", "2xx-unreadable"],
)
async def test_a_post_that_may_have_started_says_so(
    fake_knock: FakeKnock, make_client: MakeClient, reply: Reply
) -> None:
    """A POST answered 5xx, dropped after sending, timed out or answered 2xx with an
    unreadable body raises an error with operation_may_have_started=True and a message
    saying so and what the caller can safely do; it is sent once."""
    fake_knock.reply("POST", reply)
    async with make_client(timeout=0.05 if reply.delay else 30.0) as knock:
        with pytest.raises(ka.APIError) as info:
            await knock.channels.bulk.update_message_status(CHANNEL_ID, "archive")
    assert info.value.operation_may_have_started is True
    assert "may have started a bulk operation" in str(info.value)
    assert NEXT_STEP in str(info.value)
    assert len(fake_knock.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(429, knock_error(429, "rate_limited")),
        Reply(422, knock_error(422, "invalid_params")),
        Reply(404, knock_error(404, "not_found")),
    ],
    ids=["429", "422", "404"],
)
async def test_a_post_that_certainly_did_not_start_says_nothing(
    fake_knock: FakeKnock, make_client: MakeClient, reply: Reply
) -> None:
    """A POST answered 429 or another 4xx certainly started nothing: the flag is False and
    the message does not warn."""
    fake_knock.reply("POST", *[reply] * 4)
    async with make_client(retry=ka.RetryPolicy(attempts=1)) as knock:
        with pytest.raises(ka.APIStatusError) as info:
            await knock.channels.bulk.update_message_status(CHANNEL_ID, "archive")
    assert info.value.operation_may_have_started is False
    assert "may have started" not in str(info.value)


async def test_an_earlier_try_that_may_have_started_is_remembered(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """With retry_ambiguous_post, a POST answered 503 and then 429 to the end of its tries
    ends with a RateLimitError that still says an operation may have started (by the 503)."""
    fake_knock.reply("POST", Reply(503, {}), Reply(429, {}))
    policy = ka.RetryPolicy(attempts=2, retry_ambiguous_post=True)
    async with make_client(retry=policy) as knock:
        with pytest.raises(ka.RateLimitError) as info:
            await knock.channels.bulk.update_message_status(CHANNEL_ID, "archive")
    assert info.value.operation_may_have_started is True
    assert len(fake_knock.requests) == 2


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_post_never_sent_did_not_start() -> None:
    """A POST whose connection was refused (Failure.NOT_SENT) certainly started nothing."""
    async with ka.KnockClient(
        api_key=API_KEY,
        base_url=f"http://127.0.0.1:{closed_port()}",
        retry=ka.RetryPolicy(attempts=1),
    ) as knock:
        with pytest.raises(ka.APIConnectionError) as info:
            await knock.channels.bulk.update_message_status(CHANNEL_ID, "archive")
    assert info.value.failure is ka.Failure.NOT_SENT
    assert info.value.operation_may_have_started is False


async def test_a_get_never_starts_an_operation(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """A GET answered 503 to the end of its retries starts nothing: the flag is False."""
    fake_knock.reply("GET", *[Reply(503, knock_error(503, "unavailable"))] * 4)
    async with make_client() as knock:
        with pytest.raises(ka.InternalServerError) as info:
            await knock.bulk_operations.get(OPERATION_ID)
    assert info.value.operation_may_have_started is False


@pytest.mark.parametrize(
    ("method", "status", "failure", "expected"),
    [
        ("POST", 502, None, True),
        ("POST", 503, None, True),
        ("POST", 408, None, True),
        ("POST", 200, None, True),
        ("POST", None, Failure.CONNECTION, True),
        ("POST", None, Failure.TIMEOUT, True),
        ("POST", None, Failure.NOT_SENT, False),
        ("POST", 429, None, False),
        ("POST", 400, None, False),
        ("GET", 503, None, False),
        ("GET", None, Failure.TIMEOUT, False),
    ],
)
def test_may_have_started_table(
    method: str, status: int | None, failure: Failure | None, expected: bool
) -> None:
    """The one rule behind the flag and the POST's retries, outcome by outcome."""
    assert may_have_started(method, status=status, failure=failure) is expected
