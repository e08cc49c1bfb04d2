"""A client that is not on the emulator's ManualClock gets a hint instead of a silent wait."""

from __future__ import annotations

import logging

import aiohttp
import pytest

import knock_async as ka
from knock_async.testing import KnockEmulator, ManualClock
from knock_async.testing._hints import HINT_HEADER, STILL_POLLS, StandingStill
from tests._support import VirtualTime

AUTH = {"Authorization": "Bearer sk_test_hints"}


@pytest.mark.knock_emulator(clock=ManualClock, rate_limits=False)
async def test_a_client_on_its_own_clock_is_told_to_use_the_emulators_client(
    knock_emulator: KnockEmulator, vtime: VirtualTime, caplog: pytest.LogCaptureFixture
) -> None:
    """A plain KnockClient (its own clock, here virtual) polling an operation on a ManualClock
    sees it queued until its deadline; the emulator logs one warning naming
    ``knock_emulator.client()`` for that operation, however many polls."""
    channel = knock_emulator.add_channel()
    knock_emulator.add_messages(channel, 10)
    caplog.set_level(logging.WARNING, logger="knock_async.testing")
    async with ka.KnockClient(
        api_key="sk_test_hints",
        base_url=knock_emulator.base_url,
        clock=vtime.clock,
        sleep=vtime.sleep,
        rate_limits=None,
    ) as knock:
        op = await knock.channels.bulk.update_message_status(channel, "read")
        with pytest.raises(ka.PollTimeoutError):
            await knock.bulk_operations.poll(op, timeout=60.0)
    polls = [r for r in knock_emulator.requests if r.method == "GET"]
    assert len(polls) > STILL_POLLS
    (hint,) = [r.getMessage() for r in caplog.records if "stood still" in r.getMessage()]
    assert op.id in hint
    assert "knock_emulator.client()" in hint
    assert "emu.advance()" in hint


@pytest.mark.knock_emulator(clock=ManualClock, rows_per_second=50.0, rate_limits=False)
async def test_the_emulators_own_client_gets_no_hint(
    knock_emulator: KnockEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """knock_emulator.client() moves the ManualClock by its sleeps: it follows an operation to
    the end and the emulator has nothing to say."""
    channel = knock_emulator.add_channel()
    knock_emulator.add_messages(channel, 200)
    caplog.set_level(logging.WARNING, logger="knock_async.testing")
    async with knock_emulator.client(rate_limits=None) as knock:
        op = await knock.channels.bulk.update_message_status(channel, "read")
        final = await knock.bulk_operations.poll(op)
    assert final.status == "completed"
    assert not [r for r in caplog.records if "stood still" in r.getMessage()]


@pytest.mark.knock_emulator(clock=ManualClock, rate_limits=False)
async def test_the_hint_is_in_a_header_from_the_third_still_poll(
    knock_emulator: KnockEmulator,
) -> None:
    """Over raw HTTP: the first polls at one instant carry no hint; from the third on, each
    carries ``X-Knock-Emulator-Hint``; after ``advance()`` the count starts again."""
    channel = knock_emulator.add_channel()
    knock_emulator.add_messages(channel, 10_000)
    base = knock_emulator.base_url
    async with aiohttp.ClientSession(headers=AUTH) as http:
        url = f"{base}/v1/channels/{channel}/messages/bulk/read"
        async with http.post(url, json={}) as response:
            operation_id = (await response.json())["id"]

        async def hinted() -> bool:
            async with http.get(f"{base}/v1/bulk_operations/{operation_id}") as response:
                assert response.status == 200
                return HINT_HEADER in response.headers

        assert [await hinted() for _ in range(4)] == [False, False, True, True]
        knock_emulator.advance(0.5)
        assert [await hinted() for _ in range(3)] == [False, False, True]


def test_standing_still_counts_polls_per_operation_and_instant() -> None:
    """The count is per operation and per instant; a finished operation is never hinted."""
    still = StandingStill(polls=2)
    assert still.poll("a", 1.0, finished=False) is None
    assert still.poll("b", 1.0, finished=False) is None
    assert still.poll("a", 1.0, finished=False) is not None
    assert still.poll("a", 2.0, finished=False) is None
    assert still.poll("b", 1.0, finished=True) is None
    assert still.poll("b", 1.0, finished=True) is None
