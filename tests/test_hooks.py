"""Instrumentation hooks: the event records and how they are delivered."""

from __future__ import annotations

import logging

import attrs
import pytest
from yarl import URL

from knock_async._hooks import (
    HookEvent,
    PollObserved,
    RateLimitWait,
    RequestAnswered,
    RequestSent,
    RetryScheduled,
    emit,
    request_answered,
    request_sent,
)
from knock_async._ratelimit import Tier
from knock_async._requests import Request

RECORDS = [RequestSent, RequestAnswered, RetryScheduled, RateLimitWait, PollObserved]


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
    request = Request("GET", url, {"Authorization": "Bearer sk_secret"}, None, Tier.GET)
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
