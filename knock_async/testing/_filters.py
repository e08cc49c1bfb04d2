"""Which messages a bulk update selects: every filter of the request body, applied for real.

Pure functions over ``Message`` snapshots. Semantics (where the spec is silent, the choice is
stated here and in the emulator's docs):

- Filters combine with AND; a filter left out (``None``) does not limit.
- ``archived``: ``exclude`` = not archived, ``only`` = archived, ``include`` = either. When the
  body leaves it out, the emulator's ``default_archived`` applies (``include`` by default).
- ``engagement_status``: ``seen``/``read``/``archived``/``interacted``/``link_clicked`` hold while
  the matching timestamp is set; ``unseen``/``unread``/``unarchived`` while it is not.
- ``recipient_ids``, ``tenants``, ``workflows``: membership; an empty list matches nothing.
- ``has_tenant``: whether the message has a tenant.
- ``newer_than``/``older_than``: strictly after/before, on ``inserted_at``.
- ``trigger_data``: every key of the filter object must be a top-level key of the message's
  trigger data holding a scalar (string, number, boolean, null) equal to the filter's value,
  JSON-typed (``1`` matches ``1.0`` but not ``"1"`` or ``true``). An empty object matches all.
- Retention: on a channel that is not ``in_app_feed``, a message inserted before
  ``at - retention`` is never selected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from .._models import ArchivedFilter, BulkUpdateMessagesForChannelRequest, EngagementStatus
from ._store import ChannelType, Message

__all__ = [
    "compile_filters",
    "json_scalar_equal",
    "matches",
    "selects",
    "trigger_data_matches",
    "within_retention",
]

_ENGAGEMENT: dict[EngagementStatus, Callable[[Message], bool]] = {
    EngagementStatus.SEEN: lambda m: m.seen_at is not None,
    EngagementStatus.UNSEEN: lambda m: m.seen_at is None,
    EngagementStatus.READ: lambda m: m.read_at is not None,
    EngagementStatus.UNREAD: lambda m: m.read_at is None,
    EngagementStatus.ARCHIVED: lambda m: m.archived_at is not None,
    EngagementStatus.UNARCHIVED: lambda m: m.archived_at is None,
    EngagementStatus.INTERACTED: lambda m: m.interacted_at is not None,
    EngagementStatus.LINK_CLICKED: lambda m: m.link_clicked_at is not None,
}

_SCALARS = (str, int, float, bool, type(None))


def json_scalar_equal(left: object, right: object) -> bool:
    """Equality of JSON scalars, JSON-typed: ``True`` is not ``1``, ``"1"`` is not ``1``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if left is None or right is None:
        return left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    return False


def trigger_data_matches(wanted: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    """Whether trigger ``data`` has every scalar top-level key/value pair of ``wanted``."""
    for key, value in wanted.items():
        if key not in data:
            return False
        actual = data[key]
        if not isinstance(actual, _SCALARS) or not json_scalar_equal(actual, value):
            return False
    return True


def within_retention(message: Message, *, at: datetime, retention: timedelta | None) -> bool:
    """Whether a bulk update at ``at`` may touch ``message`` (in-app feeds: always)."""
    if retention is None or message.channel_type is ChannelType.IN_APP_FEED:
        return True
    return message.inserted_at >= at - retention


def compile_filters(
    filters: BulkUpdateMessagesForChannelRequest,
    *,
    default_archived: ArchivedFilter = ArchivedFilter.INCLUDE,
) -> Callable[[Message], bool]:
    """A predicate for "``message`` passes every filter" (retention aside), built once per
    operation so that list filters are sets and a check does no parsing."""
    checks: list[Callable[[Message], bool]] = []
    archived = filters.archived if filters.archived is not None else default_archived
    if archived == ArchivedFilter.EXCLUDE:
        checks.append(lambda m: m.archived_at is None)
    elif archived == ArchivedFilter.ONLY:
        checks.append(lambda m: m.archived_at is not None)
    if (delivery := filters.delivery_status) is not None:
        checks.append(lambda m: m.delivery_status == delivery)
    if filters.engagement_status is not None:
        checks.append(_ENGAGEMENT[filters.engagement_status])
    if (has_tenant := filters.has_tenant) is not None:
        checks.append(lambda m: (m.tenant is not None) == has_tenant)
    if (newer := filters.newer_than) is not None:
        checks.append(lambda m: m.inserted_at > newer)
    if (older := filters.older_than) is not None:
        checks.append(lambda m: m.inserted_at < older)
    if filters.recipient_ids is not None:
        recipients = frozenset(filters.recipient_ids)
        checks.append(lambda m: m.recipient_id in recipients)
    if filters.tenants is not None:
        tenants = frozenset(filters.tenants)
        checks.append(lambda m: m.tenant is not None and m.tenant in tenants)
    if filters.workflows is not None:
        workflows = frozenset(filters.workflows)
        checks.append(lambda m: m.workflow in workflows)
    if (wanted := filters.trigger_data) is not None:
        checks.append(lambda m: trigger_data_matches(wanted, m.data))
    if not checks:
        return lambda _: True
    if len(checks) == 1:
        return checks[0]

    def passes_all(message: Message) -> bool:
        # A loop, not all(genexpr): this runs once per row per operation.
        for check in checks:  # noqa: SIM110
            if not check(message):
                return False
        return True

    return passes_all


def matches(
    message: Message,
    filters: BulkUpdateMessagesForChannelRequest,
    *,
    default_archived: ArchivedFilter = ArchivedFilter.INCLUDE,
) -> bool:
    """Whether ``message`` passes every filter of the request body (retention aside)."""
    return compile_filters(filters, default_archived=default_archived)(message)


def selects(
    message: Message,
    filters: BulkUpdateMessagesForChannelRequest,
    *,
    at: datetime,
    retention: timedelta | None,
    default_archived: ArchivedFilter = ArchivedFilter.INCLUDE,
) -> bool:
    """Whether a bulk update with ``filters`` running at ``at`` updates ``message``."""
    return within_retention(message, at=at, retention=retention) and matches(
        message, filters, default_archived=default_archived
    )
