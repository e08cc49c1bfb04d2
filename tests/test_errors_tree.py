"""The error tree is knockapi's: ``except APIError`` catches status, connection, timeout and
response-validation errors; a closed client or session is a ``KnockError``, not a bare
``RuntimeError``; and the rate limiter's overflow is a public error pointing at update_many."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import aiohttp
import pytest

import knock_async as ka
import knock_async._errors as errors_module
from tests._support import API_KEY, CHANNEL_ID, OPERATION_ID, FakeKnock, Reply, knock_error

MakeClient = Callable[..., ka.KnockClient]


def test_the_tree_matches_knockapis() -> None:
    """Every API error derives from APIError, HTTP-status errors from APIStatusError, the
    timeout from the connection error, and everything from KnockError."""
    status_errors = [
        ka.BadRequestError,
        ka.AuthenticationError,
        ka.PermissionDeniedError,
        ka.NotFoundError,
        ka.UnprocessableEntityError,
        ka.RateLimitError,
        ka.InternalServerError,
    ]
    for status_error in status_errors:
        assert issubclass(status_error, ka.APIStatusError)
    for branch in (ka.APIStatusError, ka.APIConnectionError, ka.APIResponseValidationError):
        assert issubclass(branch, ka.APIError)
    assert issubclass(ka.APITimeoutError, ka.APIConnectionError)
    assert issubclass(ka.RateLimiterTimeoutError, ka.APITimeoutError)
    assert issubclass(ka.ResponseTooLargeError, ka.APIResponseValidationError)
    assert ka.ResponseValidationError is ka.APIResponseValidationError
    for other in (ka.ClientClosedError, ka.BulkOperationFailedError, ka.PollTimeoutError):
        assert issubclass(other, ka.KnockError)
        assert not issubclass(other, ka.APIError)
    # The tree is drawn in the errors module's docstring, every public class in it.
    text = errors_module.__doc__ or ""
    errors = [name for name in ka.__all__ if name.endswith("Error")]
    assert all(name in text for name in errors)


async def test_status_errors_have_status_code(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """A status error has knockapi's .status_code, with .status kept as its alias."""
    fake_knock.reply("GET", Reply(404, knock_error(404, "not_found")))
    async with make_client() as knock:
        with pytest.raises(ka.APIStatusError) as info:
            await knock.bulk_operations.get(OPERATION_ID)
    assert info.value.status_code == info.value.status == 404


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_except_api_error_catches_every_request_failure(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """A refused connection, a timeout, an invalid body and a status are all caught by
    ``except ka.APIError``."""
    fake_knock.reply("GET", Reply(raw=b"{truncated"), Reply(delay=0.5), Reply(500, {}))
    caught: list[type[BaseException]] = []
    async with make_client(retry=ka.RetryPolicy(attempts=1), timeout=0.05) as knock:
        for _ in range(3):
            try:
                await knock.bulk_operations.get(OPERATION_ID)
            except ka.APIError as exc:
                caught.append(type(exc))
    async with ka.KnockClient(
        api_key=API_KEY,
        base_url=f"http://127.0.0.1:{closed_port()}",
        retry=ka.RetryPolicy(attempts=1),
    ) as knock:
        try:
            await knock.bulk_operations.get(OPERATION_ID)
        except ka.APIError as exc:
            caught.append(type(exc))
    assert caught == [
        ka.APIResponseValidationError,
        ka.APITimeoutError,
        ka.InternalServerError,
        ka.APIConnectionError,
    ]


async def test_a_closed_session_is_a_knock_error(fake_knock: FakeKnock) -> None:
    """A request on a closed session= raises ClientClosedError (a KnockError) saying so,
    not aiohttp's bare RuntimeError; nothing is sent."""
    session = aiohttp.ClientSession()
    await session.close()
    knock = ka.KnockClient(api_key=API_KEY, base_url=fake_knock.base_url, session=session)
    with pytest.raises(ka.ClientClosedError, match=r"session=.*is closed") as info:
        await knock.channels.bulk.update_message_status(CHANNEL_ID, "read")
    assert isinstance(info.value, ka.KnockError)
    assert not info.value.operation_may_have_started
    assert fake_knock.requests == []


async def test_a_closed_client_is_a_knock_error(fake_knock: FakeKnock) -> None:
    """A KnockClient used after aclose() raises ClientClosedError (still a RuntimeError)."""
    knock = ka.KnockClient(api_key=API_KEY, base_url=fake_knock.base_url)
    await knock.aclose()
    with pytest.raises(ka.ClientClosedError, match="KnockClient is closed") as info:
        await knock.bulk_operations.get(OPERATION_ID)
    assert isinstance(info.value, RuntimeError)
    assert fake_knock.requests == []


async def test_gathered_calls_past_the_limiter_get_a_public_error(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """Gathered update_message_status calls that the client's pacing cannot send within
    their timeout fail at once with the public RateLimiterTimeoutError (not sent), whose
    message points at update_many and RateLimits; the ones that fit are sent. (Virtual time:
    at 0.5 POST/s with timeout=5, a call fits only in a slot within 5 s of its start, which
    leaves each sent request at least about 1 s of real time for its answer.)"""
    async with make_client(
        rate_limits=ka.RateLimits(post_per_second=0.5), retry=ka.RetryPolicy(attempts=1)
    ) as knock:
        results = await asyncio.gather(
            *(
                knock.channels.bulk.update_message_status(CHANNEL_ID, "read", timeout=5.0)
                for _ in range(8)
            ),
            return_exceptions=True,
        )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) >= 3  # 8 calls, about 3 slots within each one's 5 s
    assert len(fake_knock.requests) == len(results) - len(errors)
    for error in errors:
        assert type(error) is ka.RateLimiterTimeoutError
        assert error.failure is ka.Failure.NOT_SENT
        assert not error.operation_may_have_started
        assert "channels.bulk.update_many" in str(error)
        assert "RateLimits" in str(error)
