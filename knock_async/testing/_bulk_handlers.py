"""The aiohttp handlers of the users, objects, tenants and schedules bulk endpoints: read the
request, check it (``_bulk_endpoints``), queue the operation on the engine. Thin, as
``_app``'s are."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ._auth import authenticate
from ._bulk_endpoints import (
    MAX_REQUEST_LINE,
    BulkRoute,
    InvalidBodyError,
    check_body,
    set_preferences,
    unknown_fields,
)
from ._bulk_store import RecordStore
from ._validation import MAX_IGNORED_FIELDS, _load
from ._wire import KnockHTTPError, error_body, invalid_fields, operation_body

__all__ = ["bulk_handler"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _query_ids(request: web.Request, name: str) -> list[str]:
    """``name[]=a&name[]=b`` as Knock's SDKs send it; a plain ``name=a`` is one id (what
    Knock's server makes of it)."""
    ids = request.query.getall(f"{name}[]", [])
    return [*ids, *request.query.getall(name, [])]


def bulk_handler(row: BulkRoute, records: RecordStore, state_key: Any) -> Handler:
    """The handler serving ``row`` on the emulator whose ``AppState`` is under ``state_key``."""
    from ._app import (
        IGNORED_FIELDS,
        _check_rate,  # the channel endpoint's own check, shared
    )

    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[state_key]
        authenticate(request.headers.get("Authorization"), api_keys=state.api_keys)
        _check_rate(state, row.route)
        collection = request.match_info.get("collection", "")
        apply = row.apply
        if row.in_query:
            line = len(request.method) + len(request.raw_path) + len(" HTTP/1.1") + 1
            if line > MAX_REQUEST_LINE:
                raise KnockHTTPError(414, error_body(414, "uri_too_long", "Request-URI Too Long"))
            items: list[Any] = _query_ids(request, row.items)
            if not items:
                raise invalid_fields([(row.items, f"{row.items} is required")])
            if len(items) > state.max_list_items:
                raise invalid_fields(
                    [(row.items, f"{row.items} may hold at most {state.max_list_items} items")]
                )
        else:
            data = _load(await request.read())
            try:
                items = check_body(row, data, max_items=state.max_list_items, strict=state.strict)
            except InvalidBodyError as exc:
                raise invalid_fields(exc.problems) from None
            assert isinstance(data, dict)
            request[IGNORED_FIELDS] = tuple(unknown_fields(row, data)[:MAX_IGNORED_FIELDS])
            if "preferences" in row.extra:
                apply = set_preferences(data["preferences"])
        if not state.background:
            state.engine.advance()
        fails = state.faults.message_fails

        def step(unit: Any, at: Any) -> Any:
            if fails(unit[0].id):
                return unit[0]
            return apply(records, collection, unit, at)

        origin = state.progress_origin
        operation = state.engine.submit_job(
            row.name(collection),
            row.rows(collection, items),
            step,
            progress_base=str(request.url.origin()) if origin is None else origin,
            plan=state.faults.take_plan(""),
        )
        if state.processor is not None:
            state.processor.poke()
        return web.json_response(operation_body(operation))

    return handle
