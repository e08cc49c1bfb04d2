"""``RedisRateLimiter`` against a real ``redis-server`` on loopback (no fakes, no mocks).

Rates are high (20-50/s) so that each test takes about a second of real time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

import knock_async as ka
from knock_async import RateLimits, Tier
from knock_async._ratelimit import PacingState
from knock_async.redis import (
    _LOOKAHEAD,
    RedisLimiterError,
    RedisRateLimiter,
    environment_key_prefix,
)
from knock_async.testing import KnockEmulator
from tests.redis._server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk_test_redis"
# Each Redis call's timeout where a test checks the shared state, not the fallback: the default
# (0.25 s) is shorter than a call can take on a loaded 2-CPU machine, and a call past it would
# pace on the fallback instead of in Redis.
PATIENT = 5.0


def degraded(limiter: RedisRateLimiter) -> bool:
    # A function, not the property inline: mypy would keep an asserted value across awaits.
    return limiter.degraded


def prefix() -> str:
    return f"test:{uuid.uuid4().hex}"


def worker(*args: object) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.redis._worker", *map(str, args)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def result(process: subprocess.Popen[str]) -> object:
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    return json.loads(out)


# --------------------------------------------------------------------------------------------
# The Lua script is PacingState's arithmetic


def model_acquire(state: PacingState, now: float) -> tuple[bool, float, PacingState]:
    """What the script's ``acquire`` does, in terms of the in-process limiter's pure state."""
    if state.rate < state.configured_rate:
        state = state.succeeded(now)
    slot = state.next_slot(now)
    if slot <= now + _LOOKAHEAD:
        _, state = state.reserve(now)
        return True, slot - now, state
    return False, slot - now, state


STEPS = st.lists(
    st.tuples(
        st.sampled_from(["acquire", "acquire", "penalty"]),
        st.floats(min_value=0.0, max_value=0.6),
        st.one_of(st.none(), st.floats(min_value=0.0, max_value=2.0)),
    ),
    min_size=1,
    max_size=25,
)
LIMITS = st.builds(
    RateLimits,
    post_per_second=st.sampled_from([5.0, 3.3, 200.0]),
    post_burst=st.integers(min_value=1, max_value=3),
    slowdown_cooldown=st.sampled_from([0.0, 0.5, 1.0]),
    recovery_per_second=st.sampled_from([0.1, 0.7, 3.0]),
)


def same(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-6)


@settings(max_examples=60, deadline=None)
@given(limits=LIMITS, steps=STEPS)
def test_script_follows_pacing_state(
    shared_redis: RedisServer, limits: RateLimits, steps: list[tuple[str, float, float | None]]
) -> None:
    """Step by step, the script's state in Redis equals PacingState's for the same calls and
    the same times: grants, waits, rate, tat, hold and recovery."""

    async def run() -> None:
        limiter = RedisRateLimiter.from_url(
            shared_redis.url,
            key_prefix=prefix(),
            limits=limits,
            timeout=PATIENT,
            connect_timeout=PATIENT,
        )
        async with limiter:
            state = PacingState.initial(limits, Tier.POST)
            now = 1_800_000_000.0
            for operation, dt, retry_after in steps:
                now += dt
                if operation == "acquire":
                    granted, wait, state = model_acquire(state, now)
                    got = await limiter._run("acquire", Tier.POST, now=now)
                    assert got[0] == granted
                    assert same(got[1], wait)
                else:
                    state = state.rate_limited(now, retry_after)
                    await limiter._run("penalty", Tier.POST, retry_after=retry_after, now=now)
                shared = await limiter._read_state(Tier.POST, now=now)
                for field in ("rate", "tat", "hold_until", "recovery_from", "last_slowdown"):
                    assert same(getattr(shared, field), getattr(state, field)), field

    asyncio.run(run())


# --------------------------------------------------------------------------------------------
# Several processes, one budget


@pytest.mark.subprocess
def test_processes_share_one_budget(shared_redis: RedisServer) -> None:
    """Four processes taking 12 slots each at 50/s are paced as one: the 48 grants, merged,
    are spread at 50/s (four unshared limiters would grant them four times as fast)."""
    rate, count, processes = 50.0, 12, 4
    key = prefix()
    workers = [worker("acquire", shared_redis.url, key, count, rate) for _ in range(processes)]
    per_process = [result(w) for w in workers]
    assert all(isinstance(times, list) and len(times) == count for times in per_process)
    times = sorted(t for times in per_process for t in times)  # type: ignore[attr-defined]
    interval = 1 / rate
    # Lower bounds only: a busy machine can make a grant late, never early.
    assert times[-1] - times[0] >= 0.9 * (len(times) - 1) * interval
    k = 10
    assert min(times[i + k] - times[i] for i in range(len(times) - k)) >= 0.6 * k * interval


@pytest.mark.subprocess
async def test_a_429_in_one_process_slows_every_process(shared_redis: RedisServer) -> None:
    """Another process's 429 (Retry-After 1 s) halves the shared rate and holds this process's
    next request; afterwards the shared rate climbs back for everyone."""
    key = prefix()
    limits = RateLimits(post_per_second=20.0, recovery_per_second=2.0)
    loop = asyncio.get_running_loop()
    mine = RedisRateLimiter.from_url(
        shared_redis.url, key_prefix=key, limits=limits, timeout=PATIENT
    )
    async with mine:
        await mine.acquire(Tier.POST)
        launched = loop.time()
        rate_after = await asyncio.to_thread(
            result, worker("penalty", shared_redis.url, key, 20.0, 1.0)
        )
        done = loop.time()
        assert rate_after == 10.0
        assert (await mine.state(Tier.POST)).rate == 10.0
        await mine.acquire(Tier.POST)
        # The hold was set after `launched`, and lasts 1 s from then.
        assert loop.time() - launched >= 1.0 - 0.01
        assert loop.time() - done <= 1.0 + 0.5
        # 1 s at 2.0 x 20/s of recovery per second: back to the full rate, in the shared state.
        assert (await mine.state(Tier.POST)).rate == 20.0


async def test_429s_within_the_cooldown_slow_down_once(shared_redis: RedisServer) -> None:
    """Two clients (two connection pools, as two processes would have) each see a 429 of the
    same overload: the shared rate halves once, not twice."""
    key = prefix()
    limits = RateLimits(post_per_second=20.0, slowdown_cooldown=5.0)
    first, second = (
        RedisRateLimiter.from_url(shared_redis.url, key_prefix=key, limits=limits, timeout=PATIENT)
        for _ in range(2)
    )
    async with first, second:
        first.on_rate_limited(Tier.POST)
        await first.aclose()  # waits until the slow-down is written
        second.on_rate_limited(Tier.POST)
        await second.aclose()
    third = RedisRateLimiter.from_url(
        shared_redis.url, key_prefix=key, limits=limits, timeout=PATIENT
    )
    async with third:
        assert (await third.state(Tier.POST)).rate == 10.0


# --------------------------------------------------------------------------------------------
# Redis going away and coming back


async def test_redis_stopped_and_restarted(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With Redis gone, the limiter keeps pacing at its fallback share (10/s of 20/s, never
    unlimited), logs one warning, and shares again once a probe finds Redis back."""
    caplog.set_level(logging.INFO, logger="knock_async.redis")
    limits = RateLimits(post_per_second=20.0)
    limiter = RedisRateLimiter.from_url(
        redis_server.url,
        key_prefix=prefix(),
        limits=limits,
        timeout=PATIENT,  # a stopped server refuses at once: no call waits for the timeout
        fallback_share=0.5,
        probe_interval=0.3,
    )
    loop = asyncio.get_running_loop()
    async with limiter:
        await limiter.acquire(Tier.POST)
        assert not degraded(limiter)
        redis_server.stop()
        start = loop.time()
        for _ in range(6):
            await limiter.acquire(Tier.POST)
        assert degraded(limiter)
        assert loop.time() - start >= 5 * (1 / 10.0) * 0.95
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 1  # once, though a probe failed meanwhile
        assert "no answer from Redis" in messages[0]
        assert "10 POST/s" in messages[0]

        redis_server.start()
        await asyncio.sleep(0.35)
        await limiter.acquire(Tier.POST)
        assert not degraded(limiter)
        assert "answers again" in caplog.records[-1].getMessage()
        # The grant was booked in Redis again (its state had gone with the old server).
        assert (await limiter.state(Tier.POST)).tat > -math.inf


async def test_redis_too_slow_falls_back(redis_server: RedisServer) -> None:
    """A Redis that does not answer within ``timeout`` (paused clients) is treated as gone: the
    acquire returns on the fallback instead of waiting for it."""
    # Paused three times the timeout, which is long enough for a loaded machine to answer the
    # calls that are not paused (the unpause itself waits for the pause to end).
    limiter = RedisRateLimiter.from_url(
        redis_server.url, key_prefix=prefix(), timeout=0.5, probe_interval=0.2
    )
    admin = redis.asyncio.Redis.from_url(redis_server.url)
    async with limiter:
        await limiter.acquire(Tier.GET)
        await admin.client_pause(1500, all=True)
        await limiter.acquire(Tier.GET)
        assert degraded(limiter)
        await admin.client_unpause()
        await asyncio.sleep(0.25)
        await limiter.acquire(Tier.GET)
        assert not degraded(limiter)
    await admin.aclose()


async def test_nothing_lost_or_sent_twice_through_an_outage(redis_server: RedisServer) -> None:
    """update_many over 8 channels with Redis stopped after the 3rd POST and back after the
    6th: every channel gets exactly one POST and is updated."""
    limiter = RedisRateLimiter.from_url(
        redis_server.url,
        key_prefix=prefix(),
        limits=RateLimits(post_per_second=20.0),
        timeout=0.2,
        probe_interval=0.1,
    )
    async with (
        KnockEmulator(rate_limits=False, rows_per_second=10_000.0) as emu,
        limiter,
        ka.KnockClient(
            api_key="sk_test_redis", base_url=emu.base_url, rate_limits=limiter
        ) as knock,
    ):
        ids = [emu.add_channel(type="in_app_feed") for _ in range(8)]
        for i, channel_id in enumerate(ids):
            emu.add_messages(channel_id, 3, seed=i)
        fan = knock.channels.bulk.update_many(
            ids, "read", policy=ka.PollPolicy(initial_delay=0.05, max_delay=0.1)
        )
        submitted = 0
        async for event in fan:
            if event.kind is ka.FanOutEventKind.SUBMITTED:
                submitted += 1
                if submitted == 3:
                    redis_server.stop()
                elif submitted == 6:
                    redis_server.start()
        summary = await fan
        posts = [r for r in emu.requests if r.method == "POST"]
    assert summary.ok
    assert len(posts) == 8
    assert sorted(r.path.split("/")[3] for r in posts) == sorted(ids)
    assert all(m.read_at is not None for c in ids for m in emu.messages(c))


# --------------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://127.0.0.1:6379/0", "must start with redis://, rediss:// or unix://"),
        ("localhost:6379", "must start with redis://"),
        ("redis://", "names no host"),
    ],
)
def test_bad_url_is_refused_at_construction(url: str, error: str) -> None:
    """A URL that cannot name a Redis is a ValueError from from_url, naming what is wrong."""
    with pytest.raises(ValueError, match=error):
        RedisRateLimiter.from_url(url, key_prefix="knock:test")


def test_bad_url_error_never_shows_the_password() -> None:
    """The error for a bad scheme echoes the scheme, not the rest of the URL."""
    with pytest.raises(ValueError, match="'https'") as info:
        RedisRateLimiter.from_url("https://:hunter2@host/0", key_prefix="knock:test")
    assert "hunter2" not in str(info.value)


async def test_nothing_listening_is_an_error_at_first_use() -> None:
    """A Redis that never answered is a configuration error, not an outage: the first
    acquire raises RedisLimiterError saying what to check."""
    limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0", key_prefix="k")
    with pytest.raises(RedisLimiterError, match=r"did not answer.*check its URL"):
        await limiter.acquire(Tier.POST)
    await limiter.aclose()


@pytest.mark.parametrize(
    ("path", "password"),
    [("/0", "hunter2"), ("/99", "s3cret")],
    ids=["wrong password", "no such database"],
)
async def test_refused_login_is_an_error_at_first_use(path: str, password: str) -> None:
    """A password the server refuses, or a database it does not have, fails the first use;
    the message does not carry the password."""
    with RedisServer(args=("--requirepass", "s3cret")) as server:
        url = f"redis://:{password}@127.0.0.1:{server.port}{path}"
        limiter = RedisRateLimiter.from_url(url, key_prefix="k")
        with pytest.raises(RedisLimiterError, match="check its URL") as info:
            async with limiter:
                pass
        await limiter.aclose()
    assert password not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"key_prefix": ""}, ValueError, "key_prefix must be a non-empty string"),
        ({"key_prefix": "k", "timeout": 0}, ValueError, "timeout must be a finite number > 0"),
        (
            {"key_prefix": "k", "connect_timeout": math.inf},
            ValueError,
            "connect_timeout must be a finite number > 0",
        ),
        ({"key_prefix": "k", "fallback_share": 1.5}, ValueError, r"fallback_share .* \(0, 1\]"),
        ({"key_prefix": "k", "probe_interval": "1"}, TypeError, "probe_interval must be a"),
        ({"key_prefix": "k", "limits": {"post_per_second": 5}}, TypeError, "limits must be"),
    ],
)
def test_bad_arguments_are_refused(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    """Each bad argument is refused by name before anything is connected."""
    with pytest.raises(error, match=message):
        RedisRateLimiter.from_url("redis://127.0.0.1:6379/0", **kwargs)  # type: ignore[arg-type]


def test_client_must_be_a_redis_asyncio_client() -> None:
    """A synchronous client or a URL string as ``client`` is a TypeError pointing at from_url."""
    with pytest.raises(TypeError, match="from_url"):
        RedisRateLimiter("redis://127.0.0.1:6379/0", key_prefix="k")  # type: ignore[arg-type]


async def test_is_a_rate_limiter_with_a_given_client(shared_redis: RedisServer) -> None:
    """Built from the caller's client, it satisfies the RateLimiter protocol, uses keys under
    the prefix, and leaves the caller's client open."""
    client = redis.asyncio.Redis.from_url(shared_redis.url)
    key = prefix()
    limiter = RedisRateLimiter(client, key_prefix=key)
    assert isinstance(limiter, ka.RateLimiter)
    async with limiter:
        await limiter.acquire("get")
    assert await client.exists(f"{key}:ratelimit:get") == 1
    assert await client.ping()
    await client.aclose()


def test_environment_key_prefix_hashes_the_key() -> None:
    """The prefix depends on base URL and key, and never contains the key."""
    one = environment_key_prefix("sk_live_secret", base_url="https://api.knock.app")
    assert one == environment_key_prefix("sk_live_secret", base_url="https://api.knock.app")
    assert one != environment_key_prefix("sk_live_other", base_url="https://api.knock.app")
    assert one != environment_key_prefix("sk_live_secret", base_url="http://127.0.0.1:1")
    assert "secret" not in one
