"""Many concurrent operations over many messages (a small-scale version of the benchmark's
1,000 operations over 100,000 messages)."""

from __future__ import annotations

import asyncio

import aiohttp

from knock_async.testing import KnockEmulator, ManualClock
from knock_async.testing._seed import RECIPIENTS

AUTH = {"Authorization": "Bearer sk_test_emulator"}

CHANNELS = 20
MESSAGES_PER_CHANNEL = 500
OPERATIONS = 200


async def test_concurrent_operations_complete_correctly(clock: ManualClock) -> None:
    """200 concurrent bulk updates over 20 channels x 500 messages all complete, each updating
    exactly the messages its filters select, with counts that add up."""
    async with KnockEmulator(
        clock=clock, rate_limits=False, rows_per_second=5000, batch_size=100
    ) as emu:
        channels = [emu.add_channel() for _ in range(CHANNELS)]
        for index, channel in enumerate(channels):
            emu.add_messages(channel, MESSAGES_PER_CHANNEL, seed=index)
        before = {m.id: m for channel in channels for m in emu.messages(channel)}
        # Operation i marks read, on channel i % 20, the messages of one recipient: the ten
        # operations per channel touch disjoint recipients.
        jobs = [(channels[i % CHANNELS], RECIPIENTS[i // CHANNELS]) for i in range(OPERATIONS)]
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def submit(channel: str, recipient: str) -> str:
                url = f"{emu.base_url}/v1/channels/{channel}/messages/bulk/read"
                body = {"recipient_ids": [recipient]}
                async with http.post(url, json=body, headers=AUTH) as response:
                    assert response.status == 200
                    answer = await response.json()
                    return str(answer["id"])

            ids = await asyncio.gather(*(submit(c, r) for c, r in jobs))
            emu.settle()
            finals = await asyncio.gather(
                *(http.get(f"{emu.base_url}/v1/bulk_operations/{i}", headers=AUTH) for i in ids)
            )
            bodies = []
            for response in finals:
                async with response:
                    assert response.status == 200
                    bodies.append(await response.json())

    assert len(set(ids)) == OPERATIONS
    assert all(body["status"] == "completed" for body in bodies)
    targeted = {(c, r) for c, r in jobs}
    expected = {m.id for m in before.values() if (m.channel_id, m.recipient_id) in targeted}
    assert sum(body["success_count"] for body in bodies) == len(expected)
    assert sum(body["estimated_total_rows"] for body in bodies) == len(expected)
    after = {m.id: m for channel in channels for m in emu.messages(channel)}
    assert after.keys() == before.keys()
    for message_id, message in after.items():
        if message_id in expected:
            assert message.read_at is not None
        else:
            assert message == before[message_id]
