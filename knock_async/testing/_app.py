"""The aiohttp layer: routes, Knock's error bodies, faults, the request log. Thin by design:
every decision is made by the pure modules; this one reads requests and writes responses."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import attrs
from aiohttp import web

from ._auth import authenticate
from ._bulk_endpoints import BULK_ROUTES
from ._bulk_handlers import bulk_handler
from ._bulk_store import RecordStore
from ._clock import Clock
from ._faults import BULK_OPERATION_ROUTE, BULK_UPDATE_ROUTE, Fault, Faults
from ._hints import HINT_HEADER, StandingStill
from ._log import BODY_PREFIX_BYTES, EmulatorStats, RecordedRequest, RequestLog, redacted_headers
from ._operations import OperationEngine
from ._ratelimit import RateLimiter, Tier
from ._store import MessageStore
from ._validation import parse_action_param, parse_bulk_body, parse_channel_id
from ._wire import (
    NOT_FOUND_BODY,
    KnockHTTPError,
    error_body,
    not_found,
    operation_body,
    payload_too_large,
    rate_limited,
)

__all__ = ["MAX_BODY_BYTES", "AppState", "create_app"]

logger = logging.getLogger("knock_async.testing")

MAX_BODY_BYTES = 1024 * 1024
INVALID_JSON_BODY = b'{"__typename": "BulkOperation", "id": "'
# Dot segments, encoded slashes or backslashes: never routed, whatever the router would do.
_SUSPICIOUS_PATH = re.compile(r"(^|/)\.{1,2}(/|$)|%2[fF]|%5[cC]|\\|%2[eE]")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.define(kw_only=True)
class AppState:
    """Everything the HTTP layer needs; owned by ``KnockEmulator``."""

    store: MessageStore
    engine: OperationEngine
    faults: Faults
    clock: Clock
    limiter: RateLimiter | None
    api_keys: Collection[str] | None
    max_list_items: int
    strict: bool
    progress_origin: str | None
    stats: EmulatorStats
    log: RequestLog
    # True: operations are processed by a background task (a clock that moves by itself);
    # False: lazily, brought up to date by every request (a ManualClock).
    background: bool = False
    processor: Processor | None = None
    # Users, objects, tenants, schedules: what the other bulk endpoints change.
    records: RecordStore = attrs.Factory(RecordStore)
    # On a ManualClock: notices a client polling as if that clock moved by itself.
    standing_still: StandingStill | None = None


STATE = web.AppKey("knock_emulator_state", AppState)
# The unknown body fields a handler left out, for the request log.
IGNORED_FIELDS: Any
try:
    IGNORED_FIELDS = web.RequestKey("knock_emulator_ignored_fields", tuple[str, ...])
except AttributeError:  # pragma: no cover - aiohttp < 3.12 has no typed request keys
    IGNORED_FIELDS = "knock_emulator_ignored_fields"


def _json(status: int, body: Any) -> web.Response:
    return web.json_response(body, status=status, dumps=json.dumps)


def _error(exc: KnockHTTPError) -> web.Response:
    return _json(exc.status, exc.body)


def _check_rate(state: AppState, tier: Tier | str) -> None:
    if state.limiter is not None and not state.limiter.allow(tier, state.clock.monotonic()):
        state.stats.rate_limited += 1
        raise rate_limited()


async def bulk_update(request: web.Request) -> web.StreamResponse:
    """``POST /v1/channels/{channel_id}/messages/bulk/{action}``."""
    state = request.app[STATE]
    authenticate(request.headers.get("Authorization"), api_keys=state.api_keys)
    _check_rate(state, Tier.BULK_UPDATE)
    channel_id = parse_channel_id(request.match_info["channel_id"])
    action = parse_action_param(request.match_info["action"])
    body = parse_bulk_body(
        await request.read(), max_list_items=state.max_list_items, strict=state.strict
    )
    request[IGNORED_FIELDS] = body.ignored_fields
    if not state.store.has_channel(channel_id):
        raise not_found(f"No channel found with id {channel_id}.")
    if not state.background:
        state.engine.advance()
    origin = state.progress_origin
    operation = state.engine.submit(
        channel_id,
        action,
        body.filters,
        progress_base=str(request.url.origin()) if origin is None else origin,
        plan=state.faults.take_plan(channel_id),
    )
    if state.processor is not None:
        state.processor.poke()
    return _json(200, operation_body(operation))


async def get_operation(request: web.Request) -> web.StreamResponse:
    """``GET /v1/bulk_operations/{id}``."""
    state = request.app[STATE]
    authenticate(request.headers.get("Authorization"), api_keys=state.api_keys)
    _check_rate(state, Tier.GET_OPERATION)
    operation_id = request.match_info["id"]
    if not state.background:
        state.engine.advance()
    key = operation_id.lower()
    body = state.engine.body(key)
    if body is None:
        raise not_found(f"No bulk operation found with id {operation_id[:80]}.")
    response = web.Response(body=body, content_type="application/json")
    if state.standing_still is not None:
        now, finished = state.clock.monotonic(), state.engine.finished(key)
        hint = state.standing_still.poll(key, now, finished=finished)
        if hint is not None:
            response.headers[HINT_HEADER] = hint
    return response


def _fault_response(fault: Fault) -> web.Response:
    if fault.invalid_json:
        return web.Response(status=200, body=INVALID_JSON_BODY, content_type="application/json")
    assert fault.status is not None
    body = fault.body if fault.body is not None else json.dumps(error_body(fault.status)).encode()
    response = web.Response(status=fault.status, body=body, content_type="application/json")
    if fault.retry_after is not None:
        response.headers["Retry-After"] = fault.retry_after
    response.headers.update(fault.headers)
    return response


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except KnockHTTPError as exc:
        return _error(exc)


class _DroppedError(Exception):
    """A scripted fault closed the connection: there is no response."""


async def _dispatch(
    request: web.Request, handler: Handler, fault: Fault | None
) -> web.StreamResponse:
    if fault is None:
        return await _handle(request, handler)
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if not fault.replaces_response:
        return await _handle(request, handler)
    if fault.after_handling:
        await _handle(request, handler)
    if fault.drop:
        raise _DroppedError
    return _fault_response(fault)


async def _read_body(request: web.Request) -> bytes:
    if not request.body_exists:
        return b""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise payload_too_large(MAX_BODY_BYTES)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise payload_too_large(MAX_BODY_BYTES) from None


async def _unrouted(request: web.Request) -> web.StreamResponse:
    return _json(404, NOT_FOUND_BODY)


def _entry(state: AppState, route: str | None, handler: Handler) -> Handler:
    """``handler`` for ``route`` (``None``: the catch-all for unrouted requests) wrapped with
    what every request gets: counters, the request log, scripted faults, Knock's error
    bodies and an ``x-request-id``. A wrapper per route rather than a middleware: the route
    is known without asking the router, and aiohttp's middleware chain costs a fair share of
    a cheap request."""
    stats, log, faults, clock = state.stats, state.log, state.faults, state.clock
    # Request ids: unique, cheap, and as opaque as Knock's.
    prefix = secrets.token_urlsafe(9)
    counter = itertools.count(1)

    async def entry(request: web.Request) -> web.StreamResponse:
        stats.requests += 1
        stats.in_flight += 1
        if stats.in_flight > stats.peak_concurrent_requests:
            stats.peak_concurrent_requests = stats.in_flight
        request_id = f"{prefix}{next(counter):x}"
        received_at = clock.now()
        raw_path = request.raw_path.partition("?")[0]
        known = route
        if known is not None and _SUSPICIOUS_PATH.search(raw_path):
            known = None  # dot segments or encoded slashes: never routed
        body = b""
        fault: Fault | None = None
        response: web.StreamResponse | None = None
        try:
            body = await _read_body(request)
            if known is None:
                response = _json(404, NOT_FOUND_BODY)
            else:
                fault = faults.take(request.method, known, request.path)
                if fault is not None:
                    stats.faults += 1
                response = await _dispatch(request, handler, fault)
        except KnockHTTPError as exc:
            response = _error(exc)
        except _DroppedError:
            stats.dropped += 1
            if request.transport is not None:
                request.transport.close()
            response = None
        except Exception:  # never a traceback on the wire
            logger.exception("knock emulator: unhandled error in %s %s", request.method, known)
            response = _json(500, error_body(500, "internal_server_error", "Internal error."))
        finally:
            stats.in_flight -= 1
            log.append(
                RecordedRequest(
                    method=request.method,
                    path=raw_path,
                    query=request.query_string,
                    headers=redacted_headers(request.headers),
                    body=body[:BODY_PREFIX_BYTES],
                    body_size=len(body),
                    route=known,
                    status=None if response is None else response.status,
                    request_id=None if response is None else request_id,
                    received_at=received_at,
                    fault=fault is not None,
                    ignored_fields=request.get(IGNORED_FIELDS, ()),
                )
            )
        if response is None:
            # The transport is closed; aiohttp discards whatever is returned.
            return web.Response(status=499)
        response.headers["x-request-id"] = request_id
        stats.responses[response.status] += 1
        return response

    return entry


SLICE_ROWS = 1000  # rows per slice of background processing: a few milliseconds at most


class Processor:
    """Processes due operations on the event loop in slices of ``SLICE_ROWS`` rows, as loop
    callbacks rather than a task: between two slices the loop serves whatever requests are
    ready, so no request waits for more than one slice, and none pays for the processing."""

    def __init__(self, engine: OperationEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._speed = float(getattr(clock, "speed", 1.0))  # a FastClock's time runs faster
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.Handle | None = None
        self._running = True
        self._run()

    def poke(self) -> None:
        """Something new may be due earlier than planned: run a slice soon."""
        if self._running:
            self._reschedule(0.0)

    def stop(self) -> None:
        self._running = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _reschedule(self, delay: float | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if delay is None:
            self._handle = None
        elif delay <= 0:
            self._handle = self._loop.call_soon(self._run)
        else:
            self._handle = self._loop.call_later(delay, self._run)

    def _run(self) -> None:
        self._handle = None
        if not self._running:
            return
        if self._engine.advance(budget=SLICE_ROWS):
            self._reschedule(0.0)
            return
        due = self._engine.next_event_time()
        delay = None if due is None else max(0.0, (due - self._clock.monotonic()) / self._speed)
        self._reschedule(delay)


async def _background(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    if not state.background or state.processor is not None:
        yield
        return
    processor = state.processor = Processor(state.engine, state.clock)
    try:
        yield
    finally:
        processor.stop()
        state.processor = None


def create_app(state: AppState) -> web.Application:
    """An ``aiohttp`` application serving the emulated endpoints from ``state``."""
    # One byte over the limit: aiohttp refuses bodies *larger* than client_max_size, and we
    # answer the 413 ourselves with Knock's body before aiohttp gets to.
    app = web.Application(client_max_size=MAX_BODY_BYTES + 1)
    app[STATE] = state
    app.cleanup_ctx.append(_background)
    app.router.add_post(BULK_UPDATE_ROUTE, _entry(state, BULK_UPDATE_ROUTE, bulk_update))
    app.router.add_get(
        BULK_OPERATION_ROUTE,
        _entry(state, BULK_OPERATION_ROUTE, get_operation),
        allow_head=False,
    )
    for route, row in BULK_ROUTES.items():
        app.router.add_post(route, _entry(state, route, bulk_handler(row, state.records, STATE)))
    # Last: whatever no route above takes (another path, or another method on a known path).
    app.router.add_route("*", "/{tail:.*}", _entry(state, None, _unrouted))
    return app
