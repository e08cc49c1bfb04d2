"""GET /v1/bulk_operations/{id}, unrouted paths, and the emulator's lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from knock_async.testing import KnockEmulator, ManualClock

AUTH = {"Authorization": "Bearer sk_test_emulator"}
UNROUTED_BODY = {"errors": {"detail": "404 Not Found"}}
Validator = Callable[[Any], None]  # the valid_operation / valid_error fixtures

Url = Callable[[str, str], str]
OpUrl = Callable[[str], str]


async def get_json(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with http.get(url, headers=AUTH if headers is None else headers) as response:
        assert response.headers["x-request-id"]
        return response.status, await response.json()


async def start_operation(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url, count: int = 25
) -> dict[str, Any]:
    channel = emu.add_channel()
    emu.add_messages(channel, count)
    async with http.post(bulk_url(channel, "seen"), json={}, headers=AUTH) as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
    return body


async def test_operation_progresses_as_the_clock_moves(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url, valid_operation: Validator
) -> None:
    """Polling progress_path shows queued, then processing with growing counts, then
    completed, each answer spec-valid with consistent timestamps."""
    op = await start_operation(emu, http, bulk_url, count=25)
    seen = []
    for step in (0.0, 0.05, 0.1, 0.1, 0.1):
        emu.advance(step)
        status, body = await get_json(http, emu.base_url + op["progress_path"])
        assert status == 200
        valid_operation(body)
        seen.append((body["status"], body["processed_rows"]))
    assert seen == [
        ("queued", 0),
        ("processing", 0),
        ("processing", 10),
        ("processing", 20),
        ("completed", 25),
    ]
    stamps = {
        k: datetime.fromisoformat(body[k])
        for k in ("inserted_at", "started_at", "completed_at", "updated_at")
    }
    assert (
        stamps["inserted_at"]
        < stamps["started_at"]
        < stamps["completed_at"]
        == stamps["updated_at"]
    )
    assert body["success_count"] == 25
    assert body["failed_at"] is None


async def test_unknown_operation_is_404(
    emu: KnockEmulator, http: aiohttp.ClientSession, operation_url: OpUrl, valid_error: Validator
) -> None:
    """An unknown id, well-formed or not, answers 404 resource_missing."""
    for operation_id in ("6f1d2c3b-0000-4000-8000-000000000000", "nope"):
        status, body = await get_json(http, operation_url(operation_id))
        assert (status, body["code"]) == (404, "resource_missing")
        valid_error(body)


async def test_get_needs_a_secret_key(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """GET without a key is 401 api_key_missing; with a public key 401 incorrect_token_type."""
    op = await start_operation(emu, http, bulk_url)
    url = emu.base_url + op["progress_path"]
    assert (await get_json(http, url, {}))[1]["code"] == "api_key_missing"
    status, body = await get_json(http, url, {"Authorization": "Bearer pk_x"})
    assert (status, body["code"]) == (401, "incorrect_token_type")


async def test_get_rate_limit_is_200_per_second(
    clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    """The 201st GET within a second is refused with 429."""
    async with KnockEmulator(clock=clock) as emu:
        url = f"{emu.base_url}/v1/bulk_operations/6f1d2c3b-0000-4000-8000-000000000000"
        statuses = [(await get_json(http, url))[0] for _ in range(201)]
    assert statuses.count(404) == 200
    assert statuses[-1] == 429


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/v1/channels"),
        ("GET", "/v1/channels/6f1d2c3b-0000-4000-8000-000000000000/messages/bulk/read"),
        ("POST", "/v1/bulk_operations/6f1d2c3b-0000-4000-8000-000000000000"),
        ("HEAD", "/v1/bulk_operations/6f1d2c3b-0000-4000-8000-000000000000"),
        ("DELETE", "/v1/bulk_operations/6f1d2c3b-0000-4000-8000-000000000000"),
        ("POST", "/v1/channels/6f1d2c3b-0000-4000-8000-000000000000/messages/bulk/read/extra"),
    ],
)
async def test_unrouted_requests_get_knocks_404(
    emu: KnockEmulator, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    """Unknown paths, and known paths with another method, answer 404 {"errors": ...}."""
    async with http.request(method, emu.base_url + path, headers=AUTH) as response:
        assert response.status == 404
        assert response.headers["x-request-id"]
        if method != "HEAD":
            assert await response.json() == UNROUTED_BODY


async def test_request_ids_are_unique(emu: KnockEmulator, http: aiohttp.ClientSession) -> None:
    """Every response carries its own x-request-id, matching the request log."""
    ids = set()
    for _ in range(5):
        async with http.get(emu.base_url + "/x", headers=AUTH) as response:
            ids.add(response.headers["x-request-id"])
    assert len(ids) == 5
    assert {r.request_id for r in emu.requests} == ids


async def test_app_factory_works_with_aiohttp_server(
    aiohttp_server: Callable[..., Awaitable[TestServer]], http: aiohttp.ClientSession
) -> None:
    """emu.make_app() serves under pytest-aiohttp; an absolute progress_path
    (progress_origin=None) follows that server's origin."""
    emu = KnockEmulator(clock=ManualClock(), rate_limits=False, progress_origin=None)
    server = await aiohttp_server(emu.make_app())
    channel = emu.add_channel()
    base = str(server.make_url("")).rstrip("/")
    async with http.post(
        f"{base}/v1/channels/{channel}/messages/bulk/read", json={}, headers=AUTH
    ) as response:
        body = await response.json()
    assert body["progress_path"] == f"{base}/v1/bulk_operations/{body['id']}"
    emu.settle()
    status, got = await get_json(http, body["progress_path"])
    assert (status, got["status"]) == (200, "completed")
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.base_url


async def test_lifecycle(http: aiohttp.ClientSession) -> None:
    """start() listens on loopback, a second start() is refused, close() stops serving and
    keeps the state readable, and base_url is refused when not running."""
    emu = KnockEmulator()
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.base_url
    await emu.start()
    try:
        assert emu.base_url.startswith("http://127.0.0.1:")
        assert "127.0.0.1" in repr(emu)
        with pytest.raises(RuntimeError, match="already running"):
            await emu.start()
        channel = emu.add_channel()
        base = emu.base_url
    finally:
        await emu.close()
    await emu.close()  # idempotent
    assert emu.messages(channel) == []
    with pytest.raises(aiohttp.ClientConnectionError):
        await http.get(base + "/")


async def test_real_clock_operations_finish_by_themselves(http: aiohttp.ClientSession) -> None:
    """With the default system clock, an operation completes without anyone moving time."""
    async with KnockEmulator(rows_per_second=1e6, queue_delay=0.0) as emu:
        channel = emu.add_channel()
        emu.add_messages(channel, 200)
        url = f"{emu.base_url}/v1/channels/{channel}/messages/bulk/read"
        async with http.post(url, json={}, headers=AUTH) as response:
            op = await response.json()
        for _ in range(100):
            _, body = await get_json(http, emu.base_url + op["progress_path"])
            if body["status"] == "completed":
                break
            await asyncio.sleep(0.01)
    assert body["status"] == "completed"
    assert body["success_count"] == 200
