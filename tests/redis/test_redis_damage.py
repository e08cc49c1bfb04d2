"""``RedisRateLimiter`` under whatever its keys hold: damaged, tampered with, of another type.

A real ``redis-server`` on loopback; the junk is written with a plain Redis client. Time is the
script's own: the tests pass ``now`` to it and read each grant's time from the slot it assigns,
so they run in virtual time and no machine load can bend a bound.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Iterator

import pytest
import redis
from hypothesis import example, given, settings
from hypothesis import strategies as st

from knock_async import RateLimits, Tier
from knock_async.redis import _LOOKAHEAD, RedisRateLimiter
from tests.redis._server import RedisServer

NOW = 1_800_000_000.0  # the script's clock in these tests (seconds, like Redis's TIME)
FIELDS = ("rate", "tat", "hold", "rfrom", "lslow")


@pytest.fixture(scope="module")
def admin(shared_redis: RedisServer) -> Iterator[redis.Redis]:
    """A plain client to write junk with."""
    client = redis.Redis.from_url(shared_redis.url)
    yield client
    client.close()


def prefix() -> str:
    return f"test:{uuid.uuid4().hex}"


# Anything a stored field may hold: numbers of every kind as text, times near and far, text.
NUMBERS = st.floats(allow_nan=True, allow_infinity=True).map(repr)
TIMES = st.floats(min_value=-10_000.0, max_value=10_000_000.0).map(lambda d: repr(NOW + d))
RATES = st.floats(min_value=-1000.0, max_value=1000.0).map(repr)
WORDS = st.sampled_from(
    ["", "nan", "-nan", "inf", "-inf", "1e999", "-0", "0", "0x10", " 5 ", "5abc", "\x00", "🙂"]
)
VALUES = st.one_of(NUMBERS, TIMES, RATES, WORDS, st.text(max_size=12), st.binary(max_size=12))
HASHES = st.dictionaries(st.sampled_from([*FIELDS, "other"]), VALUES, max_size=6)
OTHER_TYPES = st.sampled_from(["string", "list", "set", "zset"])
STORED = st.one_of(HASHES, OTHER_TYPES)

LIMITS = st.builds(
    RateLimits,
    post_per_second=st.sampled_from([5.0, 20.0, 200.0]),
    post_burst=st.integers(min_value=1, max_value=3),
    recovery_per_second=st.sampled_from([0.1, 1.0, 5.0]),
)
# How long the process takes between a grant and its next acquire.
GAPS = st.lists(st.floats(min_value=0.0, max_value=0.3), min_size=12, max_size=12)


def store(admin: redis.Redis, key: str, stored: dict[str, str | bytes] | str) -> None:
    admin.delete(key)
    if stored == "string":
        admin.set(key, "5")
    elif stored == "list":
        admin.rpush(key, "rate", "5")
    elif stored == "set":
        admin.sadd(key, "rate")
    elif stored == "zset":
        admin.zadd(key, {"rate": 5.0})
    elif isinstance(stored, dict) and stored:
        admin.hset(key, mapping=stored)  # type: ignore[arg-type]


async def grants(limiter: RedisRateLimiter, count: int, gaps: list[float]) -> list[float]:
    """``count`` grants to one process acquiring as ``acquire`` does, on the script's clock:
    each grant's time is the slot the script assigned it."""
    now = NOW
    times: list[float] = []
    for _ in range(20 * count):  # a stuck schedule fails the test instead of hanging it
        if len(times) == count:
            break
        granted, wait = await limiter._run("acquire", Tier.POST, now=now)
        assert math.isfinite(wait)
        if granted:
            times.append(now + max(wait, 0.0))
            now = times[-1] + gaps[len(times) % len(gaps)]
        else:
            now += max(wait - _LOOKAHEAD / 2, 0.001)
    assert len(times) == count, f"{len(times)} grants after {20 * count} acquires"
    return times


@settings(max_examples=150, deadline=None)
@given(limits=LIMITS, stored=STORED, gaps=GAPS)
# The states the issue found overspending or stuck: a negative rate with a recovery time far
# ahead; non-finite values; a hold an hour ahead; a rate far above the configured one.
@example(
    limits=RateLimits(), stored={"rate": "-5", "rfrom": repr(NOW + 1e6), "tat": "0"}, gaps=[0.0]
)
@example(limits=RateLimits(), stored={"rate": "nan", "tat": "inf", "hold": "-inf"}, gaps=[0.0])
@example(limits=RateLimits(), stored={"rate": "5", "hold": repr(NOW + 3600)}, gaps=[0.0])
@example(limits=RateLimits(), stored={"rate": "1e300", "tat": repr(NOW - 50)}, gaps=[0.0])
@example(limits=RateLimits(), stored="string", gaps=[0.0])
def test_no_stored_state_grants_faster_than_the_configured_rate(
    shared_redis: RedisServer,
    admin: redis.Redis,
    limits: RateLimits,
    stored: dict[str, str | bytes] | str,
    gaps: list[float],
) -> None:
    """Whatever the tier's key holds (junk in any field, a key of another type), the grants
    that follow keep GCRA's bound at the configured rate: any n consecutive grants span at
    least (n - burst) intervals. The first grant comes within the furthest hold the limiter
    can write, and afterwards the key holds finite values and has a TTL."""
    key_prefix = prefix()
    limiter = RedisRateLimiter.from_url(
        shared_redis.url, key_prefix=key_prefix, limits=limits, timeout=10.0, connect_timeout=10.0
    )
    key = limiter.key(Tier.POST)
    store(admin, key, stored)

    async def run() -> list[float]:
        async with limiter:
            return await grants(limiter, 12, gaps)

    times = asyncio.run(run())
    interval = 1 / limits.post_per_second
    burst = limits.post_burst
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            assert times[j] - times[i] >= (j - i + 1 - burst) * interval - 1e-6, (i, j)
    floor = limits.post_per_second * limits.min_rate_fraction
    horizon = max(120.0, 1 / floor) + 1.0
    assert times[0] - NOW <= horizon + (horizon * limits.post_per_second + burst) / floor + 1.0
    saved = admin.hmget(key, FIELDS)
    assert all(value is None or math.isfinite(float(value)) for value in saved)
    assert admin.pttl(key) > 0


async def test_a_key_of_another_type_is_replaced_not_a_lasting_outage(
    shared_redis: RedisServer, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A string under the tier's key is deleted and replaced by the tier's state in the same
    script run: the limiter keeps sharing (never falls back for it), and says so once at
    WARNING; the same damage again is only logged at DEBUG."""
    caplog.set_level(logging.DEBUG, logger="knock_async.redis")
    limits = RateLimits(post_per_second=50.0)
    async with RedisRateLimiter.from_url(
        shared_redis.url, key_prefix=prefix(), limits=limits
    ) as limiter:
        key = limiter.key(Tier.POST)
        admin.set(key, "not a hash")
        await limiter.acquire(Tier.POST)
        assert not limiter.degraded
        assert admin.type(key) == b"hash"
        admin.delete(key)
        admin.rpush(key, "junk")
        await limiter.acquire(Tier.POST)
        assert not limiter.degraded
    records = [r for r in caplog.records if "damaged" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.WARNING, logging.DEBUG]
    assert "a key of another type" in records[0].getMessage()


async def test_non_finite_values_are_rewritten_with_a_ttl(
    shared_redis: RedisServer, admin: redis.Redis
) -> None:
    """NaN and infinities in the hash are replaced and the key gets its expiry again (they used
    to make PEXPIRE fail after HSET had written, leaving bad state that never expired)."""
    async with RedisRateLimiter.from_url(shared_redis.url, key_prefix=prefix()) as limiter:
        key = limiter.key(Tier.GET)
        admin.hset(key, mapping={"rate": "200", "tat": "inf", "hold": "nan", "lslow": "-inf"})
        await limiter.acquire(Tier.GET)
        saved = admin.hgetall(key)
        assert all(math.isfinite(float(value)) for value in saved.values())
        assert b"hold" not in saved
        assert 0 < admin.pttl(key) <= 70_000


async def test_a_hold_an_hour_ahead_does_not_block_the_tier(
    shared_redis: RedisServer, admin: redis.Redis
) -> None:
    """A hold an hour ahead is further than any 429 writes (at most two minutes): it is
    dropped, and the next acquire is granted at once, still sharing."""
    loop = asyncio.get_running_loop()
    async with RedisRateLimiter.from_url(shared_redis.url, key_prefix=prefix()) as limiter:
        key = limiter.key(Tier.POST)
        server_now = float(admin.time()[0])
        admin.hset(key, mapping={"rate": "5", "hold": repr(server_now + 3600)})
        start = loop.time()
        async with asyncio.timeout(5.0):
            await limiter.acquire(Tier.POST)
        assert loop.time() - start < 1.0
        assert not limiter.degraded
        assert (await limiter.state(Tier.POST)).hold_until == -math.inf


async def test_a_long_retry_after_holds_the_shared_budget_two_minutes_at_most(
    shared_redis: RedisServer, admin: redis.Redis
) -> None:
    """A Retry-After of an hour holds every process for two minutes: what the script may
    write is bounded, so that it can tell damage from a real hold."""
    async with RedisRateLimiter.from_url(shared_redis.url, key_prefix=prefix()) as limiter:
        limiter.on_rate_limited(Tier.POST, retry_after=3600.0)
        await limiter.aclose()  # waits until the slow-down is written
        seconds, micros = admin.time()
        state = await limiter.state(Tier.POST)
        assert 119.0 < state.hold_until - (seconds + micros / 1e6) <= 120.0
