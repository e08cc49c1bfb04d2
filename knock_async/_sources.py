"""What a ``FanOut`` submits from: a lazy source of ``(key, request)`` pairs. Here the
protocol and ``update_many``'s channels; the chunks of the ``_all`` methods are in
``_chunks`` (loaded with the bulk families, on first use)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

from ._requests import Request

__all__ = ["ChannelSource", "Source"]


class Source(Protocol):
    """What a fan-out submits: ``take()`` the next ``(key, request)`` (``None`` once there is
    nothing more); ``keys`` every key taken or known so far, in order."""

    keys: list[str]

    @property
    def exhausted(self) -> bool: ...

    def untaken(self) -> int:
        """Submissions known or expected but not taken yet."""
        ...

    def items_of(self, key: str) -> range | None:
        """The input's indices a key's request carries (``None``: not a chunk)."""
        ...

    async def take(self) -> tuple[str, Request] | None: ...


class ChannelSource:
    """``update_many``'s channels, every key known from the start."""

    def __init__(self, channel_ids: list[str], make_request: Callable[[str], Request]) -> None:
        self.keys = channel_ids
        self._pending = deque(channel_ids)
        self._make_request = make_request

    @property
    def exhausted(self) -> bool:
        return not self._pending

    def untaken(self) -> int:
        return len(self._pending)

    def items_of(self, key: str) -> range | None:
        return None

    async def take(self) -> tuple[str, Request] | None:
        if not self._pending:
            return None
        channel_id = self._pending.popleft()
        return channel_id, self._make_request(channel_id)
