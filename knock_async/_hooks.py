"""Instrumentation hooks: what the client did, as frozen event records. Pure.

``KnockClient(hooks=[...])`` calls every hook with one record per thing that happened: a request
sent and answered, a retry scheduled, a wait for the client's own rate limiter, a poll's
observation. A hook is any callable taking the record (stamina's instrumentation hooks and h11's
event objects are the models): it runs inline, so it should be quick; one that raises is logged
and skipped, never breaking the request it watches.

Records carry what a log line or a metric needs and nothing that could hold a secret: no API
key, no headers, no body. Paths are route templates (``/v1/bulk_operations/{id}``),
which keep ids out of metric labels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeAlias

import attrs

if TYPE_CHECKING:
    from ._requests import Request

__all__ = [
    "Hook",
    "HookEvent",
    "PollObserved",
    "RateLimitWait",
    "RequestAnswered",
    "RequestSent",
    "RetryScheduled",
    "emit",
    "request_answered",
    "request_sent",
]

logger = logging.getLogger("knock_async")


@attrs.frozen(kw_only=True)
class RequestSent:
    """A request is about to go out (after any wait for the rate limiter).

    ``route`` is the path template; ``server_address`` the host; ``attempt`` counts from 1 for
    each try of the same request; ``tier`` is the rate-limit tier (``"post"`` or ``"get"``).
    """

    method: str
    route: str
    server_address: str
    server_port: int | None
    attempt: int
    tier: str


@attrs.frozen(kw_only=True)
class RequestAnswered:
    """A request's try ended: with an HTTP ``status``, or with ``status=None`` and an
    ``error_type`` (``"timeout"``, ``"connection"``, ``"not_sent"``) when no answer came, or
    ``"response_too_large"`` for a body over ``max_response_bytes``.

    ``duration`` is in seconds on the client's clock; ``request_id`` is Knock's
    ``x-request-id`` when the answer had one. ``error_type`` is also set for an HTTP error
    status (the status as a string, as OpenTelemetry's ``error.type`` does).
    """

    method: str
    route: str
    server_address: str
    server_port: int | None
    attempt: int
    tier: str
    status: int | None
    duration: float
    request_id: str | None
    error_type: str | None


@attrs.frozen(kw_only=True)
class RetryScheduled:
    """A failed try will be retried after ``delay`` seconds. ``why`` is the status
    (``"429"``) or the transport failure (``"timeout"``); ``attempt`` is the try that failed."""

    method: str
    route: str
    attempt: int
    why: str
    delay: float


@attrs.frozen(kw_only=True)
class RateLimitWait:
    """The client's own rate limiter held a request back for ``seconds`` on ``tier``."""

    tier: str
    seconds: float


@attrs.frozen(kw_only=True)
class PollObserved:
    """A poll saw an operation. ``fraction`` is ``Progress.fraction``; ``next_poll_at`` is when
    the next poll is due (``None`` once the operation has finished)."""

    operation_id: str
    status: str
    fraction: float | None
    next_poll_at: datetime | None


HookEvent: TypeAlias = RequestSent | RequestAnswered | RetryScheduled | RateLimitWait | PollObserved


class Hook(Protocol):
    """Anything called with each event record: a function, or an object with ``__call__``."""

    def __call__(self, event: HookEvent, /) -> None: ...


def emit(hooks: Iterable[Hook], event: HookEvent) -> None:
    """Calls every hook with ``event``; a hook that raises is logged and the others still run."""
    for hook in hooks:
        try:
            hook(event)
        except Exception:
            # The hook watches the request; its failure must not become the request's.
            logger.exception("instrumentation hook %r raised on %s", hook, type(event).__name__)


def request_sent(request: Request, attempt: int) -> RequestSent:
    """The record of ``request``'s try number ``attempt`` leaving."""
    return RequestSent(
        method=request.method,
        route=request.route,
        server_address=request.url.host or "",
        server_port=request.url.port,
        attempt=attempt,
        tier=str(request.tier),
    )


def request_answered(
    sent: RequestSent,
    *,
    duration: float,
    status: int | None = None,
    request_id: str | None = None,
    failure: str | None = None,
) -> RequestAnswered:
    """The record of the end of the try ``sent`` announced: an HTTP ``status`` and/or the
    ``failure``'s name (a transport failure, or ``"response_too_large"``)."""
    error_type = failure
    if error_type is None and status is not None and status >= 400:
        error_type = str(status)
    return RequestAnswered(
        **attrs.asdict(sent, recurse=False),
        status=status,
        duration=duration,
        request_id=request_id,
        error_type=error_type,
    )
