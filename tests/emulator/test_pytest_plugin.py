"""The knock_emulator fixture, registered through the pytest11 entry point."""

from __future__ import annotations

import aiohttp
import pytest

from knock_async.testing import KnockEmulator, ManualClock, SystemClock

AUTH = {"Authorization": "Bearer sk_test_emulator"}


def test_plugin_is_registered_by_entry_point(pytestconfig: pytest.Config) -> None:
    """Installing knock-async registers the plugin as ``knock_async`` (pytest11)."""
    plugin = pytestconfig.pluginmanager.get_plugin("knock_async")
    assert plugin is not None
    assert plugin.__name__ == "knock_async.testing._pytest_plugin"


async def test_fixture_gives_a_running_emulator(knock_emulator: KnockEmulator) -> None:
    """Without a marker the fixture is a default emulator: running, real clock, sk_ keys."""
    assert isinstance(knock_emulator.clock, SystemClock)
    channel = knock_emulator.add_channel()
    knock_emulator.add_messages(channel, 3)
    async with aiohttp.ClientSession() as http:
        url = f"{knock_emulator.base_url}/v1/channels/{channel}/messages/bulk/seen"
        async with http.post(url, json={}, headers=AUTH) as response:
            assert response.status == 200


@pytest.mark.knock_emulator(clock=ManualClock(), rows_per_second=1, rate_limits=False)
async def test_marker_configures_the_fixture(knock_emulator: KnockEmulator) -> None:
    """``@pytest.mark.knock_emulator(...)`` passes its keyword arguments to the emulator."""
    assert isinstance(knock_emulator.clock, ManualClock)
    assert knock_emulator.settings.rows_per_second == 1
