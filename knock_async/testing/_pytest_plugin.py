"""The ``knock_emulator`` pytest fixture, registered through the ``pytest11`` entry point.

A running ``KnockEmulator`` per test. Settings come from the ``knock_emulator`` marker::

    @pytest.mark.knock_emulator(clock=ManualClock(), rate_limits=False)
    async def test_archive(knock_emulator): ...

The fixture is async: it needs pytest-asyncio (``asyncio_mode = "auto"``, or mark the test
``@pytest.mark.asyncio``). The emulator module itself is imported when the fixture is first
used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._emulator import KnockEmulator

__all__ = ["knock_emulator"]

MARKER = "knock_emulator"

try:  # pytest-asyncio's decorator works in both its strict and auto modes
    import pytest_asyncio

    _async_fixture: Callable[..., Any] = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - another async plugin must run it
    _async_fixture = pytest.fixture


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**settings): KnockEmulator keyword arguments for the knock_emulator fixture",
    )


@_async_fixture
async def knock_emulator(request: pytest.FixtureRequest) -> AsyncIterator[KnockEmulator]:
    """A running ``KnockEmulator`` (settings from the ``knock_emulator`` marker), closed after
    the test."""
    from ._emulator import KnockEmulator

    marker = request.node.get_closest_marker(MARKER)
    settings: dict[str, Any] = {} if marker is None else dict(marker.kwargs)
    async with KnockEmulator(**settings) as emulator:
        yield emulator
