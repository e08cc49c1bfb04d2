"""``op.handle`` carries the channel and the action the client sent, and they stay off the wire."""

from __future__ import annotations

import json
from pathlib import Path

import attrs

import knock_async as ka
from knock_async._convert import converter, structure_operation
from knock_async.testing import KnockEmulator, ManualClock

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
            final = await knock.bulk_operations.poll(again)
            assert final.id == op.id


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
