"""What the emulator received and answered: the request log and the counters."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs
from multidict import CIMultiDict, CIMultiDictProxy

from ._auth import redact_authorization

__all__ = ["EmulatorStats", "RecordedRequest", "redacted_headers"]


def redacted_headers(headers: Mapping[str, str]) -> CIMultiDictProxy[str]:
    """A read-only, case-insensitive copy of ``headers`` with credentials redacted."""
    copy: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        sensitive = name.lower() in ("authorization", "proxy-authorization")
        copy.add(name, redact_authorization(value) if sensitive else value)
    return CIMultiDictProxy(copy)


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request as the emulator received it, and the status it answered.

    ``path`` is the raw (still percent-encoded) path; ``headers`` are case-insensitive with the
    ``Authorization`` value redacted (``"Bearer [REDACTED]"``); ``status`` is ``None`` when a
    scripted fault dropped the connection. ``route`` is the matched route template, ``None``
    for an unrouted path; ``fault`` says whether a scripted HTTP fault applied.
    ``ignored_fields`` names the unknown top-level body fields the emulator accepted and
    ignored (outside strict mode).
    """

    method: str
    path: str
    query: str
    headers: CIMultiDictProxy[str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    route: str | None
    status: int | None
    request_id: str | None
    received_at: datetime
    fault: bool = False
    ignored_fields: tuple[str, ...] = ()

    def json(self) -> Any:
        """The body parsed as JSON (``None`` for an empty body); raises ``ValueError`` if it is
        not JSON."""
        return json.loads(self.body) if self.body else None


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
