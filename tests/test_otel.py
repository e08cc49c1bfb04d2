"""The OpenTelemetry hook, read back through the real SDK's in-memory exporter and reader: fed
records directly, and end to end through a client against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import attrs
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from yarl import URL

import knock_async as ka
from knock_async._hooks import (
    PollErrorRiddenOut,
    PollObserved,
    RateLimitWait,
    RequestAnswered,
    RequestSent,
    RetryScheduled,
)
from knock_async.otel import OpenTelemetryHook
from knock_async.testing import FastClock, KnockEmulator
from tests._hanging import hanging_server


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


_POST = "/v1/channels/{channel_id}/messages/bulk/{action}"


def _sent(**changes: Any) -> RequestSent:
    values: dict[str, Any] = {
        "method": "POST",
        "route": _POST,
        "server_address": "api.knock.app",
        "server_port": 443,
        "attempt": 1,
        "tier": "post",
    }
    values.update(changes)
    return RequestSent(**values)


def _answered(sent: RequestSent, **changes: Any) -> RequestAnswered:
    values: dict[str, Any] = {
        "status": 200,
        "duration": 0.25,
        "request_id": "req_123",
        "error_type": None,
    }
    values.update(changes)
    return RequestAnswered(**attrs.asdict(sent), **values)


def _request(hook: OpenTelemetryHook, sent: RequestSent, **answered: Any) -> None:
    """One try as the transport reports it: the send's context manager held around the
    request, the answer's record told inside it."""
    manager = hook(sent)
    assert manager is not None
    with manager:
        hook(_answered(sent, **answered))


def test_one_client_span_per_request_with_http_semconv(telemetry: Telemetry) -> None:
    """A request becomes one CLIENT span named "METHOD template", carrying the HTTP client
    semantic conventions' attributes, from the send's context manager entered to exited."""
    before = time.time_ns()
    _request(telemetry.hook, _sent())
    after = time.time_ns()
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
    assert before <= span.start_time <= span.end_time <= after
    assert span.status.status_code == StatusCode.UNSET


def test_failed_request_span_is_an_error_with_its_type(telemetry: Telemetry) -> None:
    """A try that got no answer has no status code, an ``error.type`` and an ERROR status; a
    resend counts its earlier tries."""
    _request(telemetry.hook, _sent(attempt=3), status=None, error_type="timeout", request_id=None)
    (span,) = telemetry.finished()
    attributes = dict(span.attributes or {})
    assert "http.response.status_code" not in attributes
    assert attributes["error.type"] == "timeout"
    assert attributes["http.request.resend_count"] == 2
    assert span.status.status_code == StatusCode.ERROR


def test_the_request_span_is_current_while_it_runs(telemetry: Telemetry) -> None:
    """The request's span is a child of the application's span and is itself the current
    span while the request runs (from the send's context manager entered to exited)."""
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle web request") as parent:
        manager = telemetry.hook(_sent())
        assert manager is not None
        with manager as request_span:
            inside = trace.get_current_span()
            with tracer.start_as_current_span("inside the request"):
                pass
        assert trace.get_current_span() is parent
    assert inside is request_span
    spans = {s.name: s for s in telemetry.finished()}
    client = spans["POST /v1/channels/{channel_id}/messages/bulk/{action}"]
    assert client.parent is not None
    assert client.parent.span_id == parent.get_span_context().span_id
    nested = spans["inside the request"]
    assert nested.parent is not None
    assert nested.parent.span_id == client.context.span_id


def test_two_hooks_each_close_their_own_span() -> None:
    """Two OpenTelemetry hooks on one client (two providers) each give the answer to their own
    request span, not to the other's."""
    exporters = [InMemorySpanExporter(), InMemorySpanExporter()]
    hooks = []
    for exporter in exporters:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        hooks.append(OpenTelemetryHook(tracer_provider=provider))
    sent = _sent()
    with contextlib.ExitStack() as around:
        for hook in hooks:
            manager = hook(sent)
            assert manager is not None
            around.enter_context(manager)
        for hook in hooks:
            hook(_answered(sent, request_id="req_both"))
    for exporter in exporters:
        (span,) = exporter.get_finished_spans()
        attributes = dict(span.attributes or {})
        assert attributes["http.response.status_code"] == 200
        assert attributes["knock_async.request_id"] == "req_both"


def test_request_duration_histogram(telemetry: Telemetry) -> None:
    """Every request is recorded in ``http.client.request.duration`` with its attributes, for
    the wall-clock time its span lasted."""
    for _ in range(2):
        _request(telemetry.hook, _sent())
    _request(telemetry.hook, _sent(), status=429, error_type="429")
    points = telemetry.points("http.client.request.duration")
    by_status = {p.attributes["http.response.status_code"]: p for p in points}
    assert by_status[200].count == 2
    assert by_status[429].count == 1
    assert by_status[429].attributes["error.type"] == "429"
    spans = telemetry.finished()
    assert (
        sum(p.sum for p in points)
        <= sum(((s.end_time or 0) - (s.start_time or 0)) / 1e9 for s in spans) + 0.01
    )


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

    # One span for the followed operation, in the job's trace, from its first snapshot (the
    # POST's answer) to its end, with the poll error it rode out.
    (follow,) = [s for s in telemetry.finished() if s.name == "follow bulk operation"]
    assert follow.parent is not None
    assert follow.parent.span_id == job.get_span_context().span_id
    assert dict(follow.attributes or {}) == {
        "knock_async.operation.id": op.id,
        "knock_async.operation.status": "completed",
    }
    assert follow.start_time is not None
    assert follow.end_time is not None
    assert post.end_time is not None
    assert post.end_time <= follow.start_time
    assert all((g.end_time or 0) <= follow.end_time for g in gets)
    names = [e.name for e in follow.events]
    assert names.count("poll_error") == 1
    snapshots = [dict(e.attributes or {}) for e in follow.events if e.name == "snapshot"]
    assert snapshots[0]["knock_async.operation.status"] == "queued"
    assert snapshots[-1] == {
        "knock_async.operation.status": "completed",
        "knock_async.operation.fraction": 1.0,
    }
    (ridden,) = telemetry.points("knock_async.poll.errors_ridden_out")
    assert (ridden.value, ridden.attributes) == (1, {"error.type": "503"})


def test_an_operation_span_from_first_snapshot_to_end(telemetry: Telemetry) -> None:
    """Each followed operation gets one span, opened by its first snapshot and ended by the
    one that finishes it (ERROR when the operation failed), with a ``snapshot`` event per
    observation and a ``poll_error`` event per error ridden out; two operations followed at
    once get a span each."""
    now = datetime.now(UTC)
    for operation_id in ("op-a", "op-b"):
        telemetry.hook(
            PollObserved(
                operation_id=operation_id, status="queued", fraction=None, next_poll_at=now
            )
        )
    telemetry.hook(PollErrorRiddenOut(operation_id="op-a", error_type="timeout", consecutive=1))
    assert telemetry.finished() == ()
    telemetry.hook(
        PollObserved(operation_id="op-a", status="completed", fraction=1.0, next_poll_at=None)
    )
    telemetry.hook(
        PollObserved(operation_id="op-b", status="failed", fraction=0.4, next_poll_at=None)
    )
    a, b = telemetry.finished()
    assert [s.name for s in (a, b)] == ["follow bulk operation"] * 2
    assert dict(a.attributes or {})["knock_async.operation.id"] == "op-a"
    assert [e.name for e in a.events] == ["snapshot", "poll_error", "snapshot"]
    assert dict(a.events[1].attributes or {}) == {
        "error.type": "timeout",
        "knock_async.poll.consecutive_errors": 1,
    }
    assert a.status.status_code == StatusCode.UNSET
    assert dict(b.attributes or {})["knock_async.operation.status"] == "failed"
    assert b.status.status_code == StatusCode.ERROR
    (ridden,) = telemetry.points("knock_async.poll.errors_ridden_out")
    assert (ridden.value, ridden.attributes) == (1, {"error.type": "timeout"})


async def test_aiohttp_tracing_nests_under_the_request_span(
    knock_emulator: KnockEmulator, telemetry: Telemetry
) -> None:
    """aiohttp's own trace signals (what its OpenTelemetry instrumentation listens to) fire
    while the request's span is current: what they start is a child of it."""
    tracer = telemetry.tracer_provider.get_tracer("aiohttp-instrumentation")
    seen: list[int] = []

    async def on_request_start(*_: object) -> None:
        seen.append(trace.get_current_span().get_span_context().span_id)
        with tracer.start_as_current_span("aiohttp request start"):
            pass

    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(on_request_start)
    async with (
        aiohttp.ClientSession(trace_configs=[tracing]) as session,
        ka.KnockClient(
            api_key="sk_test_otel",
            base_url=knock_emulator.base_url,
            session=session,
            hooks=[telemetry.hook],
        ) as knock,
    ):
        with pytest.raises(ka.NotFoundError):
            await knock.bulk_operations.get("123e4567-e89b-12d3-a456-426614174000")
    client = next(s for s in telemetry.finished() if s.kind == SpanKind.CLIENT)
    nested = next(s for s in telemetry.finished() if s.name == "aiohttp request start")
    assert seen == [client.context.span_id]
    assert nested.parent is not None
    assert nested.parent.span_id == client.context.span_id


async def test_a_cancelled_request_ends_its_span_as_cancelled(telemetry: Telemetry) -> None:
    """A request cancelled while it waits for its answer still ends its span, as an error of
    type ``cancelled``, and its duration is recorded with that type."""
    async with (
        hanging_server() as server,
        ka.KnockClient(
            api_key="sk_test_otel", base_url=server.url, hooks=[telemetry.hook]
        ) as knock,
    ):
        task = asyncio.create_task(
            knock.bulk_operations.get("123e4567-e89b-12d3-a456-426614174000")
        )
        await server.arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (span,) = telemetry.finished()
    assert span.kind == SpanKind.CLIENT
    assert dict(span.attributes or {})["error.type"] == "cancelled"
    assert span.status.status_code == StatusCode.ERROR
    (point,) = telemetry.points("http.client.request.duration")
    assert point.attributes["error.type"] == "cancelled"


async def test_spans_use_the_wall_clock_on_an_injected_clock(
    knock_emulator: KnockEmulator, telemetry: Telemetry
) -> None:
    """A client on an injected clock that jumps 1,000 s at every reading: its request span
    still starts and ends within the wall-clock time the request took, and the recorded
    duration is wall-clock seconds."""
    readings = itertools.count(step=1_000.0)

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    before = time.time_ns()
    async with ka.KnockClient(
        api_key="sk_test_otel",
        base_url=knock_emulator.base_url,
        clock=lambda: float(next(readings)),
        sleep=sleep,
        rate_limits=None,
        retry=None,
        hooks=[telemetry.hook],
    ) as knock:
        with pytest.raises(ka.NotFoundError):
            await knock.bulk_operations.get("123e4567-e89b-12d3-a456-426614174000")
    after = time.time_ns()
    (span,) = telemetry.finished()
    assert span.start_time is not None
    assert span.end_time is not None
    assert before <= span.start_time <= span.end_time <= after
    (point,) = telemetry.points("http.client.request.duration")
    assert point.sum <= (after - before) / 1e9


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


async def test_a_follow_that_gives_up_or_stops_ends_its_span(
    knock_emulator: KnockEmulator, telemetry: Telemetry
) -> None:
    """A follow that ends before its operation (a poll deadline passing, a loop that breaks)
    ends its operation span: an error with the error's type when it gave up, a plain end with
    the reason when it was stopped. No span stays open in the hook."""
    emu = knock_emulator
    channel = emu.add_channel(type="in_app_feed")
    emu.add_messages(channel, 20_000, seed=5)
    async with ka.KnockClient(
        api_key="sk_test_otel",
        base_url=emu.base_url,
        clock=FAST.monotonic,
        sleep=FAST.sleep,
        hooks=[telemetry.hook],
    ) as knock:
        first = await knock.channels.bulk.update_message_status(channel, "read")
        with pytest.raises(ka.PollTimeoutError):
            await knock.bulk_operations.poll(first, timeout=0.5)
        second = await knock.channels.bulk.update_message_status(channel, "unread")
        poller = knock.bulk_operations.poll(second)
        async for _ in poller:
            break
        await poller.aclose()

    follows = {
        dict(s.attributes or {})["knock_async.operation.id"]: s
        for s in telemetry.finished()
        if s.name == "follow bulk operation"
    }
    gave_up, stopped = follows[first.id], follows[second.id]
    assert gave_up.status.status_code == StatusCode.ERROR
    assert dict(gave_up.attributes or {})["knock_async.follow.stopped"] == "gave_up"
    assert dict(gave_up.attributes or {})["error.type"] == "PollTimeoutError"
    assert stopped.status.status_code == StatusCode.UNSET
    assert dict(stopped.attributes or {})["knock_async.follow.stopped"] == "stopped"
    assert telemetry.hook._operations == {}
