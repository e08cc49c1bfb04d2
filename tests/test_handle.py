"""BulkOperationHandle: a secret-free JSON reference that resumes polling anywhere."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import knock_async as ka
from knock_async._convert import structure_operation
from tests._support import API_KEY, CHANNEL_ID, OPERATION_ID, FakeKnock, operation

MakeClient = Callable[..., ka.KnockClient]


@given(
    operation_id=st.text(min_size=1),
    progress_path=st.none() | st.text(),
    channel_id=st.none() | st.uuids().map(str),
    action=st.none() | st.sampled_from([a.value for a in ka.BulkAction]),
)
def test_json_round_trip(
    operation_id: str, progress_path: str | None, channel_id: str | None, action: str | None
) -> None:
    """Any handle survives to_json -> from_json unchanged."""
    handle = ka.BulkOperationHandle(
        operation_id=operation_id, progress_path=progress_path, channel_id=channel_id, action=action
    )
    assert ka.BulkOperationHandle.from_json(handle.to_json()) == handle


def test_handle_holds_nothing_secret() -> None:
    """The handle's JSON is the id and the progress path: no key, no base URL."""
    op = structure_operation(operation())
    assert json.loads(op.handle.to_json()) == {
        "v": 1,
        "operation_id": OPERATION_ID,
        "progress_path": f"/v1/bulk_operations/{OPERATION_ID}",
    }


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("not json", ValueError, "a handle must be JSON"),
        ("[1]", ValueError, "a handle must be a JSON object"),
        ('{"v": 2, "operation_id": "x"}', ValueError, "unsupported handle version 2"),
        ('{"v": 1}', ValueError, "a handle needs an operation_id"),
        ('{"v": 1, "operation_id": ""}', ValueError, "operation_id must be a non-empty string"),
        ('{"v": 1, "operation_id": "x", "api_key": "sk"}', ValueError, "unknown handle fields"),
        ('{"v": 1, "operation_id": "x", "progress_path": 5}', ValueError, "progress_path must be"),
        ("[" * 100_000, ValueError, "a handle must be JSON: nested too deeply"),
        ('{"v": 1, "operation_id": {"a": 1}}', ValueError, "operation_id must be a non-empty"),
        ('{"v": 1, "operation_id": "x", "channel_id": []}', ValueError, "channel_id must be"),
        (b"\xff\xfe", ValueError, "a handle must be JSON"),
    ],
)
def test_bad_handles(text: str | bytes, error: type[Exception], message: str) -> None:
    """Any malformed handle text (wrong shape, wrong types, absurd nesting, bad bytes) is
    refused with a ValueError that says what is wrong."""
    with pytest.raises(error, match=message) as info:
        ka.BulkOperationHandle.from_json(text)
    assert type(info.value) is ValueError


async def test_resume_from_another_client(fake_knock: FakeKnock, make_client: MakeClient) -> None:
    """A handle from one client's update is followed to the end by another client instance."""
    async with make_client() as web_request_client:
        op = await web_request_client.channels.bulk.update_message_status(CHANNEL_ID, "archive")
    text = op.handle.to_json()
    assert API_KEY not in text
    fake_knock.progress_of({"status": "processing", "processed_rows": 10})
    async with make_client() as worker_client:
        poller = worker_client.bulk_operations.poll(ka.BulkOperationHandle.from_json(text))
        assert poller.operation_id == OPERATION_ID
        final = await poller
    assert final.status == "completed"
    assert fake_knock.requests[-1].path == f"/v1/bulk_operations/{OPERATION_ID}"


async def test_handles_come_out_of_progress_and_errors(
    fake_knock: FakeKnock, make_client: MakeClient
) -> None:
    """Progress snapshots and poll errors carry the handle that resumes the poll."""
    fake_knock.progress_of(*[{"status": "processing", "processed_rows": 10}] * 5)
    async with make_client() as knock:
        poller = knock.bulk_operations.poll(OPERATION_ID, timeout=2.0)
        with pytest.raises(ka.PollTimeoutError) as info:
            await poller
    assert info.value.handle.operation_id == OPERATION_ID
    assert poller.last_progress is not None
    assert poller.last_progress.handle == info.value.handle
