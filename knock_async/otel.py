"""OpenTelemetry spans and metrics for ``knock_async`` (``pip install 'knock-async[otel]'``).

``KnockClient(hooks=[OpenTelemetryHook()])`` makes one ``CLIENT`` span per HTTP request, named
and annotated as OpenTelemetry's HTTP client semantic conventions say
(``http.request.method``, ``url.template``, ``server.address``, ``server.port``,
``http.response.status_code``, ``http.request.resend_count``, ``error.type``), and records:

* ``http.client.request.duration`` (histogram, s): every request, same attributes;
* ``knock_async.retries`` (counter): retries scheduled, by method, route and reason;
* ``knock_async.rate_limit.wait`` (histogram, s): time the client's own limiter held a request;
* ``knock_async.operations.followed`` (counter): bulk operations followed to their end, by
  final status.

Only ``opentelemetry-api`` is needed: without an SDK configured, everything is a no-op. The
span of a request is made when it ends (its start set from the measured duration), so it is a
child of whatever span is current where the request was awaited.
"""

from __future__ import annotations

import time

try:
    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "knock_async.otel needs opentelemetry-api: pip install 'knock-async[otel]'"
    ) from exc

from ._hooks import (
    HookEvent,
    PollObserved,
    RateLimitWait,
    RequestAnswered,
    RetryScheduled,
)
from ._version import __version__

__all__ = ["OpenTelemetryHook"]

_SCOPE = "knock_async"


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

    def __repr__(self) -> str:
        return "OpenTelemetryHook()"

    def __call__(self, event: HookEvent, /) -> None:
        if isinstance(event, RequestAnswered):
            self._answered(event)
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
        elif isinstance(event, PollObserved) and event.next_poll_at is None:
            self._followed.add(1, {"knock_async.operation.status": event.status})

    def _answered(self, event: RequestAnswered) -> None:
        attributes: dict[str, str | int] = {
            "http.request.method": event.method,
            "url.template": event.route,
            "server.address": event.server_address,
        }
        if event.server_port is not None:
            attributes["server.port"] = event.server_port
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        if event.error_type is not None:
            attributes["error.type"] = event.error_type
        self._duration.record(event.duration, attributes)

        span_attributes = dict(attributes)
        if event.attempt > 1:
            span_attributes["http.request.resend_count"] = event.attempt - 1
        if event.request_id is not None:
            span_attributes["knock_async.request_id"] = event.request_id
        end = time.time_ns()
        span = self._tracer.start_span(
            f"{event.method} {event.route}",
            kind=SpanKind.CLIENT,
            attributes=span_attributes,
            start_time=end - int(max(event.duration, 0.0) * 1e9),
        )
        if event.error_type is not None:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)
