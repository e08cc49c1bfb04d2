"""Knock's official SDK (knockapi), unmodified, against the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import knockapi
import pytest
from knockapi import AsyncKnock

from knock_async.testing import KnockEmulator

API_KEY = "sk_test_emulator"


async def test_sdk_bulk_update_and_get(emu: KnockEmulator) -> None:
    """AsyncKnock with base_url set to the emulator runs a bulk update with filters and reads
    the bulk operation back until it completes; the messages really change."""
    channel = emu.add_channel(type="in_app_feed")
    before = {m.id: m for m in emu.add_messages(channel, 60, seed=0)}
    expected = {
        m.id
        for m in before.values()
        if m.archived_at is None and m.tenant is not None and m.data["priority"] == "high"
    }
    assert expected
    async with AsyncKnock(api_key=API_KEY, base_url=emu.base_url, max_retries=0) as knock:
        operation = await knock.channels.bulk.update_message_status(
            channel,
            "archive",
            archived="exclude",
            has_tenant=True,
            older_than=datetime.now(UTC) + timedelta(days=1),
            trigger_data='{"priority":"high"}',
        )
        assert operation.status == "queued"
        assert operation.api_typename == "BulkOperation"
        assert operation.progress_path == f"/v1/bulk_operations/{operation.id}"
        emu.settle()
        final = await knock.bulk_operations.get(operation.id)
    assert final.status == "completed"
    assert final.id == operation.id
    assert final.success_count == final.estimated_total_rows
    assert final.completed_at is not None
    assert final.success_count == len(expected)
    changed = {m.id for m in emu.messages(channel) if m != before[m.id]}
    assert changed == expected
    assert all(emu.message(i).archived_at is not None for i in expected)  # type: ignore[union-attr]
    sent = emu.requests[0]
    assert sent.headers["authorization"] == "Bearer [REDACTED]"
    assert sent.json()["trigger_data"] == '{"priority":"high"}'


async def test_sdk_sees_knocks_errors(emu: KnockEmulator) -> None:
    """The SDK maps the emulator's error answers to its own exception classes."""
    channel = emu.add_channel()
    async with AsyncKnock(api_key=API_KEY, base_url=emu.base_url, max_retries=0) as knock:
        with pytest.raises(knockapi.NotFoundError):
            await knock.bulk_operations.get("6f1d2c3b-0000-4000-8000-000000000000")
        with pytest.raises(knockapi.UnprocessableEntityError) as info:
            await knock.channels.bulk.update_message_status(channel, "explode")  # type: ignore[arg-type]
        assert "action" in str(info.value)
    async with AsyncKnock(api_key="pk_public", base_url=emu.base_url, max_retries=0) as knock:
        with pytest.raises(knockapi.AuthenticationError, match="incorrect_token_type"):
            await knock.channels.bulk.update_message_status(channel, "read")
