"""The ``knock_emulator`` pytest fixture, registered through the ``pytest11`` entry point.

A running ``KnockEmulator`` per test, with state and a clock of its own. Settings come from
``knock_emulator`` markers (on the test, its class or its module's ``pytestmark``; the closest
one wins per setting)::

    @pytest.mark.asyncio
    @pytest.mark.knock_emulator(clock=ManualClock, rate_limits=False)
    async def test_archive(knock_emulator): ...

``clock`` may be a clock class or factory (called for each test) or a clock object, whose
settings are copied into a new clock for each test, so parametrized tests and tests sharing a
module-level marker never share one. ``knock_emulator.client()`` gives a ``KnockClient`` on the
emulator's clock.

The fixture is async: install the ``testing`` extra (pytest-asyncio) and mark tests
``@pytest.mark.asyncio`` (pytest-asyncio's default strict mode), or set
``asyncio_mode = "auto"``. The emulator module itself is imported when the fixture is first
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


def marker_settings(node: Any) -> dict[str, Any]:
    """The ``knock_emulator`` markers' settings for ``node``, the closest marker winning."""
    settings: dict[str, Any] = {}
    for marker in node.iter_markers(MARKER):  # closest first
        if marker.args:
            raise TypeError(f"@pytest.mark.{MARKER} takes keyword arguments only")
        for name, value in marker.kwargs.items():
            settings.setdefault(name, value)
    return settings


@_async_fixture
async def knock_emulator(request: pytest.FixtureRequest) -> AsyncIterator[KnockEmulator]:
    """A running ``KnockEmulator`` of this test's own (settings from ``knock_emulator``
    markers, a fresh clock), closed after the test."""
    from ._clock import fresh_clock
    from ._emulator import KnockEmulator

    settings = marker_settings(request.node)
    if settings.get("clock") is not None:
        settings["clock"] = fresh_clock(settings["clock"])
    async with KnockEmulator(**settings) as emulator:
        yield emulator
