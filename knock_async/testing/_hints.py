"""Noticing a client that waits for an emulator whose clock stands still.

On a ``ManualClock`` an operation moves only when the test calls ``advance()``, or when a client
on that clock (``knock_emulator.client()``, ``emu.client()``) sleeps between polls. A client
with a clock of its own (a plain ``KnockClient(base_url=emu.base_url)``) polls an operation that
never moves until its whole deadline has passed. Repeated polls of one unfinished operation at
one and the same emulated instant are the sign: the emulator says so once per operation in a log
warning, and on each such answer in the ``X-Knock-Emulator-Hint`` header. Pure: no aiohttp.
"""

from __future__ import annotations

import logging

__all__ = ["HINT_HEADER", "STILL_POLLS", "StandingStill"]

logger = logging.getLogger("knock_async.testing")

HINT_HEADER = "X-Knock-Emulator-Hint"
# A client on the emulator's clock moves it between two polls; a client polling on a clock of
# its own may poll twice before the test advances time on purpose (the CLI's tests do).
STILL_POLLS = 3
HINT = (
    "bulk operation {operation_id} was polled {polls} times while the emulator's ManualClock "
    "stood still at {now:g} s: it moves only by emu.advance() or by the sleeps of a client on "
    "it, so a client with a clock of its own waits for nothing until its deadline. Use "
    "knock_emulator.client() (or emu.client()), or advance the clock between polls."
)


class StandingStill:
    """Counts the polls of each unfinished operation made at the same emulated instant."""

    def __init__(self, *, polls: int = STILL_POLLS) -> None:
        self._polls = polls
        self._seen: dict[str, tuple[float, int]] = {}  # operation id -> (instant, polls there)
        self._told: set[str] = set()

    def poll(self, operation_id: str, now: float, *, finished: bool) -> str | None:
        """The hint for this poll of ``operation_id`` at emulated time ``now``, or ``None``."""
        if finished:
            self._seen.pop(operation_id, None)
            return None
        at, polls = self._seen.get(operation_id, (now, 0))
        polls = polls + 1 if at == now else 1
        self._seen[operation_id] = (now, polls)
        if polls < self._polls:
            return None
        hint = HINT.format(operation_id=operation_id, polls=polls, now=now)
        if operation_id not in self._told:
            self._told.add(operation_id)
            logger.warning("knock emulator: %s", hint)
        return hint
