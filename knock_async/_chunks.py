"""What a ``FanOut`` submits from (``Source``: lazy ``(key, request)`` pairs; ``update_many``'s
channels are ``_fanout.ChannelSource``), and the ``_all`` methods' source: the items of a bulk
endpoint, read in chunks.

A chunk source reads its input (an iterable or an async iterable) only when the fan-out asks
for the next request, at most one chunk at a time: the endpoint's cap of items, fewer when
``tenants/bulk/delete``'s request line would pass Knock's 8,000 bytes. Each item is checked as
it is read, so a bad item is refused, naming its index in the whole input, before its chunk
is sent. Pure: no I/O but reading the caller's iterable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import Protocol

from yarl import URL

from ._endpoints import MAX_REQUEST_LINE, Endpoint, assemble, endpoint_url, query_item
from ._endpoints import request_line as line_of
from ._requests import Request

__all__ = ["ChunkSource", "Source", "check_input"]


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


def check_input(row: Endpoint, items: object) -> None:
    """An ``_all`` method's input must be an iterable or an async iterable of items."""
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable | AsyncIterable):
        raise TypeError(
            f"{row.items} must be an iterable or an async iterable of items, "
            f"got {type(items).__name__}"
        )


class ChunkSource:
    """The items of one endpoint, read lazily a chunk at a time; keys are the chunks' index
    ranges in the input (``users[0:1000]``)."""

    def __init__(
        self,
        row: Endpoint,
        items: Iterable[object] | AsyncIterable[object],
        *,
        base_url: URL,
        headers: Mapping[str, str],
        collection: object = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        check_input(row, items)
        self._row = row
        self._url = endpoint_url(row, base_url, collection)  # a bad collection: now
        self._headers = headers
        self._extra = extra
        self._sync: Iterator[object] | None = None
        self._async: AsyncIterator[object] | None = None
        if isinstance(items, AsyncIterable):
            self._async = aiter(items)
        else:
            self._sync = iter(items)
        # Known only for a sized input: how many items have not been read yet.
        self._length = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
        self._read = 0  # items read from the input (checked or not)
        self._carried: object = _NOTHING  # read, but did not fit the last request line
        self._done = False
        self._lock = asyncio.Lock()  # an async generator cannot be read from two tasks
        self._ranges: dict[str, range] = {}
        self.keys: list[str] = []

    @property
    def exhausted(self) -> bool:
        return self._done

    @property
    def read(self) -> int:
        """Items read from the input so far."""
        return self._read

    def untaken(self) -> int:
        if self._done or self._length is None:
            return 0
        left = self._length - self._read + (self._carried is not _NOTHING)
        return -(-left // self._row.cap)

    def items_of(self, key: str) -> range | None:
        return self._ranges.get(key)

    async def _next(self) -> object:
        if self._carried is not _NOTHING:
            item, self._carried = self._carried, _NOTHING
            return item
        try:
            if self._sync is not None:
                item = next(self._sync)
            else:
                assert self._async is not None
                item = await anext(self._async)
        except (StopIteration, StopAsyncIteration):
            return _NOTHING
        self._read += 1
        return item

    async def take(self) -> tuple[str, Request] | None:
        async with self._lock:
            if self._done:
                return None
            try:
                return await self._chunk()
            except BaseException:
                self._done = True  # a bad item (or a broken input) ends the sending
                raise

    async def _chunk(self) -> tuple[str, Request] | None:
        row = self._row
        first = self._read - (self._carried is not _NOTHING)
        checked: list[object] = []
        parts: list[str] = []
        line = line_of(self._url, [])
        while len(checked) < row.cap:
            item = await self._next()
            if item is _NOTHING:
                self._done = True
                break
            index = first + len(checked)
            value = row.check(f"{row.items}[{index}]", item)
            if row.in_query:
                part = query_item(row, value)
                grown = line + len(part) + (1 if parts else 0)  # "&" between two
                if grown > MAX_REQUEST_LINE:
                    if not parts:
                        raise ValueError(
                            f"{row.items}[{index}] is too long for any request: alone its "
                            f"request line would pass Knock's {MAX_REQUEST_LINE:,} bytes"
                        )
                    self._carried = item  # starts the next request
                    break
                parts.append(part)
                line = grown
            checked.append(value)
        if not checked:
            return None
        key = f"{row.items}[{first}:{first + len(checked)}]"
        self._ranges[key] = range(first, first + len(checked))
        self.keys.append(key)
        request = assemble(row, self._url, self._headers, checked, extra=self._extra, first=first)
        return key, request


_NOTHING = object()
