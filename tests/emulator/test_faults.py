"""Scripted faults: HTTP misbehaviour per route, and operations that fail or get stuck."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from knock_async.testing import BULK_OPERATION_ROUTE, BULK_UPDATE_ROUTE, KnockEmulator

AUTH = {"Authorization": "Bearer sk_test_emulator"}
Validator = Callable[[Any], None]  # the valid_operation / valid_error fixtures

Url = Callable[[str, str], str]


async def new_operation(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url, count: int = 20
) -> dict[str, Any]:
    channel = emu.add_channel()
    emu.add_messages(channel, count)
    async with http.post(bulk_url(channel, "read"), json={}, headers=AUTH) as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def poll(http: aiohttp.ClientSession, url: str) -> tuple[int, aiohttp.ClientResponse, bytes]:
    async with http.get(url, headers=AUTH) as response:
        return response.status, response, await response.read()


async def test_next_two_polls_answer_503(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url, valid_error: Validator
) -> None:
    """One line scripts two 503s for the poll route; the third poll is normal again."""
    op = await new_operation(emu, http, bulk_url)
    emu.faults.add("GET", BULK_OPERATION_ROUTE, status=503, times=2)
    results = [await poll(http, emu.base_url + op["progress_path"]) for _ in range(3)]
    assert [status for status, _, _ in results] == [503, 503, 200]
    body = json.loads(results[0][2])
    valid_error(body)
    assert body["status"] == 503
    assert results[0][1].headers["x-request-id"]
    assert emu.faults.pending == 0
    assert emu.stats.faults == 2
    assert [r.fault for r in emu.requests[-3:]] == [True, True, False]


async def test_faults_apply_in_order(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """Faults for the same route are used up in the order they were scripted."""
    op = await new_operation(emu, http, bulk_url)
    emu.faults.add("GET", BULK_OPERATION_ROUTE, status=500)
    emu.faults.add("GET", BULK_OPERATION_ROUTE, status=429)
    emu.faults.add("*", "*", status=502)
    assert emu.faults.pending == 3
    statuses = [(await poll(http, emu.base_url + op["progress_path"]))[0] for _ in range(4)]
    assert statuses == [500, 429, 502, 200]


async def test_429_with_and_without_retry_after(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """A scripted 429 carries Retry-After only when asked: seconds or an HTTP date."""
    op = await new_operation(emu, http, bulk_url)
    emu.faults.add("GET", BULK_OPERATION_ROUTE, status=429)
    emu.faults.add("GET", BULK_OPERATION_ROUTE, status=429, retry_after=2)
    emu.faults.add("GET", BULK_OPERATION_ROUTE, status=429, retry_after=0.5)
    emu.faults.add(
        "GET",
        BULK_OPERATION_ROUTE,
        status=429,
        retry_after=datetime(2025, 1, 1, 0, 0, 3, tzinfo=UTC),
    )
    emu.faults.add("GET", BULK_OPERATION_ROUTE, status=429, headers={"retry-after-ms": "150"})
    headers = [(await poll(http, emu.base_url + op["progress_path"]))[1].headers for _ in range(5)]
    assert "Retry-After" not in headers[0]
    assert headers[1]["Retry-After"] == "2"
    assert headers[2]["Retry-After"] == "0.5"
    assert headers[3]["Retry-After"] == "Wed, 01 Jan 2025 00:00:03 GMT"
    assert headers[4]["retry-after-ms"] == "150"


async def test_fault_on_one_path_only(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """A fault scripted for a concrete path leaves other operations' polls alone."""
    first = await new_operation(emu, http, bulk_url)
    second = await new_operation(emu, http, bulk_url)
    emu.faults.add("GET", f"/v1/bulk_operations/{second['id']}", status=500)
    assert (await poll(http, emu.base_url + first["progress_path"]))[0] == 200
    assert (await poll(http, emu.base_url + second["progress_path"]))[0] == 500


async def test_custom_body(emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url) -> None:
    """A scripted status may come with any body (e.g. a proxy's HTML page)."""
    op = await new_operation(emu, http, bulk_url)
    emu.faults.add("GET", BULK_OPERATION_ROUTE, status=502, body="<html>Bad gateway</html>")
    status, _, body = await poll(http, emu.base_url + op["progress_path"])
    assert (status, body) == (502, b"<html>Bad gateway</html>")


async def test_delay_then_normal_answer(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """A delay alone holds the answer back (real seconds) and then answers normally; a client
    with a shorter timeout times out."""
    op = await new_operation(emu, http, bulk_url)
    emu.faults.add("GET", BULK_OPERATION_ROUTE, delay=0.05)
    assert (await poll(http, emu.base_url + op["progress_path"]))[0] == 200
    emu.faults.add("GET", BULK_OPERATION_ROUTE, delay=0.3)
    with pytest.raises(TimeoutError):
        async with http.get(
            emu.base_url + op["progress_path"],
            headers=AUTH,
            timeout=aiohttp.ClientTimeout(total=0.05),
        ):
            pass


async def test_drop_closes_the_connection(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """drop=True closes the connection with no answer: nothing is created."""
    channel = emu.add_channel()
    emu.faults.add("POST", BULK_UPDATE_ROUTE, drop=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.post(bulk_url(channel, "read"), json={}, headers=AUTH):
            pass
    assert emu.operations() == []
    assert emu.requests[-1].status is None
    assert emu.stats.dropped == 1


async def test_answer_lost_after_the_operation_started(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """after_handling=True runs the POST for real, then drops the answer: an operation exists
    that the client never heard of (why a bulk POST is not blindly retried)."""
    channel = emu.add_channel()
    emu.faults.add("POST", BULK_UPDATE_ROUTE, drop=True, after_handling=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.post(bulk_url(channel, "read"), json={}, headers=AUTH):
            pass
    assert len(emu.operations()) == 1
    emu.faults.add("POST", BULK_UPDATE_ROUTE, status=504, after_handling=True)
    async with http.post(bulk_url(channel, "read"), json={}, headers=AUTH) as response:
        assert response.status == 504
    assert len(emu.operations()) == 2


async def test_invalid_json(emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url) -> None:
    """invalid_json=True answers 200 with a body that does not parse."""
    op = await new_operation(emu, http, bulk_url)
    emu.faults.add("GET", BULK_OPERATION_ROUTE, invalid_json=True)
    status, response, body = await poll(http, emu.base_url + op["progress_path"])
    assert status == 200
    assert response.content_type == "application/json"
    with pytest.raises(ValueError, match=r"Unterminated|Expecting"):
        json.loads(body)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("GET", "/v1/nope/{id}"), {"status": 500}, "unknown route template"),
        (("PUT", BULK_OPERATION_ROUTE), {"status": 500}, "method"),
        (("GET", "v1/bulk_operations"), {"status": 500}, "route"),
        (("GET", BULK_OPERATION_ROUTE), {}, "needs"),
        (("GET", BULK_OPERATION_ROUTE), {"status": 500, "drop": True}, "at most one"),
        (("GET", BULK_OPERATION_ROUTE), {"status": 500, "times": 0}, "times"),
        (("GET", BULK_OPERATION_ROUTE), {"status": 99}, "status"),
        (("GET", BULK_OPERATION_ROUTE), {"drop": True, "retry_after": 1}, "retry_after"),
        (("GET", BULK_OPERATION_ROUTE), {"delay": -1}, "delay"),
    ],
)
def test_fault_script_is_checked(
    args: tuple[str, str], kwargs: dict[str, Any], message: str
) -> None:
    """Typos in a fault script fail loudly when it is written, not silently at request time."""
    with pytest.raises(ValueError, match=message):
        KnockEmulator().faults.add(*args, **kwargs)


async def test_operation_fails_part_way(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url, valid_operation: Validator
) -> None:
    """fail_next_operation(after_rows=5): the next operation ends failed with an error item."""
    emu.faults.fail_next_operation(after_rows=5)
    op = await new_operation(emu, http, bulk_url)
    emu.settle()
    status, _, raw = await poll(http, emu.base_url + op["progress_path"])
    assert status == 200
    body = json.loads(raw)
    valid_operation(body)
    assert (body["status"], body["processed_rows"], body["success_count"]) == ("failed", 6, 5)
    assert body["error_count"] == 1
    assert len(body["error_items"]) == 1
    assert body["failed_at"] is not None
    assert body["completed_at"] is None
    second = await new_operation(emu, http, bulk_url)
    emu.settle()
    assert emu.operation(second["id"]).status == "completed"


async def test_operation_gets_stuck(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """stick_next_operation(after_rows=10): processing stops there for good."""
    emu.faults.stick_next_operation(after_rows=10)
    op = await new_operation(emu, http, bulk_url, count=30)
    emu.settle()
    emu.advance(3600)
    got = emu.operation(op["id"])
    assert (got.status, got.processed_rows) == ("processing", 10)


async def test_operation_faults_can_target_a_channel(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """An operation fault for one channel skips operations on other channels."""
    target = emu.add_channel()
    emu.faults.fail_next_operation(channel_id=target, times=2)
    other = await new_operation(emu, http, bulk_url)
    async with http.post(bulk_url(target, "read"), json={}, headers=AUTH) as response:
        targeted = await response.json()
    emu.settle()
    assert emu.operation(other["id"]).status == "completed"
    assert emu.operation(targeted["id"]).status == "failed"


async def test_failing_messages(
    emu: KnockEmulator, http: aiohttp.ClientSession, bulk_url: Url
) -> None:
    """fail_messages([...]): those rows become error_items and the operation still completes."""
    channel = emu.add_channel()
    messages = emu.add_messages(channel, 12)
    emu.faults.fail_messages([messages[0].id, messages[5].id])
    async with http.post(bulk_url(channel, "archive"), json={}, headers=AUTH) as response:
        op = await response.json()
    emu.settle()
    got = emu.operation(op["id"])
    assert (got.status, got.success_count, got.error_count) == ("completed", 10, 2)
    assert {item.id for item in got.error_items} == {messages[0].id, messages[5].id}
    with pytest.raises(TypeError):
        emu.faults.fail_messages("abc")


def test_clear_forgets_everything() -> None:
    """faults.clear() drops HTTP, operation and message faults."""
    faults = KnockEmulator().faults
    faults.add("GET", BULK_OPERATION_ROUTE, status=500, times=3)
    faults.fail_next_operation()
    faults.fail_messages(["m"])
    faults.clear()
    assert faults.pending == 0
    assert faults.take_plan("c") is None
    assert not faults.message_fails("m")
