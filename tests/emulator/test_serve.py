"""Serving the emulator standalone: serve() in-process, and ``python -m knock_async.testing``."""

from __future__ import annotations

import asyncio
import io
import signal
import sys

import aiohttp
import pytest

from knock_async.testing import KnockEmulator, serve
from knock_async.testing._serve import describe, seeded_channel_id

AUTH = {"Authorization": "Bearer sk_test_emulator"}
UNROUTED_BODY = {"errors": {"detail": "404 Not Found"}}


async def test_serve_runs_until_cancelled() -> None:
    """serve() seeds its channels, reports ready, answers requests and stops on cancel."""
    ready: asyncio.Future[KnockEmulator] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(seed_messages=5, channels=2, seed=9, on_ready=ready.set_result, rate_limits=False)
    )
    emu = await asyncio.wait_for(ready, timeout=5)
    channels = [c.id for c in emu.channels()]
    assert channels == [seeded_channel_id(9, 0), seeded_channel_id(9, 1)]
    assert [len(emu.messages(c)) for c in channels] == [5, 5]
    out = io.StringIO()
    describe(emu, out)
    assert emu.base_url in out.getvalue()
    assert channels[0] in out.getvalue()
    async with aiohttp.ClientSession() as http:
        url = f"{emu.base_url}/v1/channels/{channels[0]}/messages/bulk/read"
        async with http.post(url, json={}, headers=AUTH) as response:
            assert response.status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.base_url


def test_seeded_channel_ids_are_stable() -> None:
    """The same seed and index always give the same channel id; others differ."""
    assert seeded_channel_id(0, 0) == seeded_channel_id(0, 0)
    assert len({seeded_channel_id(0, 0), seeded_channel_id(0, 1), seeded_channel_id(1, 0)}) == 3


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
@pytest.mark.subprocess
async def test_module_entry_point_serves_until_ctrl_c() -> None:
    """``python -m knock_async.testing --port 0`` prints its URL, serves, and exits 0 on SIGINT
    with nothing on stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "knock_async.testing",
        "--port",
        "0",
        "--seed-messages",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=15)).decode()
        assert line.startswith("Knock emulator listening on http://127.0.0.1:")
        base_url = line.rsplit(" ", 1)[1].strip()
        async with aiohttp.ClientSession() as http, http.get(base_url + "/nowhere") as response:
            assert await response.json() == UNROUTED_BODY
        process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert stderr == b""
    assert b"channel " in stdout
