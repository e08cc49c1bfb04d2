"""``USE_CLIENT_DEFAULT`` and the ``Clock`` an application may inject. Pure.

httpx's model: a per-call option left at ``USE_CLIENT_DEFAULT`` takes the client's setting,
so ``None`` is free to mean "no limit" (``timeout=None``: no timeout) everywhere.
"""

from __future__ import annotations

import enum
from typing import Final, Literal, Protocol, TypeAlias, runtime_checkable

__all__ = ["USE_CLIENT_DEFAULT", "Clock", "UseClientDefault"]


class _Default(enum.Enum):
    # An enum member, so that type checkers narrow ``x is USE_CLIENT_DEFAULT`` for free.
    USE_CLIENT_DEFAULT = "USE_CLIENT_DEFAULT"

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


UseClientDefault: TypeAlias = Literal[_Default.USE_CLIENT_DEFAULT]
USE_CLIENT_DEFAULT: Final = _Default.USE_CLIENT_DEFAULT


@runtime_checkable
class Clock(Protocol):
    """Time for the client: ``KnockClient(clock=...)``. Retries, pacing and polls measure
    with ``monotonic()`` and wait with ``sleep()``, so a clock whose ``sleep`` moves its own
    time forward (the emulator's ``ManualClock`` or ``FastClock``) runs them in no real time.
    """

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until ``monotonic()`` has moved ``seconds`` forward."""
        ...
