"""The one cattrs converter: wire JSON <-> models, built once at import.

Wire rules: datetimes are ISO 8601 and always carry an offset (UTC is written ``Z``);
``__typename`` is ``typename`` in Python; ``trigger_data`` is a mapping in Python and a compact
JSON string on the wire; filters left as ``None`` are left out of the request body. Structuring
is strict about types (no ``int("3")`` coercion) and tolerant of unknown extra keys, so the
server may add fields without breaking clients.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter
from cattrs.v import format_exception

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
)

__all__ = ["converter", "format_datetime", "loads_operation", "parse_datetime"]

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
        raise ForbiddenExtraKeysError(None, BulkUpdateMessagesForChannelRequest, extra)
    for name, value in data.items():
        if value is None:
            raise ValueError(f"{name} must not be null (leave it out instead)")
        if name in _WIRE_STRINGS and not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    return BulkUpdateMessagesForChannelRequest(**data)


def _build() -> cattrs.Converter:
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
    conv.register_unstructure_hook(
        BulkUpdateMessagesForChannelRequest,
        make_dict_unstructure_fn(
            BulkUpdateMessagesForChannelRequest,
            conv,
            _cattrs_omit_if_default=True,
            trigger_data=override(unstruct_hook=_trigger_data_to_wire),
        ),
    )
    return conv


converter = _build()
_structure_operation = converter.get_structure_hook(BulkOperation)


def _format_exception(exc: BaseException, kind: type | None) -> str:
    # Our hooks and the models' converters raise messages that name the problem precisely.
    if isinstance(exc, ValueError | TypeError) and str(exc):
        return str(exc)
    return format_exception(exc, kind)


def validation_messages(exc: BaseException) -> list[str]:
    """cattrs' readable error list (``"expected int, got str @ $.processed_rows"``)."""
    messages = cattrs.transform_error(exc, format_exception=_format_exception)
    # Name the wire's field, not its Python spelling.
    return [m.replace("@ $.typename", "@ $.__typename") for m in messages]


def loads_operation(
    body: bytes, *, channel_id: str | None = None, action: str | None = None
) -> BulkOperation:
    """Parse and check a ``BulkOperation`` response body, or raise ``ResponseValidationError``.

    ``channel_id`` and ``action`` are what the caller knows of the operation (never read from
    the server's answer)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # also UnicodeDecodeError; absurd nesting
        raise ResponseValidationError(
            f"response body is not valid JSON: {exc}", errors=[f"invalid JSON @ $: {exc}"]
        ) from None
    return structure_operation(data, channel_id=channel_id, action=action)


def structure_operation(
    data: Any, *, channel_id: str | None = None, action: str | None = None
) -> BulkOperation:
    if not isinstance(data, dict):
        raise ResponseValidationError(
            f"expected a BulkOperation object, got JSON {type(data).__name__}",
            errors=[f"expected an object @ $, got {type(data).__name__}"],
        )
    try:
        operation: BulkOperation = _structure_operation(data, BulkOperation)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        errors = validation_messages(exc)
        raise ResponseValidationError(
            "response is not a valid BulkOperation: " + "; ".join(errors), errors=errors
        ) from exc
    if channel_id is not None or action is not None:
        operation = attrs.evolve(operation, channel_id=channel_id, action=action)
    return operation
