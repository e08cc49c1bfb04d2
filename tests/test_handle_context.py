"""``op.handle`` carries the channel and the action the client sent, and they stay off the wire."""

from __future__ import annotations

import json
from pathlib import Path

import attrs

import knock_async as ka
from knock_async._convert import converter, structure_operation
from knock_async.testing import FastClock, KnockEmulator, ManualClock

SAMPLE = Path(__file__).parent / "samples" / "bulk_operation_queued.json"


async def test_the_operation_from_an_update_knows_its_channel_and_action() -> None:
    """The handle of what ``update_message_status`` returned names the channel and the action
    (as its string value, also when an enum was passed), and survives JSON for a worker."""
    async with KnockEmulator(clock=ManualClock()) as emu:
        channel_id = emu.add_channel()
        emu.add_messages(channel_id, 10, seed=0)
        async with ka.KnockClient(api_key="sk_test", base_url=emu.base_url) as knock:
            op = await knock.channels.bulk.update_message_status(channel_id, ka.BulkAction.ARCHIVE)
            handle = op.handle
            assert (handle.channel_id, handle.action) == (channel_id, "archive")
            assert handle.operation_id == op.id
            again = ka.BulkOperationHandle.from_json(handle.to_json())
            assert again == handle
            emu.settle()
            final = await knock.bulk_operations.get(again.operation_id)
            assert (final.id, final.status) == (op.id, "completed")


async def test_poll_snapshots_keep_the_channel_and_action_they_were_given() -> None:
    """Polling an operation (or its handle, as a worker would) yields snapshots, and a final
    operation, whose handles still name the channel and the action; polling a bare id knows
    neither."""
    fast = FastClock(speed=50)
    async with KnockEmulator(clock=fast) as emu:
        channel_id = emu.add_channel()
        emu.add_messages(channel_id, 50, seed=2)
        async with ka.KnockClient(
            api_key="sk_test", base_url=emu.base_url, clock=fast.monotonic, sleep=fast.sleep
        ) as knock:
            op = await knock.channels.bulk.update_message_status(channel_id, "read")
            for target in (op, ka.BulkOperationHandle.from_json(op.handle.to_json())):
                poller = knock.bulk_operations.poll(target)
                snapshots = [progress async for progress in poller]
                final = await poller
                assert snapshots
                for handle in [p.handle for p in snapshots] + [final.handle]:
                    assert (handle.channel_id, handle.action) == (channel_id, "read")
            bare = await knock.bulk_operations.poll(op.id)
            assert (bare.handle.channel_id, bare.handle.action) == (None, None)


async def test_fan_out_handles_know_their_channel_and_action() -> None:
    """Every handle a fan-out gives (from its events, their snapshots and the summary's
    results) names its own channel and the fan-out's action."""
    fast = FastClock(speed=50)
    async with KnockEmulator(clock=fast) as emu:
        channels = [emu.add_channel() for _ in range(3)]
        for channel_id in channels:
            emu.add_messages(channel_id, 50, seed=1)
        async with ka.KnockClient(
            api_key="sk_test", base_url=emu.base_url, clock=fast.monotonic, sleep=fast.sleep
        ) as knock:
            fan_out = knock.channels.bulk.update_many(channels, "read")
            events = [event async for event in fan_out]
            summary = await fan_out
    handles = [(event.channel_id, event.handle) for event in events]
    handles += [(e.channel_id, e.progress.handle) for e in events if e.progress is not None]
    handles += [(result.channel_id, result.handle) for result in summary.results]
    assert len(handles) >= 3 * len(channels)
    for channel, handle in handles:
        assert handle is not None
        assert (handle.channel_id, handle.action) == (channel, "read")


def test_the_context_is_not_part_of_the_wire_form_or_of_equality() -> None:
    """A server's ``channel_id``/``action`` keys are not read, the client's are not written,
    and two operations that differ only in them are equal."""
    wire = json.loads(SAMPLE.read_text())
    plain = structure_operation({**wire, "channel_id": "from-server", "action": "delete"})
    assert (plain.channel_id, plain.action) == (None, None)
    known = attrs.evolve(plain, channel_id="c1", action="read")
    assert known == plain
    assert "channel_id" not in converter.unstructure(known)
    assert "action" not in converter.unstructure(known)
    assert (known.handle.channel_id, known.handle.action) == ("c1", "read")
