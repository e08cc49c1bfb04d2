"""Shared fixtures for the emulator's tests: a manual clock, a running emulator, a session,
and validators built from the project's copy of the spec (tests/spec)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import yaml
from yarl import URL

from knock_async.testing import KnockEmulator, ManualClock

SPEC_PATH = Path(__file__).resolve().parent.parent / "spec" / "knock-channels.openapi.yaml"
API_KEY = "sk_test_emulator"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

Validator = Callable[[Any], None]


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    """The OpenAPI document, parsed."""
    with SPEC_PATH.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


def to_json_schema(schema: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable: true`` becomes a ``null`` type, and
    ``x-*`` extensions are dropped."""
    if isinstance(schema, list):
        return [to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: to_json_schema(v) for k, v in schema.items() if not k.startswith("x-")}
    if out.pop("nullable", False) is True:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    out.pop("example", None)
    return out


_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    """An absolute URI, or an absolute path: the spec says ``uri`` for ``progress_path``, but
    every answer Knock documents carries a relative ``/v1/bulk_operations/<id>``."""
    if not isinstance(value, str):
        return True
    url = URL(value)
    if not url.is_absolute():
        return value.startswith("/") and not value.startswith("//") and url.path == value
    return bool(url.scheme) and bool(url.host)


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value)
    return "T" in value and parsed.tzinfo is not None


def _validator(schema: dict[str, Any]) -> Validator:
    checker = jsonschema.Draft202012Validator(schema, format_checker=_FORMATS)

    def validate(instance: Any) -> None:
        errors = sorted(checker.iter_errors(instance), key=lambda e: list(e.path))
        assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors)

    return validate


@pytest.fixture(scope="session")
def operation_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's ``BulkOperation`` schema as strict JSON Schema (no key the spec lacks)."""
    schema: dict[str, Any] = to_json_schema(
        copy.deepcopy(spec["components"]["schemas"]["BulkOperation"])
    )
    schema["additionalProperties"] = False
    schema["properties"]["error_items"]["items"]["additionalProperties"] = False
    return schema


@pytest.fixture(scope="session")
def valid_operation(operation_schema: dict[str, Any]) -> Validator:
    """Asserts that a JSON value is a spec-conformant ``BulkOperation``."""
    return _validator(operation_schema)


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message", "status", "type"],
    "additionalProperties": False,
    "properties": {
        "code": {"type": "string", "minLength": 1},
        "message": {"type": "string", "minLength": 1},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "type": {"type": "string", "minLength": 1},
        # Knock's 422 lists each invalid field.
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["field", "message", "type"],
                "additionalProperties": False,
                "properties": {
                    "field": {"type": "string", "minLength": 1},
                    "message": {"type": "string", "minLength": 1},
                    "type": {"type": "null"},
                },
            },
        },
    },
}
UNROUTED_BODY = {"errors": {"detail": "404 Not Found"}}


@pytest.fixture(scope="session")
def valid_error() -> Validator:
    """Asserts that a JSON value is Knock's four-key error body."""
    return _validator(ERROR_SCHEMA)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def emu(clock: ManualClock) -> AsyncIterator[KnockEmulator]:
    """A running emulator on a manual clock: 100 rows/s in batches of 10, 50 ms queue delay,
    rate limits off (tests of rate limits build their own), strict about unknown fields."""
    async with KnockEmulator(
        clock=clock,
        rows_per_second=100,
        batch_size=10,
        queue_delay=0.05,
        rate_limits=False,
        strict=True,
    ) as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
def bulk_url(emu: KnockEmulator) -> Callable[[str, str], str]:
    """``bulk_url(channel_id, action)``: the emulator's bulk update URL."""
    return lambda channel_id, action: (
        f"{emu.base_url}/v1/channels/{channel_id}/messages/bulk/{action}"
    )


@pytest.fixture
def operation_url(emu: KnockEmulator) -> Callable[[str], str]:
    """``operation_url(id)``: the emulator's bulk operation URL."""
    return lambda operation_id: f"{emu.base_url}/v1/bulk_operations/{id}"


RawResponse = tuple[int, dict[str, str], bytes]
RawRequest = Callable[..., Awaitable[RawResponse]]


@pytest.fixture
def raw() -> RawRequest:
    """``await raw(base_url, method, target, body=b"", headers=None)``: a request sent byte for
    byte over a socket, for paths a client library would normalise."""
    return raw_request


async def raw_request(
    base_url: str,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send ``target`` byte for byte (no client-side normalisation); status, headers, body."""
    url = URL(base_url)
    assert url.host is not None
    assert url.port is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {url.host}:{url.port}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in {**AUTH, **(headers or {})}.items()]
        lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, payload = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, payload
