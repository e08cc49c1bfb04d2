"""What each bulk action does to one message. Pure.

Each action sets or clears exactly one engagement timestamp; setting keeps a timestamp that is
already set (marking a read message read again does not move ``read_at``). ``delete`` removes
the message. ``archived``/``archive`` and ``unarchived``/``unarchive`` are synonyms, as in
Knock's API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from .._models import BulkAction
from ._store import Message

__all__ = ["apply_action"]

_SETS = {
    BulkAction.SEEN: "seen_at",
    BulkAction.READ: "read_at",
    BulkAction.ARCHIVED: "archived_at",
    BulkAction.ARCHIVE: "archived_at",
    BulkAction.INTERACTED: "interacted_at",
}
_CLEARS = {
    BulkAction.UNSEEN: "seen_at",
    BulkAction.UNREAD: "read_at",
    BulkAction.UNARCHIVED: "archived_at",
    BulkAction.UNARCHIVE: "archived_at",
}


def apply_action(message: Message, action: BulkAction, at: datetime) -> Message | None:
    """``message`` after ``action`` applied at ``at``; ``None`` when the action deletes it."""
    if action == BulkAction.DELETE:
        return None
    if (field := _SETS.get(action)) is not None:
        if getattr(message, field) is not None:
            return message
        changes: dict[str, Any] = {field: at}
        return attrs.evolve(message, **changes)
    if (field := _CLEARS.get(action)) is not None:
        if getattr(message, field) is None:
            return message
        cleared: dict[str, Any] = {field: None}
        return attrs.evolve(message, **cleared)
    raise ValueError(f"unknown bulk action {action!r}")
