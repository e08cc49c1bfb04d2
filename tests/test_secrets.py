"""The API key stays out of reprs, tracebacks (with their local variables) and error chains."""

from __future__ import annotations

import traceback

import aiohttp
import pytest

import knock_async as ka
from tests._support import API_KEY, OPERATION_ID, FakeKnock, Reply


def full_traceback(error: BaseException) -> str:
    """What an error reporter that records frame variables (Sentry, rich) would show."""
    return "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())


def test_no_repr_holds_the_key() -> None:
    """The client, its resources, its headers and the requests it builds hide the key."""
    knock = ka.KnockClient(api_key=API_KEY)
    request = knock.bulk_operations.poll(OPERATION_ID)._follow.request
    for thing in (knock, knock.channels.bulk, knock.bulk_operations, request, vars(knock)):
        assert API_KEY not in repr(thing)
    assert "<redacted>" in repr(request)


async def test_key_absent_from_an_api_error_traceback(fake_knock: FakeKnock) -> None:
    """An APIError's traceback, locals included, does not contain the key."""
    fake_knock.reply("GET", Reply(404, {"code": "not_found", "message": "no such operation"}))
    async with ka.KnockClient(api_key=API_KEY, base_url=fake_knock.base_url) as knock:
        with pytest.raises(ka.NotFoundError) as info:
            await knock.bulk_operations.get(OPERATION_ID)
    assert API_KEY not in full_traceback(info.value)


async def test_caller_session_raising_for_status_changes_nothing(fake_knock: FakeKnock) -> None:
    """A caller's session made with raise_for_status=True still gives typed API errors, not
    retried connection errors."""
    fake_knock.reply("GET", Reply(404, {"code": "not_found", "message": "no such operation"}))
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        knock = ka.KnockClient(api_key=API_KEY, base_url=fake_knock.base_url, session=session)
        with pytest.raises(ka.NotFoundError) as info:
            await knock.bulk_operations.get(OPERATION_ID)
    assert info.value.code == "not_found"
    assert len(fake_knock.requests) == 1


async def test_key_absent_from_a_malformed_response_error(broken_http: str) -> None:
    """aiohttp's parse error holds the request headers; it is not chained into ours."""
    async with ka.KnockClient(
        api_key=API_KEY, base_url=broken_http, retry=ka.RetryPolicy(attempts=1)
    ) as knock:
        with pytest.raises(ka.APIConnectionError) as info:
            await knock.bulk_operations.get(OPERATION_ID)
    assert "ClientResponseError" in str(info.value)  # what went wrong is still said
    assert info.value.__cause__ is None
    assert API_KEY not in full_traceback(info.value)
