"""The API's data: enums, the request body and the bulk operation, as frozen attrs classes.

Enums are *open*: a value the spec does not list yet is kept as a pseudo-member holding the raw
string instead of crashing a client in production. Input from the caller is checked strictly
against the known members (see ``_strict_member``): a typo in an action must fail before a
request is sent, while a new status from the server must not fail at all.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Literal, Self, TypeAlias, TypedDict, TypeVar

import attrs

from ._handle import BulkOperationHandle

__all__ = [
    "ArchivedFilter",
    "ArchivedFilterValue",
    "BulkAction",
    "BulkActionValue",
    "BulkFilters",
    "BulkOperation",
    "BulkOperationStatus",
    "BulkUpdateMessagesForChannelRequest",
    "DeliveryStatus",
    "DeliveryStatusValue",
    "EngagementStatus",
    "EngagementStatusValue",
    "ErrorItem",
]


class _OpenStrEnum(enum.StrEnum):
    """A ``str`` enum that keeps values it does not know as pseudo-members."""

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        """Whether the spec lists this value (``False`` for a value kept from the wire)."""
        return self._name_ in type(self).__members__


class BulkAction(_OpenStrEnum):
    """The status change a bulk update applies (the ``{action}`` path segment)."""

    SEEN = "seen"
    UNSEEN = "unseen"
    READ = "read"
    UNREAD = "unread"
    ARCHIVED = "archived"
    UNARCHIVED = "unarchived"
    INTERACTED = "interacted"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    DELETE = "delete"


class ArchivedFilter(_OpenStrEnum):
    """How archived messages are treated by a bulk update."""

    EXCLUDE = "exclude"
    INCLUDE = "include"
    ONLY = "only"


class DeliveryStatus(_OpenStrEnum):
    """The ``delivery_status`` filter: a message's delivery status."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    DELIVERY_ATTEMPTED = "delivery_attempted"
    UNDELIVERED = "undelivered"
    NOT_SENT = "not_sent"
    BOUNCED = "bounced"


class EngagementStatus(_OpenStrEnum):
    """The ``engagement_status`` filter: a message's engagement status."""

    SEEN = "seen"
    UNSEEN = "unseen"
    READ = "read"
    UNREAD = "unread"
    ARCHIVED = "archived"
    UNARCHIVED = "unarchived"
    LINK_CLICKED = "link_clicked"
    INTERACTED = "interacted"


# The same values as plain-string literal types, for the caller's side: a type checker then
# rejects a misspelt action or filter value, as Knock's official SDK's types do. Keep each in
# step with its enum (tests/typing/test_typing.py checks that they match).
BulkActionValue: TypeAlias = Literal[
    "seen", "unseen", "read", "unread", "archived", "unarchived", "interacted",
    "archive", "unarchive", "delete",
]  # fmt: skip
"""An action as a string: what ``update_message_status`` accepts besides a ``BulkAction``."""

ArchivedFilterValue: TypeAlias = Literal["exclude", "include", "only"]
"""The ``archived`` filter as a string, besides an ``ArchivedFilter``."""

DeliveryStatusValue: TypeAlias = Literal[
    "queued", "sent", "delivered", "delivery_attempted", "undelivered", "not_sent", "bounced"
]
"""The ``delivery_status`` filter as a string, besides a ``DeliveryStatus``."""

EngagementStatusValue: TypeAlias = Literal[
    "seen", "unseen", "read", "unread", "archived", "unarchived", "link_clicked", "interacted"
]
"""The ``engagement_status`` filter as a string, besides an ``EngagementStatus``."""


class BulkOperationStatus(_OpenStrEnum):
    """A bulk operation's status: ``queued``, ``processing``, ``completed`` or ``failed``."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        """``completed`` or ``failed``; a status the spec does not list counts as not finished."""
        return self in _TERMINAL


E = TypeVar("E", bound="_OpenStrEnum")

_TERMINAL = frozenset({BulkOperationStatus.COMPLETED, BulkOperationStatus.FAILED})


def _strict_member(cls: type[E], name: str, value: object) -> E:
    # The common case first: a plain string or a member of this enum that the spec lists.
    kind = type(value)
    if kind is str or kind is cls:
        member = _KNOWN[cls].get(value)  # type: ignore[call-overload]
        if member is not None:
            return member  # type: ignore[no-any-return]
    return _checked_member(cls, name, value)


def _checked_member(cls: type[E], name: str, value: object) -> E:
    if isinstance(value, cls) and value.is_known:
        return value
    if isinstance(value, str) and not isinstance(value, enum.Enum):
        member = cls._value2member_map_.get(value)
        if member is not None:
            return member  # type: ignore[return-value]
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or {cls.__name__}, got {type(value).__name__}")
    allowed = ", ".join(m.value for m in cls)
    raise ValueError(f"{name} must be one of {allowed}; got {str(value)!r}")


# The members each enum lists, by value: built here, not read from ``_value2member_map_``, so
# that a value the server sent (kept as a pseudo-member) can never pass for a known one.
_KNOWN: dict[type[Any], dict[str, Any]] = {
    cls: {member.value: member for member in cls}
    for cls in (BulkAction, ArchivedFilter, DeliveryStatus, EngagementStatus, BulkOperationStatus)
}


def parse_action(action: object) -> BulkAction:
    """``action`` as a known ``BulkAction``, or a ``ValueError``/``TypeError`` naming it."""
    return _strict_member(BulkAction, "action", action)


def _parse_datetime(name: str, value: object) -> datetime:
    # The common case first: an aware datetime on a fixed offset (UTC included).
    if type(value) is datetime and type(value.tzinfo) is timezone:
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} must be an ISO 8601 date-time, got {value!r}") from None
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a timezone-aware datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        # A bulk delete with a guessed timezone can delete hours of the wrong messages.
        raise ValueError(
            f"{name} must be timezone-aware (e.g. datetime(..., tzinfo=UTC)); got naive {value}"
        )
    return value


def _parse_strings(name: str, value: object) -> tuple[str, ...]:
    kind = type(value)
    if kind is list or kind is tuple:  # the common case, checked item by item below otherwise
        items: tuple[Any, ...] = tuple(value)  # type: ignore[arg-type]
        for item in items:
            if type(item) is not str:
                break
        else:
            return items
    return _checked_strings(name, value)


def _checked_strings(name: str, value: object) -> tuple[str, ...]:
    # A bare string is iterable too; iterating it would filter on single characters.
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of strings, got {type(value).__name__}")
    items = tuple(value)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{index}] must be a str, got {type(item).__name__}")
    return items


# Knock matches trigger_data on scalar top-level keys: anything nested this deep is a mistake,
# and a limit well inside Python's recursion limit keeps json from raising RecursionError.
_MAX_TRIGGER_DATA_DEPTH = 32


def _reject_constant(name: str) -> Any:
    raise ValueError(f"trigger_data must be strict JSON, got {name}")


def _check_depth(value: object) -> None:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > _MAX_TRIGGER_DATA_DEPTH:
            raise ValueError(
                f"trigger_data is nested more than {_MAX_TRIGGER_DATA_DEPTH} levels deep"
            )
        stack.extend((child, depth + 1) for child in children)


def _parse_trigger_data(value: object) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_constant=_reject_constant)
        except RecursionError:
            raise ValueError(
                f"trigger_data is nested more than {_MAX_TRIGGER_DATA_DEPTH} levels deep"
            ) from None
        except ValueError as exc:
            if str(exc).startswith("trigger_data"):
                raise ValueError(str(exc)) from None
            raise ValueError(
                f"trigger_data must be a JSON object, got a string that is not JSON: {value!r}"
            ) from None
        if not isinstance(value, dict):
            raise ValueError(  # noqa: TRY004 - a JSON value of the wrong kind, not a Python type
                f"trigger_data must be a JSON object, got {json.dumps(value)}"
            )
        _check_depth(value)
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"trigger_data must be a mapping or a JSON object string, got {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"trigger_data keys must be strings, got {key!r}")
    _check_depth(value)
    try:
        json.dumps(value, allow_nan=False)
    except ValueError as exc:  # NaN or an infinity: Knock would get text that is not JSON
        raise ValueError(f"trigger_data must be strict JSON: {exc}") from None
    except TypeError as exc:
        raise TypeError(f"trigger_data must be JSON-serialisable: {exc}") from None
    return dict(value)


def _has_tenant(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"has_tenant must be a bool, got {type(value).__name__}")


def _trigger_data_key(value: Mapping[str, Any] | None) -> str | None:
    # dicts don't hash; compare and hash through the canonical JSON form.
    return None if value is None else json.dumps(value, sort_keys=True)


class BulkFilters(TypedDict, total=False):
    """The ten filters of a bulk update, as keyword arguments (the official SDK's names).

    Strings are accepted for the enums; ``newer_than``/``older_than`` take aware datetimes or
    ISO 8601 strings with an offset; ``trigger_data`` a mapping or a JSON object string.
    """

    archived: ArchivedFilter | ArchivedFilterValue | None
    delivery_status: DeliveryStatus | DeliveryStatusValue | None
    engagement_status: EngagementStatus | EngagementStatusValue | None
    has_tenant: bool | None
    newer_than: datetime | str | None
    older_than: datetime | str | None
    recipient_ids: Iterable[str] | None
    tenants: Iterable[str] | None
    trigger_data: Mapping[str, Any] | str | None
    workflows: Iterable[str] | None


def _slot_setters(cls: type[Any]) -> tuple[Any, ...]:
    """Each field's slot descriptor setter, in field order, for hand-written builders on the
    hot path: object.__setattr__ (what a frozen attrs class's __init__ calls per field) looks
    the name up in the class every time; the descriptor sets the slot directly."""
    return tuple(cls.__dict__[field.name].__set__ for field in attrs.fields(cls))


@attrs.frozen(kw_only=True, init=False)
class BulkUpdateMessagesForChannelRequest:
    """The body of ``POST /v1/channels/{channel_id}/messages/bulk/{action}``: ten filters.

    Every filter is optional; one left as ``None`` is left out of the body entirely. Values are
    checked when the object is built, so bad input fails before any request is sent.
    ``trigger_data`` is a mapping here and a compact JSON string on the wire.
    """

    archived: ArchivedFilter | None = None
    delivery_status: DeliveryStatus | None = None
    engagement_status: EngagementStatus | None = None
    has_tenant: bool | None = None
    newer_than: datetime | None = None
    older_than: datetime | None = None
    recipient_ids: tuple[str, ...] | None = None
    tenants: tuple[str, ...] | None = None
    trigger_data: Mapping[str, Any] | None = attrs.field(default=None, eq=_trigger_data_key)
    workflows: tuple[str, ...] | None = None

    # Written by hand rather than generated with converters (attrs would call all ten, Nones
    # included, on every request): each filter is checked only when given, in field order.
    # Arguments are typed ``object``, as the converters' were: anything is checked at run time.
    def __init__(
        self,
        *,
        archived: object = None,
        delivery_status: object = None,
        engagement_status: object = None,
        has_tenant: object = None,
        newer_than: object = None,
        older_than: object = None,
        recipient_ids: object = None,
        tenants: object = None,
        trigger_data: object = None,
        workflows: object = None,
    ) -> None:
        member, stamp, strings = _strict_member, _parse_datetime, _parse_strings
        if archived is not None:
            archived = member(ArchivedFilter, "archived", archived)
        if delivery_status is not None:
            delivery_status = member(DeliveryStatus, "delivery_status", delivery_status)
        if engagement_status is not None:
            engagement_status = member(EngagementStatus, "engagement_status", engagement_status)
        if has_tenant is not None:
            has_tenant = _has_tenant(has_tenant)
        if newer_than is not None:
            newer_than = stamp("newer_than", newer_than)
        if older_than is not None:
            older_than = stamp("older_than", older_than)
        if recipient_ids is not None:
            recipient_ids = strings("recipient_ids", recipient_ids)
        if tenants is not None:
            tenants = strings("tenants", tenants)
        if trigger_data is not None:
            trigger_data = _parse_trigger_data(trigger_data)
        if workflows is not None:
            workflows = strings("workflows", workflows)
        _put_archived(self, archived)
        _put_delivery_status(self, delivery_status)
        _put_engagement_status(self, engagement_status)
        _put_has_tenant(self, has_tenant)
        _put_newer_than(self, newer_than)
        _put_older_than(self, older_than)
        _put_recipient_ids(self, recipient_ids)
        _put_tenants(self, tenants)
        _put_trigger_data(self, trigger_data)
        _put_workflows(self, workflows)


# Unpacked so that a field added to the class and not here fails at import, not silently.
(
    _put_archived,
    _put_delivery_status,
    _put_engagement_status,
    _put_has_tenant,
    _put_newer_than,
    _put_older_than,
    _put_recipient_ids,
    _put_tenants,
    _put_trigger_data,
    _put_workflows,
) = _slot_setters(BulkUpdateMessagesForChannelRequest)


@attrs.frozen(kw_only=True)
class ErrorItem:
    """An item a bulk operation failed to process."""

    id: str
    collection: str | None = None


@attrs.frozen(kw_only=True)
class BulkOperation:
    """A bulk operation as the API reports it (``BulkOperation`` in the spec).

    ``typename`` is the wire's ``__typename``. Fields the spec makes optional default to what
    their absence means (``error_count=0``, no ``error_items``); nullable timestamps are
    ``None`` until the event they record has happened.
    """

    id: str
    typename: str
    name: str
    status: BulkOperationStatus
    estimated_total_rows: int
    processed_rows: int
    success_count: int
    inserted_at: datetime
    updated_at: datetime
    error_count: int = 0
    error_items: tuple[ErrorItem, ...] = ()
    progress_path: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    # Not on the wire: the channel and action the client sent, when it started the operation,
    # so that ``handle`` can carry them to a worker's logs. They don't make operations differ.
    channel_id: str | None = attrs.field(default=None, eq=False, repr=False)
    action: str | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def is_terminal(self) -> bool:
        """``True`` once the operation is ``completed`` or ``failed``."""
        return self.status.is_terminal

    @property
    def handle(self) -> BulkOperationHandle:
        """A small, secret-free, JSON-serialisable reference to follow this operation later."""
        return BulkOperationHandle(
            operation_id=self.id,
            progress_path=self.progress_path,
            channel_id=self.channel_id,
            action=self.action,
        )
