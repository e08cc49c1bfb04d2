"""Hostile and malformed requests: always a 4xx with Knock's error body, never a 500, and the
store is left exactly as it was."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knock_async.testing import KnockEmulator, Message
from knock_async.testing._validation import parse_bulk_body, wire_kinds
from knock_async.testing._wire import KnockHTTPError

AUTH = {"Authorization": "Bearer sk_test_emulator"}
UNROUTED_BODY = {"errors": {"detail": "404 Not Found"}}
RawRequest = Callable[..., Awaitable[tuple[int, dict[str, str], bytes]]]

Url = Callable[[str, str], str]


@pytest.fixture
def seeded(emu: KnockEmulator) -> tuple[str, list[Message]]:
    channel = emu.add_channel(type="email")
    return channel, emu.add_messages(channel, 50, seed=7)


def assert_knock_error(status: int, body: bytes) -> dict[str, Any]:
    assert 400 <= status < 500, (status, body[:200])
    parsed: dict[str, Any] = json.loads(body)
    if parsed != UNROUTED_BODY:
        keys = {"code", "message", "status", "type"}
        assert set(parsed) == (keys | {"errors"} if status == 422 else keys)
        assert parsed["status"] == status
        assert "Traceback" not in parsed["message"]
    return parsed


def assert_untouched(emu: KnockEmulator, channel: str, before: list[Message]) -> None:
    assert emu.messages(channel) == before
    assert emu.operations() == []
    assert emu.stats.responses[500] == 0


BAD_BODIES: list[tuple[bytes, int]] = [
    (b"{", 400),
    (b'{"archived": "include",}', 400),
    (b"\xff\xfe{}", 400),
    (b'{"has_tenant": NaN}', 400),
    (b"[" * 100_000 + b"]" * 100_000, 400),
    (b'{"trigger_data": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001, 400),
    (json.dumps({"trigger_data": '{"a": ' * 100_000 + "1" + "}" * 100_000}).encode(), 422),
    (json.dumps({"trigger_data": '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"}).encode(), 422),
    (b'{"tenants": ["\\ud800"]}', 400),
    (b'{"trigger_data": "{\\"k\\": \\"\\udfff\\"}"}', 400),
    (b'{"\\ud800": 1}', 400),
    ('{"tenants": ["a"]}'.encode("utf-16"), 400),
    ('{"tenants": ["\u00e9"]}'.encode("latin-1"), 400),
    (b'{"has_tenant": 1' + b"0" * 5000 + b"}", 400),
    (b"[]", 422),
    (b'"archive"', 422),
    (b"42", 422),
    (b"null", 422),
    (b'{"recipient_ids": [' + b",".join([b'"u"'] * 1001) + b"]}", 422),
]


@pytest.mark.parametrize(("body", "status"), BAD_BODIES, ids=lambda v: repr(v)[:30])
async def test_malformed_bodies(
    emu: KnockEmulator,
    http: aiohttp.ClientSession,
    bulk_url: Url,
    seeded: tuple[str, list[Message]],
    body: bytes,
    status: int,
) -> None:
    """Malformed JSON, non-object bodies, absurd nesting (in the body or inside trigger_data),
    lone surrogates, bodies that are not UTF-8, huge numbers and oversized lists get a 4xx."""
    channel, before = seeded
    headers = {**AUTH, "Content-Type": "application/json"}
    async with http.post(
        bulk_url(channel, "delete"), data=io.BytesIO(body), headers=headers
    ) as response:
        assert response.status == status
        assert_knock_error(response.status, await response.read())
    assert_untouched(emu, channel, before)


async def test_body_over_one_mebibyte(
    emu: KnockEmulator,
    http: aiohttp.ClientSession,
    bulk_url: Url,
    seeded: tuple[str, list[Message]],
) -> None:
    """A body over 1 MiB gets 413 with Knock's body, announced by Content-Length or not."""
    channel, before = seeded
    huge = json.dumps({"recipient_ids": ["u" * 100] * 11_000}).encode()
    assert len(huge) > 1024 * 1024
    async with http.post(
        bulk_url(channel, "delete"), data=io.BytesIO(huge), headers=AUTH
    ) as response:
        assert response.status == 413
        assert_knock_error(413, await response.read())

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 65536):
            yield huge[start : start + 65536]

    async with http.post(bulk_url(channel, "delete"), data=chunks(), headers=AUTH) as response:
        assert response.status == 413
        assert_knock_error(413, await response.read())
    assert_untouched(emu, channel, before)


async def test_body_of_exactly_one_mebibyte_is_read(
    emu: KnockEmulator,
    http: aiohttp.ClientSession,
    bulk_url: Url,
    seeded: tuple[str, list[Message]],
) -> None:
    """1 MiB itself is within the limit: the body is read and judged on its content."""
    channel, before = seeded
    prefix, suffix = b'{"trigger_data": "', b'"}'
    body = prefix + b"x" * (1024 * 1024 - len(prefix) - len(suffix)) + suffix
    async with http.post(
        bulk_url(channel, "delete"), data=io.BytesIO(body), headers=AUTH
    ) as response:
        answer = assert_knock_error(response.status, await response.read())
    assert (response.status, answer["code"]) == (422, "invalid_params")
    assert [error["field"] for error in answer["errors"]] == ["trigger_data"]
    assert_untouched(emu, channel, before)


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("POST", "/v1/channels/../messages/bulk/delete"),
        ("POST", "/v1/channels/{channel}/messages/bulk/../bulk/delete"),
        ("POST", "/v1/channels/{channel}/messages/bulk/%2e%2e"),
        ("POST", "/v1/channels/{channel}%2Fmessages/bulk/delete"),
        ("POST", "/v1/channels/{channel}%2fx/messages/bulk/delete"),
        ("POST", "/v1/channels/{channel}%5Cx/messages/bulk/delete"),
        ("POST", "/v1/channels/{channel}/messages/bulk/delete%2F"),
        ("POST", "/v1/channels/%7B{channel}%7D/messages/bulk/delete"),
        ("GET", "/v1/bulk_operations/..%2F..%2Fchannels"),
        ("GET", "/v1/bulk_operations/./x"),
        ("GET", "/v1/x/../bulk_operations/6f1d2c3b-0000-4000-8000-000000000000"),
        ("POST", "/v1/channels/{channel}/messages/bulk/delete/.."),
    ],
)
async def test_path_tricks(
    emu: KnockEmulator,
    raw: RawRequest,
    seeded: tuple[str, list[Message]],
    method: str,
    template: str,
) -> None:
    """Dot segments and encoded slashes, sent byte for byte, are never routed: 4xx, Knock body."""
    channel, before = seeded
    status, headers, body = await raw(emu.base_url, method, template.format(channel=channel), b"{}")
    assert_knock_error(status, body)
    assert headers["x-request-id"]
    assert_untouched(emu, channel, before)


async def test_many_recipient_ids_within_the_limit_work(
    emu: KnockEmulator,
    http: aiohttp.ClientSession,
    bulk_url: Url,
    seeded: tuple[str, list[Message]],
) -> None:
    """A list at the limit (1,000 ids by default) is accepted and filters correctly."""
    channel, before = seeded
    ids = [f"nobody_{n}" for n in range(999)] + [before[0].recipient_id]
    async with http.post(
        bulk_url(channel, "seen"), json={"recipient_ids": ids}, headers=AUTH
    ) as response:
        assert response.status == 200
        op = await response.json()
    cutoff = emu.clock.now() - timedelta(days=30)  # email channel: the retention window
    expected = [m for m in before if m.recipient_id == ids[-1] and m.inserted_at >= cutoff]
    # First the recipient's messages from the index, then exactly those updated.
    assert op["estimated_total_rows"] == sum(m.recipient_id == ids[-1] for m in before)
    emu.settle()
    final = emu.operation(op["id"])
    assert final.success_count == final.estimated_total_rows == len(expected)


async def test_wrong_content_type_is_still_judged_as_json(
    emu: KnockEmulator,
    http: aiohttp.ClientSession,
    bulk_url: Url,
    seeded: tuple[str, list[Message]],
) -> None:
    """A form-encoded body is not JSON: 400, nothing touched."""
    channel, before = seeded
    async with http.post(
        bulk_url(channel, "delete"), data={"archived": "only"}, headers=AUTH
    ) as response:
        assert response.status == 400
        assert_knock_error(400, await response.read())
    assert_untouched(emu, channel, before)


_JSON_LEAVES = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_FIELDS = st.sampled_from([*sorted(wire_kinds()), "unknown", ""])
_BODIES = (
    st.binary(max_size=200)
    | _JSON.map(lambda value: json.dumps(value).encode())
    | st.dictionaries(_FIELDS, _JSON | st.text(max_size=30), max_size=5).map(
        lambda value: json.dumps(value).encode()
    )
)


@settings(max_examples=300, deadline=None)
@given(raw=_BODIES, strict=st.booleans())
def test_any_body_is_a_filter_set_or_a_knock_4xx(raw: bytes, strict: bool) -> None:
    """Whatever bytes a client sends as a bulk update body, parsing gives filters or a 400/422
    with Knock's body (never another exception, which would be a 500)."""
    refused: KnockHTTPError | None = None
    try:
        parsed = parse_bulk_body(raw, max_list_items=1000, strict=strict)
    except KnockHTTPError as exc:
        refused = exc
    if refused is None:
        assert not (strict and parsed.ignored_fields)
    else:
        assert refused.status in (400, 422)
        assert {"code", "message", "status", "type"} <= set(refused.body)
        json.dumps(refused.body)  # the body can always be sent
