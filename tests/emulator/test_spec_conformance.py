"""Everything the emulator says conforms to the spec (tests/spec), checked with jsonschema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from knock_async._models import BulkAction
from knock_async.testing import KnockEmulator, ManualClock
from knock_async.testing._validation import wire_kinds

AUTH = {"Authorization": "Bearer sk_test_emulator"}
UNROUTED_BODY = {"errors": {"detail": "404 Not Found"}}
Validator = Callable[[Any], None]  # the valid_operation / valid_error fixtures

Url = Callable[[str, str], str]


def request_schema(spec: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = spec["components"]["schemas"]["BulkUpdateMessagesForChannelRequest"]
    return schema


def test_body_fields_match_the_spec(spec: dict[str, Any]) -> None:
    """The body fields the emulator derives from the core model are the spec's, with the
    spec's JSON types (date-time strings, arrays of strings, booleans, strings)."""
    properties = request_schema(spec)["properties"]
    expected = {}
    for name, prop in properties.items():
        kind = "date-time" if prop.get("format") == "date-time" else prop["type"]
        expected[name] = kind
    assert wire_kinds() == expected


def test_actions_match_the_spec(spec: dict[str, Any]) -> None:
    """The emulator's actions are exactly the spec's ``action`` enum."""
    parameters = spec["paths"]["/v1/channels/{channel_id}/messages/bulk/{action}"]["post"][
        "parameters"
    ]
    action = next(p for p in parameters if p["name"] == "action")
    assert [a.value for a in BulkAction] == action["schema"]["enum"]


def enum_cases(spec: dict[str, Any]) -> list[tuple[str, str]]:
    properties = request_schema(spec)["properties"]
    return [(name, value) for name, prop in properties.items() for value in prop.get("enum", [])]


async def test_every_enum_value_in_the_spec_is_accepted(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url, spec: dict[str, Any]
) -> None:
    """Each value of each body enum, and each action, is accepted with 200."""
    channel = emu.add_channel()
    cases = enum_cases(spec)
    assert len(cases) == 3 + 7 + 8
    for name, value in cases:
        async with http.post(
            bulk_url(channel, "read"), json={name: value}, headers=AUTH
        ) as response:
            assert response.status == 200, (name, value, await response.text())
    for action in BulkAction:
        async with http.post(bulk_url(channel, action.value), json={}, headers=AUTH) as response:
            assert response.status == 200, action


async def test_every_response_conforms(
    clock: ManualClock,
    http: aiohttp.ClientSession,
    valid_operation: Validator,
    valid_error: Validator,
) -> None:
    """Across a busy session (every lifecycle state, failures, error items, jitter, errors of
    every kind), each 200 body is a spec-valid BulkOperation and each error body is Knock's."""
    async with KnockEmulator(
        clock=clock, rows_per_second=200, batch_size=20, estimate_jitter=0.3, seed=5
    ) as emu:
        feed = emu.add_channel()
        email = emu.add_channel(type="email")
        messages = emu.add_messages(feed, 120, seed=1)
        emu.add_messages(email, 120, seed=2)
        emu.faults.fail_messages([messages[3].id])
        emu.faults.fail_next_operation(after_rows=30, channel_id=email)
        emu.faults.stick_next_operation(after_rows=10, channel_id=feed)

        seen: dict[int, int] = {}

        async def send(method: str, url: str, body: Any = None, key: str = "sk_a") -> Any:
            """Send, then validate the answer whatever it is."""
            headers = {"Authorization": f"Bearer {key}"}
            async with http.request(method, url, json=body, headers=headers) as response:
                answer = await response.json()
                assert response.headers["x-request-id"]
                assert response.content_type == "application/json"
                seen[response.status] = seen.get(response.status, 0) + 1
            if response.status == 200:
                valid_operation(answer)
            elif answer != UNROUTED_BODY:
                valid_error(answer)
                assert answer["status"] == response.status
            return answer

        base = emu.base_url
        operations = []
        for index, (channel, action, body) in enumerate(
            [
                (feed, "archive", {"archived": "exclude"}),
                (feed, "read", {}),
                (email, "seen", {"engagement_status": "unseen"}),
                (email, "delete", {"has_tenant": False}),
                (feed, "unarchive", {"archived": "only", "trigger_data": '{"urgent":true}'}),
            ]
        ):
            url = f"{base}/v1/channels/{channel}/messages/bulk/{action}"
            operations.append(await send("POST", url, body, key=f"sk_{index}"))
        for _ in range(12):
            for op in operations:
                await send("GET", base + op["progress_path"])
            emu.advance(0.1)
        statuses = {op.status for op in emu.operations()}
        assert statuses == {"completed", "failed", "processing"}
        assert any(op.error_items for op in emu.operations())

        errors = [
            ("POST", f"{base}/v1/channels/{feed}/messages/bulk/read", {"archived": 1}, "sk_a"),
            ("POST", f"{base}/v1/channels/nope/messages/bulk/read", {}, "sk_a"),
            ("POST", f"{base}/v1/channels/{feed}/messages/bulk/read", {}, "pk_a"),
            ("POST", f"{base}/v1/channels/{feed}/messages/bulk/read", {}, "bad"),
            ("GET", f"{base}/v1/bulk_operations/nope", None, "sk_a"),
        ]
        errors += [("POST", f"{base}/v1/channels/{feed}/messages/bulk/read", {}, "sk_z")] * 6
        for method, url, body, key in errors:
            await send(method, url, body, key)
        emu.faults.add("GET", "*", status=503)
        await send("GET", base + operations[0]["progress_path"])
        await send("GET", f"{base}/nowhere")

    assert {200, 401, 404, 422, 429, 503} <= set(seen)
    assert seen[200] >= 5 + 12 * 5
