"""The items of Knock's other bulk endpoints: typed records and the check of one item. Pure.

An item is a plain mapping (as knockapi takes it) or one of the records below; either way it
is checked and turned into its JSON form here, before anything is sent. A check names the
item's place (``users[3]``) and what is wrong with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

from ._models import _parse_datetime

__all__ = [
    "ItemCheck",
    "ObjectRecord",
    "ScheduleRecord",
    "SubscriptionRecord",
    "TenantRecord",
    "UserRecord",
    "check_id",
    "check_object",
    "check_schedule",
    "check_subscription",
    "check_subscription_reference",
    "check_tenant",
    "check_user",
]

ItemCheck = Callable[[str, object], object]
"""``check(where, item)``: the item's JSON form, or ``TypeError``/``ValueError`` naming
``where`` (``users[3]``)."""


@attrs.frozen(kw_only=True)
class UserRecord:
    """A user for ``users.bulk.identify``; ``properties`` are custom top-level properties."""

    id: str
    name: str | None = None
    email: str | None = None
    phone_number: str | None = None
    avatar: str | None = None
    locale: str | None = None
    timezone: str | None = None
    properties: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ObjectRecord:
    """An object for ``objects.bulk.set``; ``properties`` are custom top-level properties."""

    id: str
    name: str | None = None
    properties: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class TenantRecord:
    """A tenant for ``tenants.bulk.set``; ``properties`` are custom top-level properties."""

    id: str
    name: str | None = None
    properties: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class SubscriptionRecord:
    """One object's subscriptions: ``id`` is the object's, ``recipients`` user ids or
    ``{"id": ..., "collection": ...}`` references; ``properties`` (add only) go on each
    subscription."""

    id: str
    recipients: tuple[str | Mapping[str, Any], ...]
    properties: Mapping[str, Any] | None = None


@attrs.frozen(kw_only=True)
class ScheduleRecord:
    """A schedule for ``schedules.bulk.create``: ``workflow`` runs for ``recipient``."""

    workflow: str
    recipient: str | Mapping[str, Any]
    repeats: tuple[Mapping[str, Any], ...] | None = None
    scheduled_at: datetime | None = None
    ending_at: datetime | None = None
    data: Mapping[str, Any] | None = None
    actor: str | Mapping[str, Any] | None = None
    tenant: str | Mapping[str, Any] | None = None


_RECORDS = (UserRecord, ObjectRecord, TenantRecord, SubscriptionRecord, ScheduleRecord)


def check_id(where: str, value: object) -> str:
    """A non-empty string id."""
    if not isinstance(value, str):
        raise TypeError(f"{where} must be a string id, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{where} must be a non-empty id, got {value!r}")
    return value


def _as_mapping(where: str, item: object, record: type[Any]) -> dict[str, Any]:
    """A record or a mapping as a dict of the fields that hold something."""
    if isinstance(item, record):
        fields = {k: v for k, v in attrs.asdict(item, recurse=False).items() if v is not None}
        extra = fields.pop("properties", None) if record is not SubscriptionRecord else None
        # Custom properties sit next to the known fields on the wire.
        return {**(extra or {}), **fields}
    if isinstance(item, _RECORDS):
        raise TypeError(
            f"{where} must be a mapping or a {record.__name__}, got {type(item).__name__}"
        )
    if not isinstance(item, Mapping):
        raise TypeError(
            f"{where} must be a mapping or a {record.__name__}, got {type(item).__name__}"
        )
    for key in item:
        if not isinstance(key, str):
            raise TypeError(f"{where} has a non-string key {key!r}")
    return dict(item)


def _with_id(where: str, item: object, record: type[Any]) -> dict[str, Any]:
    fields = _as_mapping(where, item, record)
    if "id" not in fields:
        raise ValueError(f"{where} has no id")
    check_id(f"{where}.id", fields["id"])
    return fields


def check_user(where: str, item: object) -> object:
    """A user to identify: a mapping or ``UserRecord`` with a non-empty ``id``."""
    return _with_id(where, item, UserRecord)


def check_object(where: str, item: object) -> object:
    """An object to set: a mapping or ``ObjectRecord`` with a non-empty ``id``."""
    return _with_id(where, item, ObjectRecord)


def check_tenant(where: str, item: object) -> object:
    """A tenant to set: its id, or a mapping or ``TenantRecord`` with a non-empty ``id``."""
    if isinstance(item, str):
        return check_id(where, item)
    return _with_id(where, item, TenantRecord)


def _recipient(where: str, value: object, *, reference: bool) -> object:
    """A user id, or a mapping with an ``id`` (an object needs its ``collection``; inline
    identification is only for adding, not for a reference to delete)."""
    if isinstance(value, str):
        return check_id(where, value)
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a user id or a mapping, got {type(value).__name__}")
    if "id" not in value:
        raise ValueError(f"{where} has no id")
    check_id(f"{where}.id", value["id"])
    if "collection" in value:
        check_id(f"{where}.collection", value["collection"])
    elif reference:
        raise ValueError(f"{where} is a mapping without a collection: give a user as its id")
    return dict(value)


def _subscription(where: str, item: object, *, reference: bool) -> object:
    fields = _with_id(where, item, SubscriptionRecord)
    recipients = fields.get("recipients")
    if recipients is None:
        raise ValueError(f"{where} has no recipients")
    if isinstance(recipients, str | bytes | Mapping) or not isinstance(recipients, list | tuple):
        raise TypeError(f"{where}.recipients must be a list, got {type(recipients).__name__}")
    if not recipients:
        raise ValueError(f"{where}.recipients is empty")
    fields["recipients"] = [
        _recipient(f"{where}.recipients[{i}]", r, reference=reference)
        for i, r in enumerate(recipients)
    ]
    return fields


def check_subscription(where: str, item: object) -> object:
    """Subscriptions to add: an object ``id`` and a non-empty list of ``recipients``."""
    return _subscription(where, item, reference=False)


def check_subscription_reference(where: str, item: object) -> object:
    """Subscriptions to delete: an object ``id`` and recipients as ids or references."""
    fields = _subscription(where, item, reference=True)
    assert isinstance(fields, dict)
    if "properties" in fields:
        raise ValueError(f"{where} has properties: deleting a subscription takes none")
    return fields


def check_schedule(where: str, item: object) -> object:
    """A schedule: a non-empty ``workflow`` and a ``recipient``; times as aware datetimes or
    ISO 8601 strings."""
    fields = _as_mapping(where, item, ScheduleRecord)
    if "workflow" not in fields:
        raise ValueError(f"{where} has no workflow")
    check_id(f"{where}.workflow", fields["workflow"])
    if fields.get("recipient") is None:
        raise ValueError(f"{where} has no recipient")
    fields["recipient"] = _recipient(f"{where}.recipient", fields["recipient"], reference=False)
    for name in ("scheduled_at", "ending_at"):
        if fields.get(name) is not None:
            fields[name] = _aware_time(f"{where}.{name}", fields[name])
    if fields.get("repeats") is not None:
        fields["repeats"] = _repeats(f"{where}.repeats", fields["repeats"])
    return fields


# RFC 3339's date-time, which the spec's ``format: date-time`` means (and Knock's validator
# checks): ISO 8601's other forms (basic, week dates, hours only) are refused there.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def _aware_time(where: str, value: object) -> str:
    """An aware datetime, or an RFC 3339 string (the spec's ``date-time``, an offset always),
    as the library checks the channel filters' times: Knock would read a time without an
    offset in a zone nobody chose."""
    if not isinstance(value, str):
        return _parse_datetime(where, value).isoformat()
    try:  # the form, then the ranges (no month 13); the string goes out as written
        if _RFC3339.fullmatch(value) and _parse_datetime(where, value.upper()):
            return value
    except ValueError:
        pass
    raise ValueError(
        f"{where} must be an RFC 3339 date-time with a UTC offset, such as "
        f"2026-01-05T09:00:00Z or 2026-01-05T09:00:00+01:00, got {value!r}"
    )


REPEAT_FREQUENCIES = ("daily", "weekly", "monthly", "hourly")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_REPEAT_NUMBERS = ("interval", "day_of_month", "hours", "minutes")


def _repeats(where: str, value: object) -> list[dict[str, Any]]:
    """Repeat rules: each a mapping whose ``frequency`` and ``days`` are the spec's words and
    whose numbers (``interval``, ``day_of_month``, ``hours``, ``minutes``) are integers."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise TypeError(f"{where} must be a list of repeat rules, got {type(value).__name__}")
    rules = []
    for index, rule in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(rule, Mapping):
            raise TypeError(f"{here} must be a mapping, got {type(rule).__name__}")
        if rule.get("frequency") not in REPEAT_FREQUENCIES:
            got = rule.get("frequency")
            raise ValueError(
                f"{here}.frequency must be one of {', '.join(REPEAT_FREQUENCIES)}, got {got!r}"
            )
        days = rule.get("days")
        if days is not None and (
            not isinstance(days, list | tuple) or not all(d in WEEKDAYS for d in days)
        ):
            raise ValueError(f"{here}.days must be a list of {', '.join(WEEKDAYS)}, got {days!r}")
        for name in _REPEAT_NUMBERS:
            number = rule.get(name)
            if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
                raise TypeError(f"{here}.{name} must be an integer, got {number!r}")
        rules.append(dict(rule))
    return rules
