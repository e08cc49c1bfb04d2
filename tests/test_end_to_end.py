"""The client against the embedded emulator, end to end: the store really changes.

These use the `knock_emulator` pytest fixture that `knock_async.testing` registers, with a
ManualClock shared by the client (`emu.client()`): every request crosses a real socket, and time
moves only when the client sleeps, so what the client sees is the same however loaded the
machine is (a FastClock's real time let a busy machine skip every `processing` snapshot).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

import knock_async as ka
from knock_async.testing import KnockEmulator, ManualClock

CLOCK = ManualClock


def client(emu: KnockEmulator, key: str = "sk_test_e2e") -> ka.KnockClient:
    # The fixture's emulator runs on a ManualClock of its own: emu.client() shares it.
    return emu.client(api_key=key)


@pytest.mark.knock_emulator(clock=CLOCK, rows_per_second=500.0, strict=True)
async def test_filters_select_exactly_the_matching_messages(
    knock_emulator: KnockEmulator,
) -> None:
    """An archive with several filters changes exactly the messages they match, no others."""
    emu = knock_emulator
    channel = emu.add_channel(type="in_app_feed")
    now = emu.clock.now()
    old, recent = now - timedelta(days=10), now - timedelta(hours=1)
    match = emu.add_message(channel, recipient_id="u1", tenant="acme", inserted_at=old,
                            data={"plan": "pro"}, read_at=old)  # fmt: skip
    emu.add_message(channel, recipient_id="u2", tenant="acme", inserted_at=old,
                    data={"plan": "pro"}, read_at=old)  # fmt: skip
    emu.add_message(channel, recipient_id="u1", tenant=None, inserted_at=old,
                    data={"plan": "pro"}, read_at=old)  # fmt: skip
    emu.add_message(channel, recipient_id="u1", tenant="acme", inserted_at=recent,
                    data={"plan": "pro"}, read_at=old)  # fmt: skip
    emu.add_message(channel, recipient_id="u1", tenant="acme", inserted_at=old,
                    data={"plan": "free"}, read_at=old)  # fmt: skip
    emu.add_message(channel, recipient_id="u1", tenant="acme", inserted_at=old,
                    data={"plan": "pro"})  # unread  # fmt: skip
    emu.add_messages(channel, 200, seed=7)
    archived_before = {m.id for m in emu.messages(channel) if m.archived_at is not None}

    async with client(emu) as knock:
        op = await knock.channels.bulk.update_message_status(
            channel,
            "archive",
            archived="exclude",
            engagement_status="read",
            has_tenant=True,
            older_than=now - timedelta(days=1),
            recipient_ids=["u1"],
            tenants=["acme"],
            trigger_data={"plan": "pro"},
        )
        final = await knock.bulk_operations.poll(op)

    assert final.status == "completed"
    archived = {m.id for m in emu.messages(channel) if m.archived_at is not None}
    assert match.id in archived
    # The operation's count is what changed in the store.
    assert final.success_count == len(archived - archived_before)
    # Of the six hand-made messages, each differing from the match in one filter, only the
    # match was archived.
    assert [m.id for m in emu.messages(channel)[:6] if m.archived_at is not None] == [match.id]


@pytest.mark.knock_emulator(clock=CLOCK, rows_per_second=200.0, strict=True)
async def test_progress_is_reported_while_the_operation_runs(
    knock_emulator: KnockEmulator,
) -> None:
    """Polling a slow operation yields processing snapshots with a rate and an ETA, then the
    terminal one; every message ends read."""
    channel = knock_emulator.add_channel(type="in_app_feed")
    knock_emulator.add_messages(channel, 1_000, seed=3)
    async with client(knock_emulator) as knock:
        op = await knock.channels.bulk.update_message_status(channel, "read")
        snapshots = [p async for p in knock.bulk_operations.poll(op)]
    assert snapshots[-1].status == "completed"
    running = [p for p in snapshots if p.status == "processing"]
    assert running
    assert any(p.rows_per_second and p.eta for p in running)
    assert all(m.read_at is not None for m in knock_emulator.messages(channel))


@pytest.mark.knock_emulator(clock=CLOCK, strict=True)
async def test_transient_faults_are_ridden_out(knock_emulator: KnockEmulator) -> None:
    """Two polls answered 503 and one 429 do not end the poll."""
    channel = knock_emulator.add_channel(type="email")
    knock_emulator.add_messages(channel, 50, seed=1)
    knock_emulator.faults.add("GET", "/v1/bulk_operations/{id}", status=503, times=2)
    knock_emulator.faults.add("GET", "/v1/bulk_operations/{id}", status=429, times=1)
    async with client(knock_emulator) as knock:
        op = await knock.channels.bulk.update_message_status(channel, "seen")
        final = await knock.bulk_operations.poll(op)
    assert final.status == "completed"
    assert knock_emulator.stats.responses[503] == 2


@pytest.mark.knock_emulator(clock=CLOCK, strict=True)
async def test_an_operation_failing_part_way(knock_emulator: KnockEmulator) -> None:
    """A failed operation raises BulkOperationFailedError from await, with its error items."""
    channel = knock_emulator.add_channel(type="in_app_feed")
    knock_emulator.add_messages(channel, 100, seed=2)
    knock_emulator.faults.fail_next_operation(after_rows=40, channel_id=channel)
    async with client(knock_emulator) as knock:
        op = await knock.channels.bulk.update_message_status(channel, "read")
        with pytest.raises(ka.BulkOperationFailedError) as info:
            await knock.bulk_operations.poll(op)
    assert info.value.progress is not None
    failed = info.value.progress.operation
    assert failed.failed_at is not None
    assert failed.error_items


@pytest.mark.knock_emulator(api_keys=["sk_right", "pk_public"], strict=True)
async def test_a_bad_key_and_an_unknown_channel(knock_emulator: KnockEmulator) -> None:
    """An unknown key and a public key are AuthenticationErrors (api_key_missing,
    incorrect_token_type), an unknown channel a NotFoundError, each with a request id."""
    channel = "00000000-0000-4000-8000-000000000001"
    for key, error, code in (
        ("sk_wrong", ka.AuthenticationError, "api_key_missing"),
        ("pk_public", ka.AuthenticationError, "incorrect_token_type"),
        ("sk_right", ka.NotFoundError, "resource_missing"),
    ):
        async with client(knock_emulator, key) as knock:
            with pytest.raises(error) as info:
                await knock.channels.bulk.update_message_status(channel, "read")
        assert info.value.code == code
        assert info.value.request_id
        assert key not in str(info.value)
