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
