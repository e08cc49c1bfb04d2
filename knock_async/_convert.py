"""The one cattrs converter: wire JSON <-> models, built on first use; and the hand-written
paths that spare it on every request (a well-formed answer, a request body).

Wire rules: datetimes are ISO 8601 and always carry an offset (UTC is written ``Z``);
``__typename`` is ``typename`` in Python; ``trigger_data`` is a mapping in Python and a compact
JSON string on the wire; filters left as ``None`` are left out of the request body. Structuring
is strict about types (no ``int("3")`` coercion) and tolerant of unknown extra keys, so the
server may add fields without breaking clients.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
import cattrs

from ._errors import ResponseValidationError
from ._models import (
    ArchivedFilter,
    BulkAction,
    BulkOperation,
    BulkOperationStatus,
    BulkUpdateMessagesForChannelRequest,
    DeliveryStatus,
    EngagementStatus,
    ErrorItem,
    _slot_setters,
)

__all__ = [
    "converter",
    "dumps_request",
    "format_datetime",
    "loads_operation",
    "parse_datetime",
    "speedups_enabled",
]

T = TypeVar("T")


def format_datetime(value: datetime) -> str:
    """ISO 8601 with an explicit offset; UTC as ``Z``, as Knock writes it."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_datetime(value: object, _: object = None) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 date-time string, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    # Knock always sends an offset; if a proxy or an old server drops it, UTC is what it meant.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# Every integer in Knock's answers is a count, taken as the server gives it within a signed
# 64-bit integer: a nonsense count (negative) is data that must not end a follow while the
# operation goes on server-side; one beyond 64 bits is absurd, and too large for a float it
# would break the progress arithmetic (OverflowError).
_MIN_INT = -(2**63)
_MAX_INT = 2**63 - 1


def _strict(kind: type[Any]) -> Any:
    def structure(value: object, _: object) -> Any:
        # bool is an int subclass; a JSON true where a count belongs is a wrong type.
        if type(value) is not kind and not (kind is float and type(value) is int):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        if kind is int and not _MIN_INT <= value <= _MAX_INT:  # type: ignore[operator]
            raise ValueError(f"expected an integer in -2**63..2**63-1, got {value}")
        return value

    return structure


def _optional(hook: Any) -> Any:
    def structure(value: object, kind: object) -> Any:
        return None if value is None else hook(value, kind)

    return structure


def _open_enum(value: object, cls: type[Any]) -> Any:
    member = cls._value2member_map_.get(value)  # the common case, without Enum.__call__
    if member is not None:
        return member
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return cls(value)


def _trigger_data_to_wire(value: Mapping[str, Any] | None) -> str | None:
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_REQUEST_FIELDS = frozenset(a.name for a in attrs.fields(BulkUpdateMessagesForChannelRequest))
_WIRE_STRINGS = frozenset({"newer_than", "older_than", "trigger_data"})


def _request_from_wire(data: object, _: object) -> BulkUpdateMessagesForChannelRequest:
    """A request body from JSON, as strictly as the spec reads.

    The model's own converters check every value (they are stricter than cattrs' generic
    hooks, which would turn ``"abc"`` into ``("a", "b", "c")``); this adds what only holds on
    the wire: no unknown keys, no nulls, date-times and ``trigger_data`` as strings.
    """
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    extra = set(data) - _REQUEST_FIELDS
    if extra:
        from cattrs.errors import ForbiddenExtraKeysError

        raise ForbiddenExtraKeysError(None, BulkUpdateMessagesForChannelRequest, extra)
    for name, value in data.items():
        if value is None:
            raise ValueError(f"{name} must not be null (leave it out instead)")
        if name in _WIRE_STRINGS and not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    return BulkUpdateMessagesForChannelRequest(**data)


def _request_to_wire(body: BulkUpdateMessagesForChannelRequest) -> dict[str, Any]:
    """The body as the wire's JSON object; what cattrs' generated hook gives, by hand (it runs
    once per POST). Enums stay members (``str`` subclasses, written as their value)."""
    wire: dict[str, Any] = {}
    value: Any
    if (value := body.archived) is not None:
        wire["archived"] = value
    if (value := body.delivery_status) is not None:
        wire["delivery_status"] = value
    if (value := body.engagement_status) is not None:
        wire["engagement_status"] = value
    if (value := body.has_tenant) is not None:
        wire["has_tenant"] = value
    if (value := body.newer_than) is not None:
        wire["newer_than"] = format_datetime(value)
    if (value := body.older_than) is not None:
        wire["older_than"] = format_datetime(value)
    if (value := body.recipient_ids) is not None:
        wire["recipient_ids"] = list(value)
    if (value := body.tenants) is not None:
        wire["tenants"] = list(value)
    if (value := body.trigger_data) is not None:
        wire["trigger_data"] = _trigger_data_to_wire(value)
    if (value := body.workflows) is not None:
        wire["workflows"] = list(value)
    return wire


def _build() -> cattrs.Converter:
    # Imported here: only answers the fast path leaves aside, request bodies read from JSON (the
    # emulator) and callers of ``converter`` need cattrs' code generation.
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
    from cattrs.preconf.json import make_converter

    conv = make_converter(detailed_validation=True, forbid_extra_keys=False)
    for kind in (str, int, bool, float):
        conv.register_structure_hook(kind, _strict(kind))
    # Registered per class: the strict ``str`` hook above would otherwise catch these str
    # subclasses and hand back plain strings.
    for enum_cls in (
        BulkAction,
        ArchivedFilter,
        DeliveryStatus,
        EngagementStatus,
        BulkOperationStatus,
    ):
        conv.register_structure_hook(enum_cls, _open_enum)
    conv.register_unstructure_hook(datetime, format_datetime)
    conv.register_structure_hook(datetime, parse_datetime)
    # Direct hooks for the optional fields spare cattrs' generic union dispatch per field.
    conv.register_structure_hook_func(lambda t: t == datetime | None, _optional(parse_datetime))
    conv.register_structure_hook_func(lambda t: t == str | None, _optional(_strict(str)))

    conv.register_structure_hook(
        BulkOperation,
        make_dict_structure_fn(
            BulkOperation,
            conv,
            typename=override(rename="__typename"),
            channel_id=override(omit=True),  # the client's, never the server's
            action=override(omit=True),
        ),
    )
    conv.register_unstructure_hook(
        BulkOperation,
        make_dict_unstructure_fn(
            BulkOperation,
            conv,
            typename=override(rename="__typename"),
            # progress_path is optional but not nullable in the spec: absent, never null.
            progress_path=override(omit_if_default=True),
            channel_id=override(omit=True),
            action=override(omit=True),
        ),
    )
    conv.register_unstructure_hook(
        ErrorItem, make_dict_unstructure_fn(ErrorItem, conv, _cattrs_omit_if_default=False)
    )
    conv.register_structure_hook(BulkUpdateMessagesForChannelRequest, _request_from_wire)
    conv.register_unstructure_hook(BulkUpdateMessagesForChannelRequest, _request_to_wire)
    return conv


converter: cattrs.Converter  # built by __getattr__ on first use: see _converter()
_built: cattrs.Converter | None = None


def _converter() -> cattrs.Converter:
    global _built
    if _built is None:
        _built = _build()
    return _built


def __getattr__(name: str) -> Any:
    # Building the converter generates and compiles code: most processes never need it, so
    # ``import knock_async`` does not pay for it (PEP 562).
    if name == "converter":
        conv = globals()["converter"] = _converter()
        return conv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _format_exception(exc: BaseException, kind: type | None) -> str:
    # Our hooks and the models' converters raise messages that name the problem precisely.
    if isinstance(exc, ValueError | TypeError) and str(exc):
        return str(exc)
    from cattrs.v import format_exception

    return format_exception(exc, kind)


def validation_messages(exc: BaseException) -> list[str]:
    """cattrs' readable error list (``"expected int, got str @ $.processed_rows"``)."""
    messages = cattrs.transform_error(exc, format_exception=_format_exception)
    # Name the wire's field, not its Python spelling.
    return [m.replace("@ $.typename", "@ $.__typename") for m in messages]


# JSON in and out. orjson (the ``speedups`` extra) is used when it is importable; anything it
# refuses to decode (NaN, integers past 64 bits, UTF-16, a lone surrogate...) is decoded again
# by the stdlib, so results and error messages are the same with or without it.


def _import_orjson() -> Any:
    try:
        import orjson
    except ImportError:
        return None
    return orjson


_orjson = _import_orjson()

_stdlib_loads = json.loads
_stdlib_encoder = json.JSONEncoder(separators=(",", ":"))
# The C encoder built once: json.dumps builds one per call. No circular check: request bodies
# are flat.
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_stdlib_encode = (
    _c_encoder(
        None,
        _stdlib_encoder.default,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        False,
        False,
        True,
    )
    if _c_encoder is not None
    else None
)


def _stdlib_dumps(wire: dict[str, Any]) -> bytes:
    if _stdlib_encode is None:
        return _stdlib_encoder.encode(wire).encode()
    return "".join(_stdlib_encode(wire, 0)).encode()


if _orjson is not None:
    _orjson_loads = _orjson.loads
    _orjson_error = _orjson.JSONDecodeError
    _orjson_dumps = _orjson.dumps

    def _speedy_loads(body: bytes) -> Any:
        try:
            return _orjson_loads(body)
        except _orjson_error:
            return _stdlib_loads(body)

    _loads: Any = _speedy_loads
    _dumps: Any = _orjson_dumps
else:
    _loads = _stdlib_loads
    _dumps = _stdlib_dumps


def speedups_enabled() -> bool:
    """Whether JSON goes through orjson (``pip install 'knock-async[speedups]'``)."""
    return _loads is not _stdlib_loads


def dumps_request(body: BulkUpdateMessagesForChannelRequest) -> bytes:
    """A bulk update's body as compact JSON bytes, ready to send."""
    return _dumps(_request_to_wire(body))  # type: ignore[no-any-return]


def _decode(loads: Any, body: bytes) -> Any:
    try:
        return loads(body)
    except (ValueError, RecursionError) as exc:  # also UnicodeDecodeError; absurd nesting
        raise ResponseValidationError(
            f"response body is not valid JSON: {exc}", errors=[f"invalid JSON @ $: {exc}"]
        ) from None


def loads_operation(
    body: bytes, *, channel_id: str | None = None, action: str | None = None
) -> BulkOperation:
    """Parse and check a ``BulkOperation`` response body, or raise ``ResponseValidationError``.

    ``channel_id`` and ``action`` are what the caller knows of the operation (never read from
    the server's answer)."""
    loads = _loads
    data = _decode(loads, body)
    if type(data) is dict:
        try:
            return _fast_operation(data, channel_id, action)
        except Exception:  # noqa: BLE001, S110 - anything odd is for the thorough path to judge
            pass
    if loads is not _stdlib_loads:
        # What the thorough path judges is what the stdlib reads (orjson turns an integer past
        # 64 bits into a float), so that its messages are the same with or without speedups.
        data = _decode(_stdlib_loads, body)
    return _thorough_operation(data, channel_id, action)


_STATUSES = BulkOperationStatus._value2member_map_
_parse_iso = datetime.fromisoformat


class _UnusualAnswerError(Exception):
    """An answer the fast path leaves to cattrs."""


def _fast_datetime(value: object) -> datetime:
    if type(value) is not str:
        raise _UnusualAnswerError
    parsed = _parse_iso(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_new = object.__new__
# Unpacked so that a field added to the class and not here fails at import, not silently.
(
    _set_id,
    _set_typename,
    _set_name,
    _set_status,
    _set_estimated_total_rows,
    _set_processed_rows,
    _set_success_count,
    _set_inserted_at,
    _set_updated_at,
    _set_error_count,
    _set_error_items,
    _set_progress_path,
    _set_started_at,
    _set_completed_at,
    _set_failed_at,
    _set_channel_id,
    _set_action,
) = _slot_setters(BulkOperation)
_set_item_id, _set_item_collection = _slot_setters(ErrorItem)


def _fast_error_items(value: object) -> tuple[ErrorItem, ...]:
    if type(value) is not list:
        raise _UnusualAnswerError
    items = []
    for item in value:
        if type(item) is not dict:
            raise _UnusualAnswerError
        id_, collection = item["id"], item.get("collection")
        if type(id_) is not str or (collection is not None and type(collection) is not str):
            raise _UnusualAnswerError
        error_item = _new(ErrorItem)
        _set_item_id(error_item, id_)
        _set_item_collection(error_item, collection)
        items.append(error_item)
    return tuple(items)


def _fast_operation(
    data: dict[str, Any], channel_id: str | None, action: str | None
) -> BulkOperation:
    """A well-formed answer without cattrs (the hot path: every POST and poll). Anything
    unusual raises, and the caller hands it to cattrs: its results and messages stand."""
    get = data.get
    id_, typename, name = data["id"], data["__typename"], data["name"]
    total, processed = data["estimated_total_rows"], data["processed_rows"]
    success, errors = data["success_count"], get("error_count", 0)
    path = get("progress_path")
    if not (
        # Chained: each type is the next one, the last is str (int): all are.
        type(id_) is type(typename) is type(name) is str
        and (path is None or type(path) is str)
        and type(total) is type(processed) is type(success) is type(errors) is int
        and 0 <= total <= _MAX_INT
        and 0 <= processed <= _MAX_INT
        and 0 <= success <= _MAX_INT
        and 0 <= errors <= _MAX_INT
    ):
        raise _UnusualAnswerError
    status = _STATUSES[data["status"]]
    inserted_at = _fast_datetime(data["inserted_at"])
    updated_at = _fast_datetime(data["updated_at"])
    # Calls only where there is something to convert: most answers hold nulls here.
    error_items = get("error_items", ())  # the default tuple: absent from the answer
    if type(error_items) is list and not error_items:
        error_items = ()  # the common case, without a call
    elif type(error_items) is not tuple:
        error_items = _fast_error_items(error_items)
    started_at = get("started_at")
    if started_at is not None:
        started_at = _fast_datetime(started_at)
    completed_at = get("completed_at")
    if completed_at is not None:
        completed_at = _fast_datetime(completed_at)
    failed_at = get("failed_at")
    if failed_at is not None:
        failed_at = _fast_datetime(failed_at)
    operation = _new(BulkOperation)
    _set_id(operation, id_)
    _set_typename(operation, typename)
    _set_name(operation, name)
    _set_status(operation, status)
    _set_estimated_total_rows(operation, total)
    _set_processed_rows(operation, processed)
    _set_success_count(operation, success)
    _set_inserted_at(operation, inserted_at)
    _set_updated_at(operation, updated_at)
    _set_error_count(operation, errors)
    _set_error_items(operation, error_items)
    _set_progress_path(operation, path)
    _set_started_at(operation, started_at)
    _set_completed_at(operation, completed_at)
    _set_failed_at(operation, failed_at)
    _set_channel_id(operation, channel_id)
    _set_action(operation, action)
    return operation


def structure_operation(
    data: Any, *, channel_id: str | None = None, action: str | None = None
) -> BulkOperation:
    """``data`` (decoded JSON) as a ``BulkOperation``, or ``ResponseValidationError``."""
    if type(data) is dict:
        try:
            return _fast_operation(data, channel_id, action)
        except Exception:  # noqa: BLE001, S110 - anything odd is for the thorough path to judge
            pass
    return _thorough_operation(data, channel_id, action)


def _thorough_operation(data: Any, channel_id: str | None, action: str | None) -> BulkOperation:
    """cattrs' path: any answer, checked in full, with every problem named in the error."""
    if not isinstance(data, dict):
        raise ResponseValidationError(
            f"expected a BulkOperation object, got JSON {type(data).__name__}",
            errors=[f"expected an object @ $, got {type(data).__name__}"],
        )
    try:
        operation: BulkOperation = _converter().structure(data, BulkOperation)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        errors = validation_messages(exc)
        raise ResponseValidationError(
            "response is not a valid BulkOperation: " + "; ".join(errors), errors=errors
        ) from exc
    if channel_id is not None or action is not None:
        operation = attrs.evolve(operation, channel_id=channel_id, action=action)
    return operation
