"""One Prism per spec per session (per xdist worker), and per test a ``KnockClient`` whose
requests reach that Prism through a ``Recorder``.

Without Prism the tests here are skipped with the command that installs it, except in CI
(``CI=true``), where a missing Prism is a failure: ``.ci/run`` installs it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import attrs
import pytest
import yaml
from aiohttp.test_utils import TestServer
from aiohttp.web import Application

import knock_async as ka
from tests._support import require_tool
from tests.prism._prism import PrismMock, Recorder, prism_missing
from tests.prism._spec import prism_ready

SPECS = Path(__file__).resolve().parent.parent / "spec"
BULK_SPEC = SPECS / "knock-bulk-operations.openapi.yaml"
CHANNELS_SPEC = SPECS / "knock-channels.openapi.yaml"


def _require_prism() -> None:
    require_tool(prism_missing(), "Prism")


def _mock(spec: Path, tmp: Path) -> Iterator[PrismMock]:
    _require_prism()
    with spec.open(encoding="utf-8") as handle:
        ready, _ = prism_ready(yaml.safe_load(handle))
    path = tmp / f"{spec.stem}.json"
    path.write_text(json.dumps(ready))
    mock = PrismMock(path, tmp / f"{spec.stem}.log")
    mock.start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture(scope="session")
def prism_bulk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismMock]:
    """Prism mocking the bulk-operations extract (its eleven endpoints and the polling GET)."""
    yield from _mock(BULK_SPEC, tmp_path_factory.mktemp("prism-bulk"))


@pytest.fixture(scope="session")
def prism_channels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismMock]:
    """Prism mocking the channel endpoint's own document."""
    yield from _mock(CHANNELS_SPEC, tmp_path_factory.mktemp("prism-channels"))


@attrs.frozen
class Checked:
    """A client pointed at Prism, and the recorder between them."""

    knock: ka.KnockClient
    recorder: Recorder
    url: str


ServerFactory = Callable[[Application], Awaitable[TestServer]]


async def _checked(mock: PrismMock, aiohttp_server: ServerFactory) -> AsyncIterator[Checked]:
    recorder = Recorder(mock.url)
    server = await aiohttp_server(recorder.app)
    url = str(server.make_url("")).rstrip("/")
    # No pacing: tier 1 is one request a second per endpoint, and pacing changes no request.
    async with ka.KnockClient("sk_test_prism", base_url=url, rate_limits=None) as knock:
        yield Checked(knock, recorder, url)


@pytest.fixture
async def bulk(prism_bulk: PrismMock, aiohttp_server: ServerFactory) -> AsyncIterator[Checked]:
    """A ``KnockClient`` on Prism mocking the bulk-operations extract."""
    async for checked in _checked(prism_bulk, aiohttp_server):
        yield checked


@pytest.fixture
async def channels(
    prism_channels: PrismMock, aiohttp_server: ServerFactory
) -> AsyncIterator[Checked]:
    """A ``KnockClient`` on Prism mocking the channel endpoint's document."""
    async for checked in _checked(prism_channels, aiohttp_server):
        yield checked
