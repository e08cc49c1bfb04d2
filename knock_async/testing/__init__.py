"""An embedded Knock emulator for tests, demos and benchmarks.

``async with KnockEmulator() as emu:`` serves Knock's channel bulk update
(``POST /v1/channels/{channel_id}/messages/bulk/{action}``) and bulk operation
(``GET /v1/bulk_operations/{id}``) endpoints on an ephemeral loopback port at ``emu.base_url``,
over a message store seeded with ``emu.add_channel()`` and ``emu.add_messages()``. Operations
are processed over time with every filter applied for real; rate limits, the retention window
and scripted faults (``emu.faults``) behave as the real API's do. Time comes from a clock the
test may control (``ManualClock``).

It answers as Knock documents (401 ``api_key_missing``, 401 ``incorrect_token_type`` for a
``pk_`` key, 422 ``invalid_params`` with an ``errors`` list, ``{"errors": {"detail": "404 Not
Found"}}`` for an unknown path, limits per environment, a relative ``progress_path``); see
``KnockEmulator`` for which answers are documented and which are inferred.

With pytest (extra ``testing``), the ``knock_emulator`` fixture gives every test a running
emulator with state and a clock of its own, and ``knock_emulator.client()`` a ``KnockClient``
on that clock.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._clock import Clock, FastClock, ManualClock, SystemClock
    from ._emulator import KnockEmulator
    from ._faults import BULK_OPERATION_ROUTE, BULK_UPDATE_ROUTE, Fault, Faults
    from ._log import EmulatorStats, RecordedRequest
    from ._operations import ProcessingSettings
    from ._ratelimit import EmulatorRateLimits
    from ._serve import run, seeded_channel_id, serve
    from ._store import Channel, ChannelType, Message

# Each public name and its module, imported when the name is first asked for: the command line
# reads the emulator's options (``_options``) from this package without loading aiohttp.web.
_HOMES = {
    "Clock": "_clock",
    "FastClock": "_clock",
    "ManualClock": "_clock",
    "SystemClock": "_clock",
    "KnockEmulator": "_emulator",
    "BULK_OPERATION_ROUTE": "_faults",
    "BULK_UPDATE_ROUTE": "_faults",
    "Fault": "_faults",
    "Faults": "_faults",
    "EmulatorStats": "_log",
    "RecordedRequest": "_log",
    "ProcessingSettings": "_operations",
    "EmulatorRateLimits": "_ratelimit",
    "run": "_serve",
    "seeded_channel_id": "_serve",
    "serve": "_serve",
    "Channel": "_store",
    "ChannelType": "_store",
    "Message": "_store",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # asked once: later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "KnockEmulator",
    # the store
    "Channel",
    "ChannelType",
    "Message",
    # time
    "Clock",
    "ManualClock",
    "FastClock",
    "SystemClock",
    # settings
    "ProcessingSettings",
    "EmulatorRateLimits",
    # faults and what happened
    "BULK_OPERATION_ROUTE",
    "BULK_UPDATE_ROUTE",
    "Fault",
    "Faults",
    "EmulatorStats",
    "RecordedRequest",
    # standalone
    "run",
    "serve",
    "seeded_channel_id",
]
