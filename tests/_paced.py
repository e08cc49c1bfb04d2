"""The paced emulator and client the ``_all`` tests share: the emulator with Knock's rate limits
on and the client on one FastClock, so tier 1's one request a second per endpoint is enforced
and paced over loopback while the emulated seconds pass ten times faster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import knock_async as ka
from knock_async.testing import EmulatorRateLimits, FastClock, KnockEmulator

__all__ = ["KEY", "SPEED", "client", "emu", "fast"]

KEY = "sk_test_bulk_all"
SPEED = 10.0


@pytest.fixture
def fast() -> FastClock:
    return FastClock(speed=SPEED)


@pytest.fixture
async def emu(fast: FastClock) -> AsyncIterator[KnockEmulator]:
    # Tier 1 is one request a second with no burst: a bucket of exactly one token would refuse
    # a request whose arrival the loopback's jitter brought a few emulated ms early (the
    # client then waits and resends it, as a 429 sent nothing); half a token of slack keeps
    # these tests about the client's pacing.
    limits = EmulatorRateLimits(burst_seconds=1.5)
    async with KnockEmulator(
        clock=fast, rows_per_second=100_000.0, strict=True, rate_limits=limits
    ) as emulator:
        yield emulator


def client(emu: KnockEmulator, fast: FastClock) -> ka.KnockClient:
    return ka.KnockClient(
        api_key=KEY, base_url=emu.base_url, clock=fast.monotonic, sleep=fast.sleep
    )
