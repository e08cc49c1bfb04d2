"""A real ``redis-server`` per test (or per session), on a free loopback port.

Without ``redis-server`` the tests here are skipped with the package to install, except in CI
(``CI=true``), where a missing server is a failure: ``.ci/run`` installs it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._support import require_tool
from tests.redis._server import RedisServer, redis_server_missing


def _require_redis_server() -> None:
    require_tool(redis_server_missing(), "Redis")


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[RedisServer]:
    """One Redis server for the tests that only need one (each uses its own key prefix)."""
    _require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis server of this test's own, which it may stop and start again."""
    _require_redis_server()
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
