"""A separate process using a ``RedisRateLimiter``: ``python -m tests.redis._worker MODE ...``.

* ``acquire URL PREFIX COUNT RATE``: take COUNT POST slots at RATE/s; print their times
  (``time.monotonic``, one clock for every process of the machine) as a JSON list.
* ``penalty URL PREFIX RATE [RETRY_AFTER]``: report one 429 on the POST tier and exit once it is
  written; print the shared rate after it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from knock_async import RateLimits, Tier
from knock_async.redis import RedisRateLimiter

# A slow recovery: the rates these processes see must not climb back while the test reads them.
RECOVERY = 0.01


def limiter(url: str, prefix: str, rate: float) -> RedisRateLimiter:
    limits = RateLimits(post_per_second=rate, recovery_per_second=RECOVERY)
    # A timeout a loaded machine keeps: these processes check the shared state, not the fallback.
    return RedisRateLimiter.from_url(url, key_prefix=prefix, limits=limits, timeout=5.0)


async def acquire(url: str, prefix: str, count: int, rate: float) -> list[float]:
    times = []
    async with limiter(url, prefix, rate) as lim:
        for _ in range(count):
            await lim.acquire(Tier.POST)
            times.append(time.monotonic())
    return times


async def penalty(url: str, prefix: str, rate: float, retry_after: float | None) -> float:
    async with limiter(url, prefix, rate) as lim:
        lim.on_rate_limited(Tier.POST, retry_after=retry_after)
    async with limiter(url, prefix, rate) as lim:
        return (await lim.state(Tier.POST)).rate


def main(argv: list[str]) -> None:
    mode, url, prefix, *rest = argv
    if mode == "acquire":
        result: object = asyncio.run(acquire(url, prefix, int(rest[0]), float(rest[1])))
    elif mode == "penalty":
        retry_after = float(rest[1]) if len(rest) > 1 else None
        result = asyncio.run(penalty(url, prefix, float(rest[0]), retry_after))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
