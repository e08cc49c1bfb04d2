"""The emulator's table of the users, objects, tenants and schedules bulk endpoints. Pure.

The emulator reads these facts from here, not from the client (it must not import client
code). Each row: the route template, where its items are (a body field, or the query string
for ``tenants/bulk/delete``), how the body is checked against the spec
(``spec/knock-bulk-operations.openapi.yaml``: required fields, JSON types, a schedule's
date-times and its repeat rules' enums; a failure is 422 ``invalid_params`` with the
``errors`` list), Knock's operation name, how the items become
rows (one row per item; subscriptions one per object and recipient pair) and how one row is
applied to the ``RecordStore`` when its batch comes.

Rules for ``error_items``, documented or inferred:

* identify, objects set, tenants set: upserts, never an error (documented: "creating or
  updating");
* users, objects and tenants delete: an id that does not exist succeeds (inferred: a delete
  is idempotent);
* set preferences: replaces the user's preference set ``preferences.id`` (default
  ``default``) whole (documented: "will replace any existing users' preferences"); a user
  that does not exist is an error item (inferred);
* add subscriptions: upserts (documented: "it will be updated"), identifying inline
  recipients (documented); an object that does not exist is an error item, one per pair
  (inferred);
* delete subscriptions: a subscription that does not exist is skipped, counted as a success
  (documented: "it will be skipped"; counting it a success is inferred);
* create schedules: a workflow key the emulator was not given (``KnockEmulator(workflows=
  [...])``; by default any key is accepted) is an error item named by the recipient
  (inferred); inline recipients and tenants are identified (documented).

Any item id listed with ``emu.faults.fail_messages([...])`` is reported in ``error_items``
instead of being applied, as a message would be.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from .._models import ErrorItem
from ._bulk_store import RecordStore, recipient_key
from ._validation import _json_type

__all__ = [
    "BULK_ROUTES",
    "MAX_REQUEST_LINE",
    "BulkRoute",
    "InvalidBodyError",
    "check_body",
    "set_preferences",
    "unknown_fields",
]

MAX_REQUEST_LINE = 8000  # bytes of "POST <path>?<query> HTTP/1.1" Knock's server accepts

Problems = list[tuple[str, str]]
Row = tuple[ErrorItem, Any]
Apply = Callable[[RecordStore, str, Row, datetime], ErrorItem | None]


def _string(where: str, value: object, problems: Problems) -> None:
    if not isinstance(value, str):
        problems.append((where, f"{where} must be a string, got {_json_type(value)}"))


def _with_id(
    where: str, value: object, problems: Problems, *, need: tuple[str, ...] = ("id",)
) -> None:
    if not isinstance(value, dict):
        problems.append((where, f"{where} must be an object, got {_json_type(value)}"))
        return
    for name in need:
        if name not in value:
            problems.append((f"{where}.{name}", f"{where}.{name} is required"))
        else:
            _string(f"{where}.{name}", value[name], problems)


def _recipient(where: str, value: object, problems: Problems, *, reference: bool) -> None:
    """RecipientRequest (an id, an inline user, an inline object) or, for a delete,
    RecipientReference (an id or ``{collection, id}``)."""
    if isinstance(value, str):
        return
    if isinstance(value, dict) and "collection" in value:
        _with_id(where, value, problems, need=("id", "collection"))
    elif reference and isinstance(value, dict):
        # A reference object's fields are optional in the spec but name nothing without an id.
        _with_id(where, value, problems)
    else:
        _with_id(where, value, problems)


def _id(where: str, item: object, problems: Problems) -> None:
    _string(where, item, problems)


def _tenant(where: str, item: object, problems: Problems) -> None:
    if not isinstance(item, str):
        _with_id(where, item, problems)


def _subscription(reference: bool) -> Callable[[str, object, Problems], None]:
    def check(where: str, item: object, problems: Problems) -> None:
        _with_id(where, item, problems)
        if not isinstance(item, dict):
            return
        recipients = item.get("recipients")
        if not isinstance(recipients, list):
            problems.append((f"{where}.recipients", f"{where}.recipients must be an array"))
            return
        for i, recipient in enumerate(recipients):
            _recipient(f"{where}.recipients[{i}]", recipient, problems, reference=reference)

    return check


def _schedule(where: str, item: object, problems: Problems) -> None:
    _with_id(where, item, problems, need=("workflow",))
    if not isinstance(item, dict):
        return
    for name in ("recipient", "actor"):
        if item.get(name) is not None:
            _recipient(f"{where}.{name}", item[name], problems, reference=False)
    if item.get("tenant") is not None:
        _tenant(f"{where}.tenant", item["tenant"], problems)
    for name in ("scheduled_at", "ending_at"):
        if item.get(name) is not None:
            _date_time(f"{where}.{name}", item[name], problems)
    repeats = item.get("repeats")
    if repeats is not None:
        if not isinstance(repeats, list):
            problems.append((f"{where}.repeats", f"{where}.repeats must be an array"))
        else:
            for i, rule in enumerate(repeats):
                _repeat_rule(f"{where}.repeats[{i}]", rule, problems)


# RFC 3339's date-time (the spec's ``format: date-time``); the emulator cannot import the
# client's copy of this rule.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def _date_time(where: str, value: object, problems: Problems) -> None:
    """The spec's ``format: date-time`` (RFC 3339): a date, a time and an offset."""
    try:
        valid = isinstance(value, str) and bool(_RFC3339.fullmatch(value))
        valid = valid and datetime.fromisoformat(str(value).upper()) is not None
    except ValueError:  # a field out of range
        valid = False
    if not valid:
        problems.append((where, f"{where} must be a date-time with an offset, got {value!r}"))


_FREQUENCIES = ("daily", "weekly", "monthly", "hourly")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _repeat_rule(where: str, rule: object, problems: Problems) -> None:
    """ScheduleRepeatRule: ``frequency`` (required) and ``days`` from the spec's enums."""
    _with_id(where, rule, problems, need=("frequency",))
    if not isinstance(rule, dict):
        return
    if isinstance(rule.get("frequency"), str) and rule["frequency"] not in _FREQUENCIES:
        got = rule["frequency"]
        problems.append(
            (f"{where}.frequency", f"{where}.frequency must be one of {_FREQUENCIES}, got {got!r}")
        )
    days = rule.get("days")
    if days is not None and (not isinstance(days, list) or not all(d in _DAYS for d in days)):
        problems.append((f"{where}.days", f"{where}.days must be an array of {_DAYS}"))
    for name in ("interval", "day_of_month", "hours", "minutes"):
        number = rule.get(name)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
            problems.append((f"{where}.{name}", f"{where}.{name} must be an integer"))


def _user(where: str, item: object, problems: Problems) -> None:
    _with_id(where, item, problems)


# --------------------------------------------------------------------------------------------
# Rows and how each is applied


def _item_rows(field: str) -> Callable[[str, list[Any]], list[Row]]:
    def rows(collection: str, items: list[Any]) -> list[Row]:
        where = collection or None
        out: list[Row] = []
        for item in items:
            ident = item if isinstance(item, str) else item.get("id", "")
            out.append(
                (
                    ErrorItem(id=ident, collection=where if field.startswith("object") else None),
                    item,
                )
            )
        return out

    return rows


def _pair_rows(collection: str, items: list[Any]) -> list[Row]:
    # One row per object and recipient pair, as Knock counts a subscription operation.
    return [
        (ErrorItem(id=sub["id"], collection=collection), (sub, recipient))
        for sub in items
        for recipient in sub["recipients"]
    ]


def _schedule_rows(collection: str, items: list[Any]) -> list[Row]:
    rows: list[Row] = []
    for item in items:
        key = recipient_key(item["recipient"]) if item.get("recipient") is not None else ""
        ident, where = (key[1], key[0]) if isinstance(key, tuple) else (key, None)
        rows.append((ErrorItem(id=ident, collection=where), item))
    return rows


def _identify(store: RecordStore, collection: str, row: Row, at: datetime) -> ErrorItem | None:
    store.identify_user(dict(row[1]))
    return None


def _delete_user(store: RecordStore, collection: str, row: Row, at: datetime) -> ErrorItem | None:
    store.delete_user(row[1])
    return None


def _set_object(store: RecordStore, collection: str, row: Row, at: datetime) -> ErrorItem | None:
    store.objects.setdefault((collection, row[1]["id"]), {}).update(row[1])
    return None


def _delete_object(store: RecordStore, collection: str, row: Row, at: datetime) -> ErrorItem | None:
    store.delete_object(collection, row[1])
    return None


def _add_subscription(
    store: RecordStore, collection: str, row: Row, at: datetime
) -> ErrorItem | None:
    sub, recipient = row[1]
    if (collection, sub["id"]) not in store.objects:
        return row[0]
    key = store.identify_recipient(recipient)
    store.subscriptions[(collection, sub["id"], key)] = dict(sub.get("properties") or {})
    return None


def _delete_subscription(
    store: RecordStore, collection: str, row: Row, at: datetime
) -> ErrorItem | None:
    sub, recipient = row[1]
    store.subscriptions.pop((collection, sub["id"], recipient_key(recipient)), None)
    return None


def _set_tenant(store: RecordStore, collection: str, row: Row, at: datetime) -> ErrorItem | None:
    item = row[1]
    fields = {"id": item} if isinstance(item, str) else dict(item)
    store.tenants.setdefault(fields["id"], {}).update(fields)
    return None


def _delete_tenant(store: RecordStore, collection: str, row: Row, at: datetime) -> ErrorItem | None:
    store.tenants.pop(row[1], None)
    return None


def _create_schedule(
    store: RecordStore, collection: str, row: Row, at: datetime
) -> ErrorItem | None:
    item = dict(row[1])
    if store.workflows is not None and item["workflow"] not in store.workflows:
        return row[0]
    if item.get("recipient") is not None:
        item["recipient"] = store.identify_recipient(item["recipient"])
    tenant = item.get("tenant")
    if isinstance(tenant, dict):
        store.tenants.setdefault(tenant["id"], {}).update(tenant)
        item["tenant"] = tenant["id"]
    schedule_id = str(uuid.uuid4())
    store.schedules[schedule_id] = {**item, "id": schedule_id, "inserted_at": at.isoformat()}
    return None


@attrs.frozen
class BulkRoute:
    """One endpoint as the emulator serves it."""

    route: str
    items: str
    check: Callable[[str, object, Problems], None]
    operation: str  # Knock's name; ``{collection}`` filled in
    rows: Callable[[str, list[Any]], list[Row]]
    apply: Apply
    in_query: bool = False
    extra: tuple[str, ...] = ()  # other required body fields (objects)

    def name(self, collection: str) -> str:
        return self.operation.replace("{collection}", collection)


def _preferences_rows(collection: str, items: list[Any]) -> list[Row]:
    return [(ErrorItem(id=user_id, collection=None), user_id) for user_id in items]


BULK_ROUTES: Mapping[str, BulkRoute] = {
    row.route: row
    for row in (
        BulkRoute("/v1/users/bulk/identify", "users", _user, "users.identify",
                  _item_rows("users"), _identify),
        BulkRoute("/v1/users/bulk/delete", "user_ids", _id, "users.delete",
                  _item_rows("user_ids"), _delete_user),
        BulkRoute("/v1/users/bulk/preferences", "user_ids", _id, "users.set_preferences",
                  _preferences_rows, _identify, extra=("preferences",)),
        BulkRoute("/v1/objects/{collection}/bulk/set", "objects", _user,
                  "objects.{collection}.set", _item_rows("objects"), _set_object),
        BulkRoute("/v1/objects/{collection}/bulk/delete", "object_ids", _id,
                  "objects.{collection}.delete", _item_rows("object_ids"), _delete_object),
        BulkRoute("/v1/objects/{collection}/bulk/subscriptions/add", "subscriptions",
                  _subscription(False), "objects.{collection}.upsert_subscriptions",
                  _pair_rows, _add_subscription),
        BulkRoute("/v1/objects/{collection}/bulk/subscriptions/delete", "subscriptions",
                  _subscription(True), "objects.{collection}.delete_subscriptions",
                  _pair_rows, _delete_subscription),
        BulkRoute("/v1/tenants/bulk/set", "tenants", _tenant, "tenants.set",
                  _item_rows("tenants"), _set_tenant),
        BulkRoute("/v1/tenants/bulk/delete", "tenant_ids", _id, "tenants.delete",
                  _item_rows("tenant_ids"), _delete_tenant, in_query=True),
        BulkRoute("/v1/schedules/bulk/create", "schedules", _schedule,
                  "schedules.create_schedules", _schedule_rows, _create_schedule),
    )
}  # fmt: skip


def set_preferences(preferences: Mapping[str, Any]) -> Apply:
    """The step of one ``users/bulk/preferences`` operation: replace the set whole."""
    set_id = str(preferences.get("id") or "default")
    stored = {k: v for k, v in preferences.items() if k != "id"}

    def apply(store: RecordStore, collection: str, row: Row, at: datetime) -> ErrorItem | None:
        if row[1] not in store.users:
            return row[0]
        store.preferences[(row[1], set_id)] = dict(stored)
        return None

    return apply


def unknown_fields(route: BulkRoute, data: dict[str, Any]) -> list[str]:
    """The top-level keys the spec does not give ``route``'s body."""
    return sorted(key for key in data if key != route.items and key not in route.extra)


def check_body(
    route: BulkRoute, data: object, *, max_items: int, strict: bool = False
) -> list[Any]:
    """The body's items, or the problems (``(field, message)``) that make it a 422; in
    ``strict`` mode an unknown top-level key is one."""
    problems: Problems = []
    if not isinstance(data, dict):
        raise InvalidBodyError(
            [("body", f"The request body must be a JSON object, got {_json_type(data)}")]
        )
    if strict:
        unknown = unknown_fields(route, data)
        problems.extend((key, f"{key} is not a known parameter") for key in unknown)
    items = data.get(route.items)
    if items is None:
        problems.append((route.items, f"{route.items} is required"))
    elif not isinstance(items, list):
        problems.append((route.items, f"{route.items} must be an array, got {_json_type(items)}"))
    elif len(items) > max_items:
        problems.append((route.items, f"{route.items} may hold at most {max_items} items"))
    else:
        for index, item in enumerate(items):
            route.check(f"{route.items}[{index}]", item, problems)
            if len(problems) >= 5:
                break
    for name in route.extra:
        if not isinstance(data.get(name), dict):
            problems.append((name, f"{name} is required and must be an object"))
    if problems:
        raise InvalidBodyError(problems[:5])
    assert isinstance(items, list)
    return items


class InvalidBodyError(Exception):
    """The problems that make a body a 422."""

    def __init__(self, problems: Problems) -> None:
        super().__init__(problems)
        self.problems = problems
