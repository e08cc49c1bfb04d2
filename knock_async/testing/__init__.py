"""An embedded Knock emulator for tests, demos and benchmarks.

``async with KnockEmulator() as emu:`` serves Knock's channel bulk update
(``POST /v1/channels/{channel_id}/messages/bulk/{action}``) and bulk operation
(``GET /v1/bulk_operations/{id}``) endpoints on an ephemeral loopback port at ``emu.base_url``,
over a message store seeded with ``emu.add_channel()`` and ``emu.add_messages()``. Operations
are processed over time with every filter applied for real; rate limits, the retention window
and scripted faults (``emu.faults``) behave as the real API's do. Time comes from a clock the
test may control (``ManualClock``).

With pytest, the ``knock_emulator`` fixture gives a running emulator per test.
"""

from ._clock import Clock, FastClock, ManualClock, SystemClock
from ._emulator import KnockEmulator
from ._faults import BULK_OPERATION_ROUTE, BULK_UPDATE_ROUTE, Fault, Faults
from ._log import EmulatorStats, RecordedRequest
from ._operations import ProcessingSettings
from ._ratelimit import EmulatorRateLimits
from ._serve import run, seeded_channel_id, serve
from ._store import Channel, ChannelType, Message

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
