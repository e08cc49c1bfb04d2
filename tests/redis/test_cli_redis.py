"""``knock-async --redis-url`` (and ``KNOCK_REDIS_URL``) against a real ``redis-server``: runs
of the real command line, in subprocesses, sharing one rate-limit budget."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis.asyncio

from knock_async.redis import environment_key_prefix
from tests.cli._clitools import API_KEY, Cli, EmulatorThread, cli_env, start_knock_async
from tests.redis._server import RedisServer, free_port

FAST = ("--poll-interval", "0.2")


@pytest.fixture
def limited_emulator() -> Iterator[EmulatorThread]:
    """An emulator of this test's own with Knock's limits (5 POST/s for the environment)."""
    thread = EmulatorThread()
    thread.start()
    yield thread
    thread.stop()


def redis_keys(url: str) -> list[str]:
    async def scan() -> list[str]:
        client = redis.asyncio.Redis.from_url(url, decode_responses=True)
        try:
            return [key async for key in client.scan_iter()]
        finally:
            await client.aclose()

    return asyncio.run(scan())


@pytest.mark.subprocess
def test_two_runs_share_one_budget(
    limited_emulator: EmulatorThread, redis_server: RedisServer
) -> None:
    """Two runs at once, one given --redis-url and one KNOCK_REDIS_URL, update 5 channels
    each at Knock's 5 POST/s together: no 429, every channel updated, and Redis holds only
    keys under the environment's hashed prefix (never the key)."""
    emulator = limited_emulator
    channels = [emulator.channel(3, seed=i) for i in range(10)]
    base_url = emulator.base_url
    first = start_knock_async(
        "bulk-update", "read", *channels[:5], "--redis-url", redis_server.url, *FAST,
        env=cli_env(base_url),
    )  # fmt: skip
    second = start_knock_async(
        "bulk-update", "read", *channels[5:], *FAST,
        env=cli_env(base_url, KNOCK_REDIS_URL=redis_server.url),
    )  # fmt: skip
    for process in (first, second):
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr.decode()
    stats = emulator.call(lambda emu: emu.stats)
    assert stats.rate_limited == 0
    assert stats.responses[429] == 0
    posts = emulator.call(lambda emu: [r for r in emu.requests if r.method == "POST"])
    assert len(posts) == 10
    for channel in channels:
        assert all(m.read_at is not None for m in emulator.messages(channel))
    prefix = environment_key_prefix(API_KEY, base_url=base_url)
    keys = redis_keys(redis_server.url)
    assert f"{prefix}:ratelimit:post" in keys
    assert all(key.startswith(prefix) for key in keys)
    assert not any(API_KEY in key for key in keys)


@pytest.mark.parametrize(
    ("where", "url", "message"),
    [
        ("--redis-url", "http://127.0.0.1:6379/0", "--redis-url: url must start with redis://"),
        ("KNOCK_REDIS_URL", "localhost:6379", "KNOCK_REDIS_URL: url must start with redis://"),
    ],
)
def test_a_bad_redis_url_is_a_usage_error(
    limited_emulator: EmulatorThread,
    where: str,
    url: str,
    message: str,
    cli: Cli,
) -> None:
    """A URL that cannot name a Redis is exit 2 naming its source; nothing is sent."""
    channel = limited_emulator.channel(3)
    before = limited_emulator.request_count()
    args = ["bulk-update", "read", channel]
    extra = {}
    if where == "--redis-url":
        args += ["--redis-url", url]
    else:
        extra["KNOCK_REDIS_URL"] = url
    result = cli(*args, env=cli_env(limited_emulator.base_url, **extra))
    assert result.returncode == 2
    assert message in result.stderr
    assert limited_emulator.request_count() == before


def test_a_redis_that_does_not_answer_is_a_usage_error(
    limited_emulator: EmulatorThread,
    cli: Cli,
) -> None:
    """Nothing listening at the Redis URL: exit 2 saying the Redis did not answer, without
    the URL's password or a traceback; nothing is sent to Knock."""
    channel = limited_emulator.channel(3)
    before = limited_emulator.request_count()
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result = cli(
        "bulk-update", "read", channel,
        env=cli_env(limited_emulator.base_url, KNOCK_REDIS_URL=url),
    )  # fmt: skip
    assert result.returncode == 2
    assert "KNOCK_REDIS_URL: the rate limiter's Redis did not answer" in result.stderr
    assert "check its URL" in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr
    assert limited_emulator.request_count() == before


def test_help_names_the_option_and_its_variable(cli: Cli) -> None:
    """``bulk-update --help`` lists --redis-url with its environment variable."""
    result = cli("bulk-update", "--help", env=cli_env())
    assert result.returncode == 0
    assert "--redis-url" in result.stdout
    assert "KNOCK_REDIS_URL" in result.stdout
