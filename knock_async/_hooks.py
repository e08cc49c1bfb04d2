"""Instrumentation hooks: what the client did, as frozen event records. Pure.

``KnockClient(hooks=[...])`` calls every hook with one record per thing that happened: a request
sent and answered, a retry scheduled, a wait for the client's own rate limiter, a poll's
observation, a poll error ridden out. A hook is any callable taking the record (stamina's
instrumentation hooks and h11's event objects are the models): it runs inline, so it should be
quick; one that raises is logged and skipped, never breaking the request it watches.

A hook is synchronous: ``KnockClient`` refuses a coroutine function (awaiting it would put the
hook's I/O inside every request's timeout and the limiter's pacing). What it returns for a
``RequestSent`` may be a context manager: the transport enters it before the request goes out
and exits it when the try ends, answered, failed or cancelled (with the exception), so a tracer
can make its span current around the request.

Records carry what a log line or a metric needs and nothing that could hold a secret: no API
key, no headers, no body. Paths are route templates (``/v1/bulk_operations/{id}``),
which keep ids out of metric labels.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeAlias

import attrs

from ._errors import APIConnectionError, KnockError

if TYPE_CHECKING:
    from ._requests import Request

__all__ = [
    "Hook",
    "HookEvent",
    "FollowStopped",
    "PollErrorRiddenOut",
    "PollObserved",
    "RateLimitWait",
    "RequestAnswered",
    "RequestSent",
    "RetryScheduled",
    "Watch",
    "emit",
    "poll_error_ridden_out",
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


@attrs.frozen(kw_only=True)
class PollErrorRiddenOut:
    """A poll of an operation failed and the follow goes on (within ``PollPolicy.error_budget``).

    ``error_type`` is the transport failure (``"timeout"``, ``"connection"``, ``"not_sent"``),
    the HTTP status as a string (``"503"``), or ``"unreadable_body"``; ``consecutive`` counts
    the errors in a row so far, this one included."""

    operation_id: str
    error_type: str
    consecutive: int


@attrs.frozen(kw_only=True)
class FollowStopped:
    """The follow of an operation ended before the operation did: it gave up
    (``reason="gave_up"``, ``error_type`` the error's class, e.g. ``"PollTimeoutError"``) or
    its consumer stopped it (``reason="stopped"``: a ``break``, a cancellation, ``aclose()``).
    The operation goes on server-side; a resumed follow reports again from its next snapshot.
    Sent only for a follow that had reported a snapshot (``PollObserved``)."""

    operation_id: str
    reason: str
    error_type: str | None


HookEvent: TypeAlias = (
    RequestSent
    | RequestAnswered
    | RetryScheduled
    | RateLimitWait
    | PollObserved
    | PollErrorRiddenOut
    | FollowStopped
)


class Hook(Protocol):
    """Anything called with each event record: a function, or an object with ``__call__``.

    Synchronous. For a ``RequestSent`` it may return a context manager, held open around the
    request; any other return value is ignored."""

    def __call__(self, event: HookEvent, /) -> AbstractContextManager[object] | None: ...


def emit(hooks: Iterable[Hook], event: HookEvent) -> None:
    """Calls every hook with ``event``; a hook that raises is logged and the others still run."""
    for hook in hooks:
        try:
            result: object = hook(event)
        except Exception:
            # The hook watches the request; its failure must not become the request's.
            logger.exception("instrumentation hook %r raised on %s", hook, type(event).__name__)
        else:
            if result is not None:
                _dropped(hook, result)


class Watch:
    """One try as the hooks see it: its ``RequestSent`` record (told to every hook when made),
    when it left on the client's clock (after the hooks ran), and the context managers the
    hooks returned for it, entered in hook order until ``close``."""

    __slots__ = ("_entered", "record", "sent_at")

    def __init__(
        self, hooks: Iterable[Hook], record: RequestSent, clock: Callable[[], float]
    ) -> None:
        self.record = record
        self._entered: list[AbstractContextManager[object]] = []
        for hook in hooks:
            try:
                result: object = hook(record)  # typed loosely: a hook may return anything
                if isinstance(result, AbstractContextManager):
                    result.__enter__()
                    self._entered.append(result)
                elif result is not None:
                    _dropped(hook, result)
            except Exception:
                logger.exception("instrumentation hook %r raised on RequestSent", hook)
        self.sent_at = clock()

    def close(self, error: BaseException | None) -> None:
        """Exits the entered context managers, last first, with ``error`` (``None``: the try
        ended with a record told to the hooks). An ``__exit__`` cannot swallow ``error``; one
        that raises is logged. Idempotent."""
        entered = self._entered
        while entered:
            manager = entered.pop()
            try:
                if error is None:
                    manager.__exit__(None, None, None)
                else:
                    manager.__exit__(type(error), error, error.__traceback__)
            except Exception:
                logger.exception("instrumentation context manager %r raised on exit", manager)


def _dropped(hook: Hook, result: object) -> None:
    if inspect.iscoroutine(result):
        # A plain function returning a coroutine slipped past KnockClient's check: close it
        # rather than leave "never awaited" to the garbage collector, and say why.
        result.close()
        logger.error(
            "instrumentation hook %r returned a coroutine, which is never awaited: hooks run "
            "inline; hand async work to a task (asyncio.get_running_loop().create_task(...))",
            hook,
        )


def poll_error_ridden_out(
    operation_id: str, error: BaseException, consecutive: int
) -> PollErrorRiddenOut:
    """The record of a poll's ``error`` that the follow of ``operation_id`` rides out."""
    if isinstance(error, APIConnectionError):
        error_type = error.failure.value
    elif isinstance(error, KnockError) and error.status is not None and error.status >= 300:
        error_type = str(error.status)
    else:
        error_type = "unreadable_body"  # a 2xx whose body is not JSON at all
    return PollErrorRiddenOut(
        operation_id=operation_id, error_type=error_type, consecutive=consecutive
    )


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
