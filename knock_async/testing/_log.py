"""What the emulator received and answered: the request log and the counters."""

from __future__ import annotations

import itertools
import json
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import attrs
from multidict import CIMultiDict, CIMultiDictProxy

from ._auth import redact_authorization

__all__ = [
    "BODY_PREFIX_BYTES",
    "EmulatorStats",
    "RecordedRequest",
    "RequestLog",
    "redacted_headers",
]

BODY_PREFIX_BYTES = 4096  # what the log keeps of each body
_ENTRY_OVERHEAD = 512  # a rough size of an entry without its body and headers


_SENSITIVE = ("Authorization", "Proxy-Authorization")


def redacted_headers(headers: Mapping[str, str]) -> CIMultiDictProxy[str]:
    """A read-only, case-insensitive copy of ``headers`` with credentials redacted."""
    copy: CIMultiDict[str] = CIMultiDict(headers)
    for name in _SENSITIVE:
        if name in copy:
            # Every occurrence (they move after the other headers).
            values = copy.popall(name)
            for value in values:
                copy.add(name, redact_authorization(value))
    return CIMultiDictProxy(copy)


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request as the emulator received it, and the status it answered.

    ``path`` is the raw (still percent-encoded) path; ``headers`` are case-insensitive with the
    ``Authorization`` value redacted (``"Bearer [REDACTED]"``); ``status`` is ``None`` when a
    scripted fault dropped the connection. ``route`` is the matched route template, ``None``
    for an unrouted path; ``fault`` says whether a scripted HTTP fault applied.
    ``ignored_fields`` names the unknown top-level body fields the emulator accepted and
    ignored (outside strict mode). ``body`` keeps at most the first 4 KiB of the body
    (``body_size`` is the whole size; ``body_truncated`` says whether some was left out).
    """

    method: str
    path: str
    query: str
    headers: CIMultiDictProxy[str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    body_size: int = attrs.field(default=-1, repr=False)
    route: str | None
    status: int | None
    request_id: str | None
    received_at: datetime
    fault: bool = False
    ignored_fields: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.body_size < 0:
            object.__setattr__(self, "body_size", len(self.body))

    @property
    def body_truncated(self) -> bool:
        """Whether ``body`` is only the start of a larger body."""
        return self.body_size > len(self.body)

    def json(self) -> Any:
        """The body parsed as JSON (``None`` for an empty body); raises ``ValueError`` if it is
        not JSON, or if only its start was kept."""
        if self.body_truncated:
            raise ValueError(
                f"only the first {len(self.body)} of {self.body_size} bytes of the body were kept"
            )
        return json.loads(self.body) if self.body else None

    @property
    def footprint(self) -> int:
        """About how many bytes this entry holds."""
        headers = sum(map(len, itertools.chain.from_iterable(self.headers.items())))
        return _ENTRY_OVERHEAD + len(self.body) + headers + len(self.path) + len(self.query)


class RequestLog:
    """The latest requests, bounded both in entries (``max_entries``) and in bytes
    (``max_bytes``, counting each entry's kept body prefix and headers): the oldest go first.
    ``None`` lifts a bound."""

    def __init__(self, *, max_entries: int | None, max_bytes: int | None) -> None:
        self.max_bytes = max_bytes
        self._entries: deque[tuple[RecordedRequest, int]] = deque(maxlen=max_entries)
        self._bytes = 0

    def append(self, entry: RecordedRequest) -> None:
        if self._entries.maxlen == 0:
            return
        if self._entries.maxlen is not None and len(self._entries) == self._entries.maxlen:
            self._bytes -= self._entries[0][1]
        size = entry.footprint
        self._entries.append((entry, size))
        self._bytes += size
        while self.max_bytes is not None and self._bytes > self.max_bytes and self._entries:
            self._bytes -= self._entries.popleft()[1]

    @property
    def bytes(self) -> int:
        """About how many bytes the kept entries hold."""
        return self._bytes

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def __iter__(self) -> Iterator[RecordedRequest]:
        return (entry for entry, _ in self._entries)

    def __len__(self) -> int:
        return len(self._entries)


@attrs.define(kw_only=True)
class EmulatorStats:
    """Counters since the emulator started.

    ``responses`` counts answers by status (``responses[429]`` is every 429 sent, scripted
    ones included); ``rate_limited`` counts the 429s the rate limiter itself decided;
    ``dropped`` counts connections closed without an answer by a scripted fault;
    ``in_flight`` is how many requests are being handled now and ``peak_concurrent_requests``
    the most there ever were at once (to check a client's concurrency bound).
    """

    requests: int = 0
    in_flight: int = 0
    peak_concurrent_requests: int = 0
    responses: Counter[int] = attrs.Factory(Counter)
    rate_limited: int = 0
    dropped: int = 0
    faults: int = 0
