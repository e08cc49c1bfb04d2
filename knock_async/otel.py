"""OpenTelemetry spans and metrics for ``knock_async`` (``pip install 'knock-async[otel]'``).

``KnockClient(hooks=[OpenTelemetryHook()])`` makes one ``CLIENT`` span per HTTP request, named
and annotated as OpenTelemetry's HTTP client semantic conventions say
(``http.request.method``, ``url.template``, ``server.address``, ``server.port``,
``http.response.status_code``, ``http.request.resend_count``, ``error.type``). The span starts
when the request leaves the client's limiter and is the current span while the request runs,
so whatever runs inside it (aiohttp's own tracing, its instrumentation) nests under it; it
ends when the answer is read, or with ``error.type`` ``"cancelled"`` when the request is
cancelled. Span times are the wall clock, also for a client running on an injected clock.

Each followed bulk operation gets an ``INTERNAL`` span ``follow bulk operation`` (attribute
``knock_async.operation.id``) from its first snapshot (the one the POST returned, or the
first poll's) to the snapshot that ends it, with one ``snapshot`` event per observation and
one ``poll_error`` event per poll error ridden out. It is a child of the span current where
the follow began. A follow that stops before the end (a timeout, an error, a cancelled
consumer) leaves its span open; a resumed poll of the same operation carries it on.

Metrics:

* ``http.client.request.duration`` (histogram, s, wall clock): every request, same attributes;
* ``knock_async.retries`` (counter): retries scheduled, by method, route and reason;
* ``knock_async.rate_limit.wait`` (histogram, s): time the client's own limiter held a request;
* ``knock_async.operations.followed`` (counter): bulk operations followed to their end, by
  final status;
* ``knock_async.poll.errors_ridden_out`` (counter): poll errors a follow rode out, by
  ``error.type``.

Only ``opentelemetry-api`` is needed: without an SDK configured, everything is a no-op.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from types import TracebackType

try:
    from opentelemetry import context, metrics, trace
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "knock_async.otel needs opentelemetry-api: pip install 'knock-async[otel]'"
    ) from exc

from ._hooks import (
    FollowStopped,
    HookEvent,
    PollErrorRiddenOut,
    PollObserved,
    RateLimitWait,
    RequestAnswered,
    RequestSent,
    RetryScheduled,
)
from ._version import __version__

__all__ = ["OpenTelemetryHook"]

_SCOPE = "knock_async"
_FOLLOW = "follow bulk operation"


class OpenTelemetryHook:
    """A hook turning the client's events into OpenTelemetry spans and metrics.

    ``tracer_provider``/``meter_provider`` default to the global ones (set by the application's
    OpenTelemetry setup).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider)
        self._duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
        )
        self._retries = meter.create_counter(
            "knock_async.retries", unit="{retry}", description="Retries scheduled."
        )
        self._wait = meter.create_histogram(
            "knock_async.rate_limit.wait",
            unit="s",
            description="Time a request waited for the client's own rate limiter.",
        )
        self._followed = meter.create_counter(
            "knock_async.operations.followed",
            unit="{operation}",
            description="Bulk operations followed to their end.",
        )
        self._ridden_out = meter.create_counter(
            "knock_async.poll.errors_ridden_out",
            unit="{error}",
            description="Poll errors a follow rode out (within its error budget).",
        )
        # The span of each operation being followed, by id, until its end is seen.
        self._operations: dict[str, Span] = {}
        # This hook's request span open in the running task, if any: the answer's record
        # finds its span here (one variable per hook: two hooks never mix their spans).
        self._open: contextvars.ContextVar[_RequestSpan | None] = contextvars.ContextVar(
            "knock_async_otel_request", default=None
        )

    def __repr__(self) -> str:
        return "OpenTelemetryHook()"

    def __call__(self, event: HookEvent, /) -> _RequestSpan | None:
        if isinstance(event, RequestSent):
            return self._sent(event)
        if isinstance(event, RequestAnswered):
            request = self._open.get()
            if request is not None:
                request.answered = event
        elif isinstance(event, RetryScheduled):
            self._retries.add(
                1,
                {
                    "http.request.method": event.method,
                    "url.template": event.route,
                    "knock_async.retry.reason": event.why,
                },
            )
        elif isinstance(event, RateLimitWait):
            self._wait.record(event.seconds, {"knock_async.rate_limit.tier": event.tier})
        elif isinstance(event, PollObserved):
            self._observed(event)
        elif isinstance(event, FollowStopped):
            self._stopped(event)
        elif isinstance(event, PollErrorRiddenOut):
            self._ridden_out.add(1, {"error.type": event.error_type})
            span = self._operations.get(event.operation_id)
            if span is not None:
                span.add_event(
                    "poll_error",
                    {
                        "error.type": event.error_type,
                        "knock_async.poll.consecutive_errors": event.consecutive,
                    },
                )
        return None

    def _sent(self, event: RequestSent) -> _RequestSpan:
        attributes: dict[str, str | int] = {
            "http.request.method": event.method,
            "url.template": event.route,
            "server.address": event.server_address,
        }
        if event.server_port is not None:
            attributes["server.port"] = event.server_port
        span_attributes = dict(attributes)
        if event.attempt > 1:
            span_attributes["http.request.resend_count"] = event.attempt - 1
        span = self._tracer.start_span(
            f"{event.method} {event.route}", kind=SpanKind.CLIENT, attributes=span_attributes
        )
        return _RequestSpan(span, attributes, self._duration, self._open)

    def _observed(self, event: PollObserved) -> None:
        span = self._operations.get(event.operation_id)
        if span is None:
            span = self._tracer.start_span(
                _FOLLOW,
                kind=SpanKind.INTERNAL,
                attributes={"knock_async.operation.id": event.operation_id},
            )
            self._operations[event.operation_id] = span
        snapshot: dict[str, str | float] = {"knock_async.operation.status": event.status}
        if event.fraction is not None:
            snapshot["knock_async.operation.fraction"] = event.fraction
        span.add_event("snapshot", snapshot)
        if event.next_poll_at is None:  # the end: completed or failed
            del self._operations[event.operation_id]
            span.set_attribute("knock_async.operation.status", event.status)
            if event.status == "failed":
                span.set_status(Status(StatusCode.ERROR, "the bulk operation failed"))
            span.end()
            self._followed.add(1, {"knock_async.operation.status": event.status})

    def _stopped(self, event: FollowStopped) -> None:
        """A follow that ended before its operation: its span ends here (an error if it gave
        up), so no span stays open for the hook's lifetime."""
        span = self._operations.pop(event.operation_id, None)
        if span is None:
            return
        span.set_attribute("knock_async.follow.stopped", event.reason)
        if event.error_type is not None:
            span.set_attribute("error.type", event.error_type)
            span.set_status(Status(StatusCode.ERROR, f"the follow gave up: {event.error_type}"))
        span.end()


class _RequestSpan:
    """One request's span, current from ``__enter__`` (the request leaves) to ``__exit__``
    (its try ended, or was cancelled); the duration is measured on the wall clock."""

    __slots__ = ("_attributes", "_duration", "_open", "_start", "_tokens", "answered", "span")

    def __init__(
        self,
        span: Span,
        attributes: dict[str, str | int],
        duration: metrics.Histogram,
        open_request: contextvars.ContextVar[_RequestSpan | None],
    ) -> None:
        self.span = span
        self._open = open_request
        self._attributes = attributes
        self._duration = duration
        self.answered: RequestAnswered | None = None
        self._start = 0.0
        self._tokens: (
            tuple[contextvars.Token[Context], contextvars.Token[_RequestSpan | None]] | None
        ) = None

    def __repr__(self) -> str:
        return f"<request span {self.span.get_span_context().span_id:016x}>"

    def __enter__(self) -> Span:
        self._start = time.perf_counter()
        self._tokens = (
            context.attach(trace.set_span_in_context(self.span)),
            self._open.set(self),
        )
        return self.span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        duration = time.perf_counter() - self._start
        if self._tokens is not None:
            otel_token, open_token = self._tokens
            self._tokens = None
            self._open.reset(open_token)
            context.detach(otel_token)
        attributes = self._attributes
        answered = self.answered
        error_type: str | None = None
        if answered is not None:
            if answered.status is not None:
                attributes["http.response.status_code"] = answered.status
            if answered.request_id is not None:
                self.span.set_attribute("knock_async.request_id", answered.request_id)
            error_type = answered.error_type
        elif exc is not None:
            error_type = (
                "cancelled" if isinstance(exc, asyncio.CancelledError) else type(exc).__qualname__
            )
        if error_type is not None:
            attributes["error.type"] = error_type
            self.span.set_status(Status(StatusCode.ERROR))
        self.span.set_attributes(attributes)
        self._duration.record(duration, attributes)
        self.span.end()
