"""POST /v1/channels/{channel_id}/messages/bulk/{action} over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from knock_async.testing import BULK_UPDATE_ROUTE, EmulatorRateLimits, KnockEmulator, ManualClock

AUTH = {"Authorization": "Bearer sk_test_emulator"}
UNROUTED_BODY = {"errors": {"detail": "404 Not Found"}}
Validator = Callable[[Any], None]  # the valid_operation / valid_error fixtures

Url = Callable[[str, str], str]


async def post(
    http: aiohttp.ClientSession, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.post(url, json=body, headers=AUTH if headers is None else headers) as response:
        return response.status, await response.json(), response


async def test_bulk_update_answers_a_queued_operation(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url, valid_operation: Validator
) -> None:
    """A valid request gets 200, a queued BulkOperation named messages.<action> with a relative
    progress_path and microsecond timestamps, plus an x-request-id header."""
    channel = emu.add_channel(type="in_app_feed")
    emu.add_messages(channel, 30, seed=0)
    status, body, response = await post(http, bulk_url(channel, "archive"), {"archived": "include"})
    assert status == 200
    valid_operation(body)
    assert body["status"] == "queued"
    assert body["estimated_total_rows"] == 30
    assert body["progress_path"] == f"/v1/bulk_operations/{body['id']}"
    assert body["name"] == "messages.archive"
    assert body["inserted_at"] == body["updated_at"] == "2025-01-01T00:00:00.000000Z"
    assert response.headers["x-request-id"]
    assert response.content_type == "application/json"
    assert [op.id for op in emu.operations()] == [body["id"]]


async def test_body_may_be_left_out(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """No body at all means no filters, as an empty object would."""
    channel = emu.add_channel()
    emu.add_messages(channel, 7)
    async with http.post(bulk_url(channel, "read"), headers=AUTH) as response:
        assert response.status == 200
        assert (await response.json())["estimated_total_rows"] == 7


async def test_filters_are_applied_end_to_end(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """Every filter sent over HTTP narrows what the operation changes."""
    channel = emu.add_channel(type="email")
    now = emu.clock.now()
    hit = emu.add_message(
        channel, recipient_id="u1", tenant="acme", workflow="w1", data={"k": "v", "n": 2}
    )
    misses = [
        emu.add_message(channel, recipient_id="u2", tenant="acme", workflow="w1", data={"k": "v"}),
        emu.add_message(channel, recipient_id="u1", tenant="other", workflow="w1", data={"k": "v"}),
        emu.add_message(channel, recipient_id="u1", tenant="acme", workflow="w2", data={"k": "v"}),
        emu.add_message(channel, recipient_id="u1", tenant="acme", workflow="w1", data={"k": "x"}),
        emu.add_message(
            channel, recipient_id="u1", tenant="acme", workflow="w1", data={"k": "v"}, seen_at=now
        ),
        emu.add_message(
            channel,
            recipient_id="u1",
            tenant="acme",
            workflow="w1",
            data={"k": "v"},
            delivery_status="bounced",
        ),
        emu.add_message(
            channel,
            recipient_id="u1",
            tenant="acme",
            workflow="w1",
            data={"k": "v"},
            archived_at=now,
        ),
        emu.add_message(
            channel,
            recipient_id="u1",
            tenant="acme",
            workflow="w1",
            data={"k": "v"},
            inserted_at=now - timedelta(days=3),
        ),
    ]
    body = {
        "archived": "exclude",
        "delivery_status": "delivered",
        "engagement_status": "unseen",
        "has_tenant": True,
        "newer_than": (now - timedelta(days=1)).isoformat(),
        "older_than": (now + timedelta(days=1)).isoformat(),
        "recipient_ids": ["u1"],
        "tenants": ["acme"],
        "trigger_data": '{"k":"v"}',
        "workflows": ["w1"],
    }
    status, op, _ = await post(http, bulk_url(channel, "read"), body)
    assert status == 200
    # The estimate starts from the recipient index (u1 has 8 messages), not from a scan.
    assert op["estimated_total_rows"] == 8
    emu.settle()
    assert emu.message(hit.id) is not None
    assert emu.message(hit.id).read_at is not None  # type: ignore[union-attr]
    assert all(emu.message(m.id) == m for m in misses)
    final = emu.operation(op["id"])
    assert (final.success_count, final.estimated_total_rows) == (1, 1)


async def test_spec_request_example_is_accepted(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url, spec: dict[str, Any]
) -> None:
    """The request body example from the spec is a valid request."""
    channel = emu.add_channel()
    example = spec["components"]["schemas"]["BulkUpdateMessagesForChannelRequest"]["example"]
    status, body, _ = await post(http, bulk_url(channel, "archive"), example)
    assert status == 200, body


MISSING_KEY = {
    "code": "api_key_missing",
    "message": "No valid API key provided",
    "status": 401,
    "type": "authentication_error",
}
WRONG_TOKEN = {
    "code": "incorrect_token_type",
    "message": "You cannot call this endpoint with this token.",
    "status": 401,
    "type": "authentication_error",
}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, MISSING_KEY),
        ({"Authorization": "sk_test"}, MISSING_KEY),
        ({"Authorization": "Basic sk_test"}, MISSING_KEY),
        ({"Authorization": "Bearer "}, MISSING_KEY),
        ({"Authorization": "Bearer nope"}, MISSING_KEY),
        ({"Authorization": "Bearer pk_test"}, WRONG_TOKEN),
    ],
)
async def test_authentication(
    emu: KnockEmulator,
    http: aiohttp.ClientSession,
    bulk_url: Url,
    valid_error: Validator,
    headers: dict[str, str],
    expected: dict[str, Any],
) -> None:
    """A missing, malformed or unknown key gets Knock's documented 401 api_key_missing body,
    a public key 401 incorrect_token_type, exactly."""
    channel = emu.add_channel()
    got, body, _ = await post(http, bulk_url(channel, "read"), {}, headers=headers)
    assert (got, body) == (401, expected)
    valid_error(body)
    assert emu.operations() == []


async def test_api_keys_restrict_the_accepted_keys(
    clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    """With api_keys=[...] only those keys work; pk_ keys are refused even when listed."""
    async with KnockEmulator(clock=clock, api_keys=["sk_good", "pk_listed"]) as emu:
        channel = emu.add_channel()
        url = f"{emu.base_url}/v1/channels/{channel}/messages/bulk/read"
        results = {}
        for key in ("sk_good", "sk_other", "pk_listed", "pk_other"):
            results[key] = (await post(http, url, {}, {"Authorization": f"Bearer {key}"}))[0]
    assert results == {"sk_good": 200, "sk_other": 401, "pk_listed": 401, "pk_other": 401}


async def test_unknown_channel_is_404(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url, valid_error: Validator
) -> None:
    """A well-formed channel id that was never added answers 404 resource_missing."""
    status, body, _ = await post(http, bulk_url("6f1d2c3b-0000-4000-8000-000000000000", "read"), {})
    assert (status, body["code"]) == (404, "resource_missing")
    valid_error(body)


INVALID_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"archived": "sometimes"}, "archived"),
    ({"delivery_status": "lost"}, "delivery_status"),
    ({"engagement_status": "loved"}, "engagement_status"),
    ({"has_tenant": "yes"}, "has_tenant"),
    ({"has_tenant": 1}, "has_tenant"),
    ({"newer_than": "2024-01-01"}, "newer_than"),
    ({"older_than": "2024-01-01T00:00:00"}, "older_than"),
    ({"older_than": "2024-13-01T00:00:00Z"}, "older_than"),
    ({"older_than": 1704067200}, "older_than"),
    ({"recipient_ids": "u1"}, "recipient_ids"),
    ({"recipient_ids": ["u1", 2]}, "recipient_ids[1]"),
    ({"tenants": [None]}, "tenants[0]"),
    ({"workflows": {"a": 1}}, "workflows"),
    ({"trigger_data": {"k": "v"}}, "trigger_data"),
    ({"trigger_data": "[1, 2]"}, "trigger_data"),
    ({"trigger_data": "{not json"}, "trigger_data"),
    ({"archived": None}, "archived"),
    ({"channel_id": "x"}, "channel_id"),
    ({"status": "read"}, "status"),
]


@pytest.mark.parametrize(("body", "field"), INVALID_BODIES)
async def test_invalid_body_is_422_naming_the_field(
    emu: KnockEmulator,
    http: aiohttp.ClientSession,
    bulk_url: Url,
    valid_error: Validator,
    body: dict[str, Any],
    field: str,
) -> None:
    """Wrong types, unknown enum values, nulls, bad date-times and unknown keys (strict mode)
    get Knock's 422 invalid_params body, its errors naming the field; nothing is created."""
    channel = emu.add_channel()
    emu.add_messages(channel, 5)
    before = emu.messages(channel)
    status, answer, _ = await post(http, bulk_url(channel, "read"), body)
    assert (status, answer["code"], answer["type"], answer["message"]) == (
        422,
        "invalid_params",
        "invalid_request_error",
        "One or more parameters supplied were invalid",
    )
    assert [(e["field"], e["type"]) for e in answer["errors"]] == [(field, None)]
    assert field.partition("[")[0] in answer["errors"][0]["message"]
    valid_error(answer)
    assert emu.operations() == []
    assert emu.messages(channel) == before


@pytest.mark.parametrize(
    ("channel", "action", "field"),
    [
        ("not-a-uuid", "read", "channel_id"),
        ("6f1d2c3b00004000800000000000000a", "read", "channel_id"),
        ("6f1d2c3b-0000-4000-8000-00000000000g", "read", "channel_id"),
        (None, "explode", "action"),
        (None, "READ", "action"),
    ],
)
async def test_invalid_path_parameters_are_422(
    emu: KnockEmulator,
    http: aiohttp.ClientSession,
    bulk_url: Url,
    channel: str | None,
    action: str,
    field: str,
) -> None:
    """A channel id that is not a UUID or an unknown action gets 422 naming the parameter."""
    real = emu.add_channel()
    status, body, _ = await post(http, bulk_url(channel or real, action), {})
    assert (status, body["code"]) == (422, "invalid_params")
    assert [error["field"] for error in body["errors"]] == [field]


async def test_uppercase_channel_id_is_the_same_channel(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """UUIDs compare case-insensitively."""
    channel = emu.add_channel()
    status, _, _ = await post(http, bulk_url(channel.upper(), "read"), {})
    assert status == 200


async def test_too_many_list_items_is_422(clock: ManualClock, http: aiohttp.ClientSession) -> None:
    """A list filter longer than max_list_items gets 422 naming it."""
    async with KnockEmulator(clock=clock, max_list_items=3) as emu:
        channel = emu.add_channel()
        url = f"{emu.base_url}/v1/channels/{channel}/messages/bulk/read"
        status, body, _ = await post(http, url, {"tenants": ["a", "b", "c", "d"]})
        ok, _, _ = await post(http, url, {"tenants": ["a", "b", "c"]})
    assert (status, ok) == (422, 200)
    assert [error["field"] for error in body["errors"]] == ["tenants"]


async def test_rate_limit_is_5_posts_per_second_per_environment(
    clock: ManualClock, http: aiohttp.ClientSession, valid_error: Validator
) -> None:
    """The 6th POST within a second gets 429 with Knock's body and no Retry-After; another key
    of the same environment is refused too; a fifth of a second later one more POST is
    allowed, whichever key sends it."""
    async with KnockEmulator(clock=clock) as emu:
        channel = emu.add_channel()
        url = f"{emu.base_url}/v1/channels/{channel}/messages/bulk/read"
        statuses = [(await post(http, url, {}))[0] for _ in range(5)]
        status, body, response = await post(http, url, {})
        other = (await post(http, url, {}, {"Authorization": "Bearer sk_other"}))[0]
        clock.advance(0.2)
        after = (await post(http, url, {}))[0]
    assert statuses == [200] * 5
    assert (status, body["code"]) == (429, "rate_limit_exceeded")
    valid_error(body)
    assert "Retry-After" not in response.headers
    assert not [h for h in response.headers if h.lower().startswith("x-ratelimit")]
    assert (other, after) == (429, 200)
    assert emu.stats.rate_limited == 2
    assert emu.stats.responses[429] == 2
    assert len(emu.operations()) == 6


async def test_rate_limits_can_be_tuned(clock: ManualClock, http: aiohttp.ClientSession) -> None:
    """rate_limits=EmulatorRateLimits(...) changes the tiers."""
    async with KnockEmulator(clock=clock, rate_limits=EmulatorRateLimits(post_per_second=1)) as emu:
        channel = emu.add_channel()
        url = f"{emu.base_url}/v1/channels/{channel}/messages/bulk/read"
        statuses = [(await post(http, url, {}))[0] for _ in range(2)]
    assert statuses == [200, 429]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "/v1/bulk_operations/{id}"),
        ({"progress_origin": ""}, "/v1/bulk_operations/{id}"),
        ({"progress_origin": None}, "{base}/v1/bulk_operations/{id}"),
        (
            {"progress_origin": "https://api.example.com"},
            "https://api.example.com/v1/bulk_operations/{id}",
        ),
    ],
)
async def test_progress_origin(
    clock: ManualClock, http: aiohttp.ClientSession, settings: dict[str, Any], expected: str
) -> None:
    """progress_path is relative by default, as Knock answers; progress_origin=None makes it
    absolute on the emulator's origin, an origin puts it on another host."""
    async with KnockEmulator(clock=clock, **settings) as emu:
        channel = emu.add_channel()
        url = f"{emu.base_url}/v1/channels/{channel}/messages/bulk/read"
        _, body, _ = await post(http, url, {})
        base = emu.base_url
    assert body["progress_path"] == expected.format(id=body["id"], base=base)


async def test_unknown_fields_are_ignored_and_recorded_by_default(
    clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    """Outside strict mode an unknown top-level field is accepted and ignored, as the spec
    allows, and named on the request log entry; the known filters still apply."""
    async with KnockEmulator(clock=clock, rate_limits=False) as emu:
        channel = emu.add_channel()
        emu.add_message(channel, tenant="acme")
        emu.add_message(channel, tenant=None)
        url = f"{emu.base_url}/v1/channels/{channel}/messages/bulk/read"
        status, body, _ = await post(http, url, {"has_tenant": True, "zzz": 1, "color": "x"})
        plain = await post(http, url, {})
        emu.advance(1.0)
        final = emu.operation(body["id"])
    assert (status, final.success_count) == (200, 1)
    assert [r.ignored_fields for r in emu.requests] == [("color", "zzz"), ()]
    assert plain[0] == 200


async def test_strict_mode_refuses_unknown_fields(
    clock: ManualClock, http: aiohttp.ClientSession, valid_error: Validator
) -> None:
    """KnockEmulator(strict=True) answers an unknown field with Knock's 422 invalid_params,
    one errors entry per unknown field, and starts nothing."""
    async with KnockEmulator(clock=clock, strict=True) as emu:
        channel = emu.add_channel()
        url = f"{emu.base_url}/v1/channels/{channel}/messages/bulk/read"
        status, body, _ = await post(http, url, {"zzz": 1, "archived": "include", "color": 2})
    assert (status, body["code"]) == (422, "invalid_params")
    valid_error(body)
    assert [(e["field"], e["type"]) for e in body["errors"]] == [("color", None), ("zzz", None)]
    assert emu.operations() == []


async def test_request_log_records_what_was_sent(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """The request log has method, raw path, route, body, status and redacted credentials."""
    channel = emu.add_channel()
    await post(http, bulk_url(channel, "read"), {"tenants": ["acme"]})
    async with http.get(f"{emu.base_url}/nowhere?x=1", headers=AUTH) as response:
        assert await response.json() == UNROUTED_BODY
    first, second = emu.requests
    assert (first.method, first.route, first.status) == ("POST", BULK_UPDATE_ROUTE, 200)
    assert first.path == f"/v1/channels/{channel}/messages/bulk/read"
    assert first.json() == {"tenants": ["acme"]}
    assert first.headers["authorization"] == "Bearer [REDACTED]"
    assert "sk_test" not in repr(first) + str(dict(first.headers))
    assert first.request_id
    assert first.received_at == datetime(2025, 1, 1, tzinfo=UTC)
    assert (second.path, second.query, second.route, second.status) == (
        "/nowhere",
        "x=1",
        None,
        404,
    )
    emu.clear_requests()
    assert emu.requests == []
    assert emu.stats.requests == 2


async def test_request_log_keeps_the_latest(
    clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    """request_log_size bounds the log to the latest requests; the counters keep counting."""
    async with KnockEmulator(clock=clock, request_log_size=2) as emu:
        for n in range(4):
            async with http.get(f"{emu.base_url}/n{n}", headers=AUTH):
                pass
    assert [r.path for r in emu.requests] == ["/n2", "/n3"]
    assert emu.stats.requests == 4
    assert emu.stats.responses[404] == 4


async def test_request_log_keeps_a_bounded_prefix_of_each_body(
    clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    """The log keeps the first 4 KiB of a body and its size; json() refuses a cut body; a
    small body is kept whole."""
    async with KnockEmulator(clock=clock, rate_limits=False) as emu:
        channel = emu.add_channel()
        url = f"{emu.base_url}/v1/channels/{channel}/messages/bulk/read"
        big = json.dumps({"trigger_data": json.dumps({"k": "x" * 500_000})}).encode()
        async with http.post(url, data=big, headers=AUTH) as response:
            assert response.status == 200
        await post(http, url, {"tenants": ["acme"]})
    first, second = emu.requests
    assert (len(first.body), first.body_size, first.body_truncated) == (4096, len(big), True)
    assert first.body == big[:4096]
    with pytest.raises(ValueError, match="first 4096"):
        first.json()
    assert not second.body_truncated
    assert second.json() == {"tenants": ["acme"]}


async def test_request_log_is_bounded_in_bytes(
    clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    """Many large bodies never make the log hold more than request_log_bytes: the oldest
    entries go first, the counters keep counting."""
    limit = 64 * 1024
    async with KnockEmulator(clock=clock, rate_limits=False, request_log_bytes=limit) as emu:
        channel = emu.add_channel()
        url = f"{emu.base_url}/v1/channels/{channel}/messages/bulk/read"
        body = json.dumps({"trigger_data": json.dumps({"k": "y" * 900_000})}).encode()
        for _ in range(40):
            async with http.post(url, data=body, headers=AUTH) as response:
                assert response.status == 200
        kept = emu.requests
    assert 0 < len(kept) < 40
    assert all(r.body_size == len(body) and len(r.body) == 4096 for r in kept)
    assert sum(len(r.body) for r in kept) <= limit
    assert emu.stats.requests == 40
