"""Scripted faults: what the emulator should get wrong next, and for how long. Pure data.

HTTP faults are queued per route and used up in order: ``add("GET", BULK_OPERATION_ROUTE,
status=503, times=2)`` makes the next two polls answer 503, whatever operation they ask for.
Operation faults shape the next operations created (fail part-way, get stuck) or make given
messages fail whenever an operation reaches them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime as http_date
from typing import Any

import attrs

from ._bulk_endpoints import BULK_ROUTES
from ._operations import OperationPlan

__all__ = ["BULK_OPERATION_ROUTE", "BULK_UPDATE_ROUTE", "ROUTES", "Fault", "Faults"]

BULK_UPDATE_ROUTE = "/v1/channels/{channel_id}/messages/bulk/{action}"
BULK_OPERATION_ROUTE = "/v1/bulk_operations/{id}"
ROUTES = {"POST": BULK_UPDATE_ROUTE, "GET": BULK_OPERATION_ROUTE}


def _retry_after(value: float | str | datetime | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("retry_after must be a timezone-aware datetime")
        return http_date(value.astimezone(UTC), usegmt=True)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"retry_after must be seconds >= 0, an HTTP date or a str; got {value!r}")
    return str(int(value)) if float(value).is_integer() else str(value)


def _body(value: bytes | str | Mapping[str, Any] | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()


@attrs.frozen(kw_only=True)
class Fault:
    """One scripted misbehaviour. See ``Faults.add`` for what each field does."""

    status: int | None = None
    retry_after: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes | None = None
    delay: float = 0.0
    drop: bool = False
    invalid_json: bool = False
    after_handling: bool = False

    @property
    def replaces_response(self) -> bool:
        """Whether the fault answers instead of the emulator (a status, a drop or bad JSON)."""
        return self.status is not None or self.drop or self.invalid_json


@attrs.define
class _Entry:
    method: str
    route: str
    fault: Fault
    remaining: int


@attrs.define
class _PlanEntry:
    channel_id: str | None
    plan: OperationPlan
    remaining: int


class Faults:
    """The emulator's fault script: ``emu.faults``."""

    def __init__(self) -> None:
        self._http: list[_Entry] = []
        self._plans: list[_PlanEntry] = []
        self._failing: set[str] = set()

    # HTTP faults ---------------------------------------------------------------------------

    def add(
        self,
        method: str,
        route: str,
        *,
        status: int | None = None,
        retry_after: float | str | datetime | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | Mapping[str, Any] | None = None,
        delay: float = 0.0,
        drop: bool = False,
        invalid_json: bool = False,
        after_handling: bool = False,
        times: int = 1,
    ) -> Fault:
        """Script the next ``times`` requests to ``method`` ``route`` to misbehave.

        ``route`` is a route template (``BULK_UPDATE_ROUTE``, ``BULK_OPERATION_ROUTE``), a
        concrete path (``"/v1/bulk_operations/<id>"``: only requests to that path) or ``"*"``;
        ``method`` is ``"GET"``, ``"POST"`` or ``"*"``. Faults for the same requests are used up
        in the order they were added. What the fault does:

        - ``status``: answer that status with Knock's error body for it (or ``body``), plus
          ``headers`` and, if ``retry_after`` is given, a ``Retry-After`` header (seconds or an
          HTTP date);
        - ``drop``: close the connection without answering;
        - ``invalid_json``: answer 200 with a body that is not JSON;
        - ``delay``: wait that many real seconds first (alone: then answer normally);
        - ``after_handling``: handle the request for real first (a POST creates its operation)
          and only then replace the response, as when an answer is lost on the way back.

        Faults apply before authentication and rate limiting; unrouted paths never get one.
        """
        method = method.upper()
        if method not in ("GET", "POST", "*"):
            raise ValueError(f"method must be 'GET', 'POST' or '*', got {method!r}")
        if route != "*" and not route.startswith("/"):
            raise ValueError(f"route must be a route template, a path or '*', got {route!r}")
        if "{" in route and route not in ROUTES.values() and route not in BULK_ROUTES:
            known = ", ".join(sorted([*ROUTES.values(), *BULK_ROUTES]))
            raise ValueError(f"unknown route template {route!r}; known: {known}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be an int >= 1, got {times!r}")
        if not delay >= 0:
            raise ValueError(f"delay must be >= 0, got {delay!r}")
        if status is not None and not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {status!r}")
        kinds = sum((status is not None, drop, invalid_json))
        if kinds > 1:
            raise ValueError("give at most one of status, drop and invalid_json")
        if kinds == 0 and not delay:
            raise ValueError("a fault needs status, drop, invalid_json or delay")
        if (retry_after is not None or body is not None) and status is None:
            raise ValueError("retry_after and body go with status")
        fault = Fault(
            status=status,
            retry_after=_retry_after(retry_after),
            headers=dict(headers or {}),
            body=_body(body),
            delay=float(delay),
            drop=drop,
            invalid_json=invalid_json,
            after_handling=after_handling,
        )
        self._http.append(_Entry(method, route, fault, times))
        return fault

    def take(self, method: str, route: str | None, path: str) -> Fault | None:
        """Use up the first fault scripted for a request (``method``, its ``route`` template if
        routed, its ``path``), if any."""
        if not self._http:
            return None
        for index, entry in enumerate(self._http):
            if entry.method not in ("*", method):
                continue
            if entry.route not in ("*", path) and entry.route != route:
                continue
            entry.remaining -= 1
            if entry.remaining == 0:
                del self._http[index]
            return entry.fault
        return None

    @property
    def pending(self) -> int:
        """How many scripted HTTP faults have not been used yet."""
        return sum(entry.remaining for entry in self._http)

    def clear(self) -> None:
        """Forget every scripted fault (HTTP, operation and message faults)."""
        self._http.clear()
        self._plans.clear()
        self._failing.clear()

    # Operation and message faults ----------------------------------------------------------

    def fail_next_operation(
        self, after_rows: int = 0, *, channel_id: str | None = None, times: int = 1
    ) -> None:
        """The next ``times`` operations (on ``channel_id``, or any) process ``after_rows`` rows,
        then fail on the next row: status ``failed``, ``failed_at`` set, that row in
        ``error_items``."""
        self._add_plan(OperationPlan(fail_after_rows=_rows(after_rows)), channel_id, times)

    def stick_next_operation(
        self, after_rows: int = 0, *, channel_id: str | None = None, times: int = 1
    ) -> None:
        """The next ``times`` operations (on ``channel_id``, or any) process ``after_rows`` rows,
        then never progress again (status stays ``processing``)."""
        self._add_plan(OperationPlan(stuck_after_rows=_rows(after_rows)), channel_id, times)

    def fail_messages(self, message_ids: Iterable[str]) -> None:
        """Every operation that reaches one of ``message_ids`` reports it in ``error_items``
        (``error_count`` + 1) instead of updating it, and goes on."""
        if isinstance(message_ids, str):
            raise TypeError("message_ids must be an iterable of ids, not a str")
        self._failing.update(message_ids)

    def message_fails(self, message_id: str) -> bool:
        """Whether ``message_id`` was listed by ``fail_messages``."""
        return message_id in self._failing

    def take_plan(self, channel_id: str) -> OperationPlan | None:
        """Use up the first operation fault that applies to a new operation on ``channel_id``."""
        for index, entry in enumerate(self._plans):
            if entry.channel_id not in (None, channel_id):
                continue
            entry.remaining -= 1
            if entry.remaining == 0:
                del self._plans[index]
            return entry.plan
        return None

    def _add_plan(self, plan: OperationPlan, channel_id: str | None, times: int) -> None:
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be an int >= 1, got {times!r}")
        self._plans.append(_PlanEntry(channel_id, plan, times))


def _rows(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"after_rows must be an int >= 0, got {value!r}")
    return value
