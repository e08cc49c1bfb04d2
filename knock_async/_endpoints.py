"""Knock's bulk endpoints as data, and the one way a request to any of them is built. Pure.

One row per endpoint: its route template, its rate-limit budget (``Tier``, one per route),
the cap on items per request, where the items go (the body field, or the query string for
``tenants/bulk/delete``), how one item is checked, Knock's operation name, and the ``_all``
method that takes more items than the cap. ``build`` checks a whole call against its row
before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import attrs
from yarl import URL

from ._items import (
    ItemCheck,
    check_id,
    check_object,
    check_schedule,
    check_subscription,
    check_subscription_reference,
    check_tenant,
    check_user,
)
from ._ratelimit import Tier
from ._requests import Request, on_base

__all__ = [
    "ENDPOINTS",
    "MAX_REQUEST_LINE",
    "Endpoint",
    "assemble",
    "build",
    "encode_items",
    "endpoint_url",
    "query_item",
    "request_line",
]

ITEM_CAP = 1000
# Knock's server refuses a longer request line ("POST <path>?<query> HTTP/1.1").
MAX_REQUEST_LINE = 8000


@attrs.frozen
class Endpoint:
    """One bulk endpoint. ``name`` is knockapi's method (``users.bulk.identify``) and the
    budget's name; ``operation`` is the name Knock gives the operation (``{collection}``
    filled in); ``items`` the argument (and body field or query key) holding the list."""

    name: str
    route: str
    tier: Tier
    items: str
    check: ItemCheck
    operation: str
    all_method: str
    in_query: bool = False
    cap: int = ITEM_CAP

    @property
    def request_class(self) -> type[Request]:
        return _REQUEST_CLASSES[self.name]


_ROWS = (
    Endpoint("users.bulk.identify", "/v1/users/bulk/identify", Tier.USERS_IDENTIFY,
             "users", check_user, "users.identify", "identify_all"),
    Endpoint("users.bulk.delete", "/v1/users/bulk/delete", Tier.USERS_DELETE,
             "user_ids", check_id, "users.delete", "delete_all"),
    Endpoint("users.bulk.set_preferences", "/v1/users/bulk/preferences",
             Tier.USERS_SET_PREFERENCES, "user_ids", check_id, "users.set_preferences",
             "set_preferences_all"),
    Endpoint("objects.bulk.set", "/v1/objects/{collection}/bulk/set", Tier.OBJECTS_SET,
             "objects", check_object, "objects.{collection}.set", "set_all"),
    Endpoint("objects.bulk.delete", "/v1/objects/{collection}/bulk/delete",
             Tier.OBJECTS_DELETE, "object_ids", check_id, "objects.{collection}.delete",
             "delete_all"),
    Endpoint("objects.bulk.add_subscriptions",
             "/v1/objects/{collection}/bulk/subscriptions/add", Tier.OBJECTS_ADD_SUBSCRIPTIONS,
             "subscriptions", check_subscription, "objects.{collection}.upsert_subscriptions",
             "add_subscriptions_all"),
    Endpoint("objects.bulk.delete_subscriptions",
             "/v1/objects/{collection}/bulk/subscriptions/delete",
             Tier.OBJECTS_DELETE_SUBSCRIPTIONS, "subscriptions", check_subscription_reference,
             "objects.{collection}.delete_subscriptions", "delete_subscriptions_all"),
    Endpoint("tenants.bulk.set", "/v1/tenants/bulk/set", Tier.TENANTS_SET, "tenants",
             check_tenant, "tenants.set", "set_all"),
    Endpoint("tenants.bulk.delete", "/v1/tenants/bulk/delete", Tier.TENANTS_DELETE,
             "tenant_ids", check_id, "tenants.delete", "delete_all", in_query=True),
    Endpoint("schedules.bulk.create", "/v1/schedules/bulk/create", Tier.SCHEDULES_CREATE,
             "schedules", check_schedule, "schedules.create_schedules", "create_all"),
)  # fmt: skip

ENDPOINTS: Mapping[str, Endpoint] = {row.name: row for row in _ROWS}


def _request_class(row: Endpoint) -> type[Request]:
    # What a request is belongs to its class (route and tier, as for the channel endpoint),
    # so hooks, metrics and the limiter read them without a look-up.
    attributes: dict[str, Any] = {
        "__slots__": (),
        "method": "POST",
        "route": row.route,
        "tier": row.tier,
    }
    name = "".join(part.title() for part in row.name.replace("bulk.", "").split(".")) + "Request"
    return type(name, (Request,), attributes)


_REQUEST_CLASSES = {row.name: _request_class(row) for row in _ROWS}


def _collection(collection: object) -> str:
    """A collection name as one encoded path segment."""
    name = check_id("collection", collection)
    if "/" in name or name in (".", ".."):
        raise ValueError(f"collection must be one path segment, got {name!r}")
    return quote(name, safe="")


def _checked(row: Endpoint, items: object) -> list[object]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise TypeError(f"{row.items} must be a list, got {type(items).__name__}")
    checked: list[object] = []
    check, label = row.check, row.items
    for index, item in enumerate(items):
        if index >= row.cap:
            namespace = row.name.rpartition(".")[0]
            raise ValueError(
                f"{label} has more than {row.cap:,} items, the most one request takes: use "
                f"knock.{namespace}.{row.all_method}({label}) for any number"
            )
        checked.append(check(f"{label}[{index}]", item))
    return checked


def _default(value: object) -> object:
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    raise TypeError(f"a value of type {type(value).__name__} cannot be sent as JSON")


def encode_items(body: Mapping[str, object], *, first: int = 0) -> bytes:
    """A request body as compact JSON (datetimes as ISO 8601); its list's first item is item
    ``first`` of the whole input."""
    try:
        return json.dumps(body, separators=(",", ":"), default=_default, allow_nan=False).encode()
    except ValueError as exc:  # a NaN, a cycle: say so, naming the item, before sending
        raise ValueError(f"{_culprit(body, first)} cannot be sent as JSON: {exc}") from None


def _culprit(body: Mapping[str, object], first: int) -> str:
    """Where in ``body`` JSON fails (only on that error path): ``users[737]``, or the body."""
    for field, value in body.items():
        for index, item in enumerate(value if isinstance(value, list) else [value]):
            try:
                json.dumps(item, default=_default, allow_nan=False)
            except ValueError:
                return f"{field}[{first + index}]" if isinstance(value, list) else field
    return "the request body"


def build(
    row: Endpoint,
    base_url: URL,
    headers: Mapping[str, str],
    items: object,
    *,
    collection: object = None,
    extra: Mapping[str, object] | None = None,
) -> Request:
    """The request for ``row`` with ``items`` (and ``extra`` body fields), or the
    ``TypeError``/``ValueError`` naming what is wrong."""
    checked = _checked(row, items)
    url = endpoint_url(row, base_url, collection)
    if row.in_query:
        line = request_line(url, [query_item(row, value) for value in checked])
        if line > MAX_REQUEST_LINE:
            namespace = row.name.rpartition(".")[0]
            raise ValueError(
                f"{row.items} is too long for one request: its request line would be {line:,} "
                f"bytes, over Knock's {MAX_REQUEST_LINE:,}; send fewer ids per call or use "
                f"knock.{namespace}.{row.all_method}({row.items}), which splits them"
            )
    return assemble(row, url, headers, checked, extra=extra)


def endpoint_url(row: Endpoint, base_url: URL, collection: object) -> URL:
    """The endpoint's URL, its collection (checked) filled in."""
    path = row.route
    if "{collection}" in path:
        path = path.replace("{collection}", _collection(collection))
    return on_base(base_url, path)


def query_item(row: Endpoint, value: object) -> str:
    """One id as it goes in the query string: ``tenant_ids%5B%5D=<id>``."""
    return f"{quote(f'{row.items}[]', safe='')}={quote(str(value), safe='')}"


def request_line(url: URL, parts: list[str]) -> int:
    """The bytes of ``POST <path>?<parts joined by &> HTTP/1.1``."""
    query = sum(len(part) for part in parts) + max(0, len(parts) - 1)
    return len("POST ") + len(url.raw_path) + 1 + query + len(" HTTP/1.1")


def assemble(
    row: Endpoint,
    url: URL,
    headers: Mapping[str, str],
    checked: list[object],
    *,
    extra: Mapping[str, object] | None = None,
    first: int = 0,
) -> Request:
    """The request for items already checked (the query string or the JSON body); ``first``
    is the first item's index in the whole input, for an error's message."""
    if row.in_query:
        query = "&".join(query_item(row, value) for value in checked)
        return row.request_class(URL(f"{url}?{query}", encoded=True), headers, None)
    body: dict[str, object] = {row.items: checked}
    if extra:
        body.update(extra)
    return row.request_class(url, headers, encode_items(body, first=first))
