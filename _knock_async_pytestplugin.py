"""The ``knock_emulator`` pytest fixture, registered through the ``pytest11`` entry point
``knock_async``.

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
``asyncio_mode = "auto"``.

A module of its own outside the ``knock_async`` package, as Hypothesis does with
``_hypothesis_pytestplugin``: pytest loads every registered plugin at every start, and importing
``knock_async`` imports aiohttp, which a project that never asks for the fixture must not pay
for. ``knock_async`` and the emulator are imported when a test first asks for the fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from knock_async.testing import KnockEmulator

__all__ = ["MARKER", "knock_emulator", "marker_settings"]

MARKER = "knock_emulator"
MISSING_EXTRA = (
    "the knock_emulator fixture is async and needs pytest-asyncio, which the 'testing' extra "
    "installs: pip install 'knock-async[testing]'"
)

_async_fixture: Callable[..., Any] | None
try:  # installed, pytest has imported it already as a plugin of its own: this costs nothing
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - tested in a subprocess where it cannot be imported
    _async_fixture = None


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


async def _running_emulator(request: pytest.FixtureRequest) -> AsyncIterator[KnockEmulator]:
    """A running ``KnockEmulator`` of this test's own (settings from ``knock_emulator``
    markers, a fresh clock), closed after the test."""
    from knock_async.testing._clock import fresh_clock
    from knock_async.testing._emulator import KnockEmulator

    settings = marker_settings(request.node)
    if settings.get("clock") is not None:
        settings["clock"] = fresh_clock(settings["clock"])
    async with KnockEmulator(**settings) as emulator:
        yield emulator


def _without_pytest_asyncio(request: pytest.FixtureRequest) -> None:
    """Stands in for the fixture when pytest-asyncio is missing: says which extra to install
    (pytest's own error would only say that an async fixture found no plugin)."""
    del request
    pytest.fail(MISSING_EXTRA, pytrace=False)


knock_emulator: Callable[..., Any]
if _async_fixture is not None:
    knock_emulator = _async_fixture(_running_emulator, name="knock_emulator")
else:  # pragma: no cover - tested in a subprocess where it cannot be imported
    knock_emulator = pytest.fixture(_without_pytest_asyncio, name="knock_emulator")
