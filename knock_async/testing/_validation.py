"""Checking requests against the spec before anything is touched. Pure.

The body's fields and their types come from the core model
(``BulkUpdateMessagesForChannelRequest``) and its cattrs converter; this module adds only what
the wire demands beyond them: every value must have the JSON type the spec gives it (no
``null``, no string where an array belongs), date-times must be RFC 3339 with an offset, list
filters are capped in length. An unknown top-level key is ignored, as the spec allows (the
caller records it), or refused with 422 in strict mode.

Each 422 names the offending field in Knock's ``errors`` list
(``{"field": ..., "message": ..., "type": null}``).
"""

from __future__ import annotations

import enum
import json
import re
import types
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any, Union, get_args, get_origin

import attrs
import cattrs

from .._convert import converter, validation_messages
from .._models import BulkAction, BulkUpdateMessagesForChannelRequest, parse_action
from ._wire import bad_json, invalid_fields, invalid_params

__all__ = ["ParsedBody", "parse_action_param", "parse_bulk_body", "parse_channel_id", "wire_kinds"]

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})", re.ASCII
)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _short(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


@cache
def wire_kinds() -> dict[str, str]:
    """Each body field's JSON shape on the wire, derived from the model's field types:
    ``"array"`` (of strings), ``"boolean"``, ``"date-time"`` or ``"string"``."""
    kinds: dict[str, str] = {}
    for field in attrs.fields(attrs.resolve_types(BulkUpdateMessagesForChannelRequest)):
        hint: Any = field.type
        if get_origin(hint) in (Union, types.UnionType):
            hint = next(arg for arg in get_args(hint) if arg is not type(None))
        origin = get_origin(hint)
        if origin is tuple:
            kinds[field.name] = "array"
        elif hint is bool:
            kinds[field.name] = "boolean"
        elif hint is datetime:
            kinds[field.name] = "date-time"
        elif (isinstance(hint, type) and issubclass(hint, enum.Enum | str)) or origin is Mapping:
            # Enums are strings; a Mapping (trigger_data) is a JSON object sent as a string.
            kinds[field.name] = "string"
        else:  # pragma: no cover - a new field type in the model needs a rule here
            raise TypeError(f"no wire rule for {field.name}: {field.type!r}")
    return kinds


def parse_channel_id(value: str) -> str:
    """The ``channel_id`` path parameter, if it is a UUID (8-4-4-4-12 hex)."""
    if not _UUID.fullmatch(value):
        raise invalid_params("channel_id", f"channel_id must be a UUID, got {_short(value)}")
    return value.lower()


def parse_action_param(value: str) -> BulkAction:
    """The ``action`` path parameter, if it is one the spec lists."""
    try:
        return parse_action(value)
    except (TypeError, ValueError) as exc:
        raise invalid_params("action", str(exc)) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load(raw: bytes) -> object:
    if not raw.strip():
        return {}  # no body at all: no filters, as Knock's JSON parser treats it
    try:
        # JSON on the wire is UTF-8 (RFC 8259): no guessing UTF-16 or UTF-32 from the bytes.
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise bad_json("The request body is not valid JSON: nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity
        raise bad_json(f"The request body is not valid JSON: {exc}") from None
    if b"\\u" in raw:
        # A lone surrogate escape ("\ud800") parses, but is no Unicode text: refuse it
        # here rather than fail later on encoding it. Only bodies with escapes pay for this.
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise bad_json(
                "The request body is not valid JSON: it escapes a lone UTF-16 surrogate."
            ) from None
    return data


def _check_value(name: str, kind: str, value: object, max_items: int) -> None:
    got = _json_type(value)
    if kind == "array":
        if not isinstance(value, list):
            raise invalid_params(name, f"{name} must be an array of strings, got {got}")
        if len(value) > max_items:
            raise invalid_params(
                name, f"{name} must have at most {max_items} items, got {len(value)}"
            )
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise invalid_params(
                    f"{name}[{index}]", f"{name}[{index}] must be a string, got {_json_type(item)}"
                )
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise invalid_params(name, f"{name} must be a boolean, got {got}")
    elif not isinstance(value, str):
        raise invalid_params(name, f"{name} must be a string, got {got}")
    elif kind == "date-time" and not _DATE_TIME.fullmatch(value):
        raise invalid_params(
            name,
            f"{name} must be an RFC 3339 date-time with an offset "
            f"(e.g. 2024-01-01T00:00:00Z), got {_short(value)}",
        )


@attrs.frozen
class ParsedBody:
    """A valid bulk update body: the filters, and the unknown top-level keys it ignored."""

    filters: BulkUpdateMessagesForChannelRequest
    ignored_fields: tuple[str, ...] = ()


def _field_problem(message: str) -> tuple[str, str]:
    """``(field, message)`` from a converter message: ``"... @ $.older_than"``, or
    ``"older_than must be ... @ $"`` from a check of the whole body."""
    text, _, where = message.rpartition(" @ $")
    text = text or message
    field = where.lstrip(".")
    if not field:
        first = text.partition(" ")[0]
        field = first if first in wire_kinds() else "body"
    return field, text


MAX_IGNORED_FIELDS = 20  # recorded on the request log: bounded whatever the body


def _field_name(key: str) -> str:
    return key if len(key) <= 40 else key[:40] + "..."


def _user_ids(data: dict[str, Any], max_items: int) -> dict[str, Any]:
    """``user_ids``, which Knock's mobile SDKs send and the spec does not list, restricts the
    update to those recipients (inferred from the SDKs: ignoring it would update every
    recipient's messages). Given with ``recipient_ids``, the two lists intersect."""
    data = dict(data)
    user_ids = data.pop("user_ids")
    _check_value("user_ids", "array", user_ids, max_items)
    recipients = data.get("recipient_ids")
    if isinstance(recipients, list):
        user_ids = [r for r in recipients if r in set(user_ids)]
    data["recipient_ids"] = user_ids
    return data


def parse_bulk_body(raw: bytes, *, max_list_items: int, strict: bool = False) -> ParsedBody:
    """The bulk update body as the core model, or a ``KnockHTTPError`` (400 or 422).

    Unknown top-level keys are left out of the model and listed on the result, or refused
    with 422 when ``strict``."""
    data = _load(raw)
    if not isinstance(data, dict):
        raise invalid_params(
            "body", f"The request body must be a JSON object, got {_json_type(data)}"
        )
    kinds = wire_kinds()
    if "user_ids" in data:
        data = _user_ids(data, max_list_items)
    unknown = sorted(_field_name(key) for key in data if key not in kinds)
    if unknown and strict:
        raise invalid_fields([(key, f"{key} is not a known parameter") for key in unknown[:5]])
    if unknown:
        data = {key: value for key, value in data.items() if key in kinds}
    for name, value in data.items():
        _check_value(name, kinds[name], value, max_list_items)
    try:
        filters: BulkUpdateMessagesForChannelRequest = converter.structure(
            data, BulkUpdateMessagesForChannelRequest
        )
    except RecursionError:
        # Only trigger_data holds JSON inside JSON; the body itself was parsed already.
        raise invalid_params("trigger_data", "trigger_data is nested too deeply") from None
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise invalid_fields([_field_problem(m) for m in validation_messages(exc)]) from None
    return ParsedBody(filters, tuple(unknown[:MAX_IGNORED_FIELDS]))
