"""The OpenTelemetry hook, read back through the real SDK's in-memory exporter and reader: fed
records directly, and end to end through a client against the emulator."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from yarl import URL

import knock_async as ka
from knock_async._hooks import PollObserved, RateLimitWait, RequestAnswered, RetryScheduled
from knock_async.otel import OpenTelemetryHook
from knock_async.testing import FastClock, KnockEmulator


@attrs.frozen
class Telemetry:
    hook: OpenTelemetryHook
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider

    def finished(self) -> tuple[ReadableSpan, ...]:
        return self.spans.get_finished_spans()

    def points(self, name: str) -> list[Any]:
        """The data points of metric ``name`` collected so far."""
        data = self.metrics.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    hook = OpenTelemetryHook(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield Telemetry(hook, exporter, reader, tracer_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def _answered(**changes: Any) -> RequestAnswered:
    values: dict[str, Any] = {
        "method": "POST",
        "route": "/v1/channels/{channel_id}/messages/bulk/{action}",
        "server_address": "api.knock.app",
        "server_port": 443,
        "attempt": 1,
        "tier": "post",
        "status": 200,
        "duration": 0.25,
        "request_id": "req_123",
        "error_type": None,
    }
    values.update(changes)
    return RequestAnswered(**values)


def test_one_client_span_per_request_with_http_semconv(telemetry: Telemetry) -> None:
    """An answered request becomes one CLIENT span named "METHOD template", carrying the HTTP
    client semantic conventions' attributes and lasting the measured duration."""
    telemetry.hook(_answered())
    (span,) = telemetry.finished()
    assert span.name == "POST /v1/channels/{channel_id}/messages/bulk/{action}"
    assert span.kind == SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "http.request.method": "POST",
        "url.template": "/v1/channels/{channel_id}/messages/bulk/{action}",
        "server.address": "api.knock.app",
        "server.port": 443,
        "http.response.status_code": 200,
        "knock_async.request_id": "req_123",
    }
    assert span.start_time is not None
    assert span.end_time is not None
    assert span.end_time - span.start_time == 250_000_000
    assert span.status.status_code == StatusCode.UNSET


def test_failed_request_span_is_an_error_with_its_type(telemetry: Telemetry) -> None:
    """A try that got no answer has no status code, an ``error.type`` and an ERROR status; a
    resend counts its earlier tries."""
    telemetry.hook(_answered(status=None, error_type="timeout", attempt=3, request_id=None))
    (span,) = telemetry.finished()
    attributes = dict(span.attributes or {})
    assert "http.response.status_code" not in attributes
    assert attributes["error.type"] == "timeout"
    assert attributes["http.request.resend_count"] == 2
    assert span.status.status_code == StatusCode.ERROR


def test_span_is_a_child_of_the_current_span(telemetry: Telemetry) -> None:
    """The request's span joins the trace of the code that awaited the request."""
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle web request") as parent:
        telemetry.hook(_answered())
    request_span = next(s for s in telemetry.finished() if s.kind == SpanKind.CLIENT)
    assert request_span.parent is not None
    assert request_span.parent.span_id == parent.get_span_context().span_id


def test_request_duration_histogram(telemetry: Telemetry) -> None:
    """Every request is recorded in ``http.client.request.duration`` with its attributes."""
    telemetry.hook(_answered(duration=0.5))
    telemetry.hook(_answered(duration=1.5, status=429, error_type="429"))
    points = telemetry.points("http.client.request.duration")
    by_status = {p.attributes["http.response.status_code"]: p for p in points}
    assert by_status[200].count == 1
    assert by_status[200].sum == 0.5
    assert by_status[429].sum == 1.5
    assert by_status[429].attributes["error.type"] == "429"


def test_retries_waits_and_followed_operations(telemetry: Telemetry) -> None:
    """Retries are counted by reason, limiter waits recorded by tier, and an operation counts
    as followed once it is seen finished."""
    route = "/v1/bulk_operations/{id}"
    telemetry.hook(RetryScheduled(method="GET", route=route, attempt=1, why="503", delay=0.4))
    telemetry.hook(RetryScheduled(method="GET", route=route, attempt=2, why="503", delay=0.8))
    telemetry.hook(RateLimitWait(tier="post", seconds=0.2))
    running = PollObserved(
        operation_id="op", status="processing", fraction=0.5, next_poll_at=datetime.now(UTC)
    )
    telemetry.hook(running)
    telemetry.hook(attrs.evolve(running, status="completed", fraction=1.0, next_poll_at=None))

    (retries,) = telemetry.points("knock_async.retries")
    assert retries.value == 2
    assert retries.attributes["knock_async.retry.reason"] == "503"
    (wait,) = telemetry.points("knock_async.rate_limit.wait")
    assert (wait.count, wait.sum) == (1, 0.2)
    assert wait.attributes == {"knock_async.rate_limit.tier": "post"}
    (followed,) = telemetry.points("knock_async.operations.followed")
    assert followed.value == 1
    assert followed.attributes == {"knock_async.operation.status": "completed"}


FAST = FastClock(speed=20.0)


@pytest.mark.knock_emulator(clock=FAST, rows_per_second=400.0, batch_size=50)
async def test_spans_and_metrics_for_a_followed_update(
    knock_emulator: KnockEmulator, telemetry: Telemetry
) -> None:
    """Against the emulator: one CLIENT span per request (the POST, then each poll) inside the
    application's span, the request duration recorded per status, and the operation counted
    as followed once."""
    emu = knock_emulator
    channel = emu.add_channel(type="in_app_feed")
    emu.add_messages(channel, 500, seed=4)
    emu.faults.add("GET", "/v1/bulk_operations/{id}", status=503)
    tracer = telemetry.tracer_provider.get_tracer("app")
    async with ka.KnockClient(
        api_key="sk_test_otel",
        base_url=emu.base_url,
        clock=FAST.monotonic,
        sleep=FAST.sleep,
        hooks=[telemetry.hook],
    ) as knock:
        with tracer.start_as_current_span("archive job") as job:
            op = await knock.channels.bulk.update_message_status(channel, "read")
            final = await knock.bulk_operations.poll(op)
    assert final.status == "completed"

    spans = [s for s in telemetry.finished() if s.kind == SpanKind.CLIENT]
    assert len(spans) == emu.stats.requests
    post, *gets = spans
    assert post.name == "POST /v1/channels/{channel_id}/messages/bulk/{action}"
    assert {s.name for s in gets} == {"GET /v1/bulk_operations/{id}"}
    port = URL(emu.base_url).port
    for span in spans:
        attributes = dict(span.attributes or {})
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["server.port"] == port
        assert span.parent is not None
        assert span.parent.span_id == job.get_span_context().span_id
    failed = [s for s in gets if s.status.status_code == StatusCode.ERROR]
    assert len(failed) == 1
    assert dict(failed[0].attributes or {})["error.type"] == "503"
    assert "sk_test_otel" not in repr([dict(s.attributes or {}) for s in spans])

    durations = telemetry.points("http.client.request.duration")
    assert sum(p.count for p in durations) == emu.stats.requests
    (followed,) = telemetry.points("knock_async.operations.followed")
    assert followed.value == 1


@pytest.mark.subprocess
def test_without_opentelemetry_the_import_says_which_extra() -> None:
    """Importing ``knock_async.otel`` without ``opentelemetry-api`` names the extra to install
    (the library itself imports without it)."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import knock_async\n"
        "try:\n"
        "    import knock_async.otel\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'knock-async[otel]'" in result.stdout
