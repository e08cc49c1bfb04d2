"""The emulator's records for the users, objects, tenants and schedules bulk endpoints. Pure.

Plain dictionaries of JSON values, keyed as Knock keys them: users and tenants by id, objects
by ``(collection, id)``, subscriptions by ``(collection, object id, recipient)`` where a
recipient is a user id or ``(collection, id)`` for an object, preference sets by
``(user id, set id)``, schedules by their generated id. Tests read them through the
emulator's views (``emu.users()``, ``emu.subscriptions(...)``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["Recipient", "RecordStore", "recipient_key"]

Recipient = str | tuple[str, str]
"""A user id, or an object's ``(collection, id)``."""


def recipient_key(value: Any) -> Recipient:
    """The key of a recipient as the wire gives it: an id string, or a mapping with ``id``
    (and ``collection`` for an object)."""
    if isinstance(value, str):
        return value
    collection = value.get("collection")
    return value["id"] if collection is None else (collection, value["id"])


class RecordStore:
    """Users, objects, subscriptions, tenants, preference sets and schedules.

    ``workflows``: the workflow keys a schedule may name (``None``: any key is accepted).
    """

    def __init__(self, *, workflows: Iterable[str] | None = None) -> None:
        self.workflows = None if workflows is None else frozenset(workflows)
        self.users: dict[str, dict[str, Any]] = {}
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.subscriptions: dict[tuple[str, str, Recipient], dict[str, Any]] = {}
        self.tenants: dict[str, dict[str, Any]] = {}
        self.preferences: dict[tuple[str, str], dict[str, Any]] = {}
        self.schedules: dict[str, dict[str, Any]] = {}

    def identify_user(self, fields: dict[str, Any]) -> None:
        """Create the user or merge ``fields`` into it (Knock's identify is an upsert)."""
        self.users.setdefault(fields["id"], {}).update(fields)

    def identify_recipient(self, value: Any) -> Recipient:
        """A recipient given inline (a mapping) is identified on the way, as Knock does."""
        key = recipient_key(value)
        if isinstance(value, dict):
            if isinstance(key, tuple):
                self.objects.setdefault(key, {}).update(value)
            else:
                self.identify_user(value)
        return key

    def delete_user(self, user_id: str) -> None:
        """The user, its preference sets and its subscriptions go."""
        self.users.pop(user_id, None)
        for pref in [k for k in self.preferences if k[0] == user_id]:
            del self.preferences[pref]
        for sub in [k for k in self.subscriptions if k[2] == user_id]:
            del self.subscriptions[sub]

    def delete_object(self, collection: str, object_id: str) -> None:
        """The object and its subscriptions (as object and as recipient) go."""
        self.objects.pop((collection, object_id), None)
        gone = (collection, object_id)
        for key in [k for k in self.subscriptions if k[:2] == gone or k[2] == gone]:
            del self.subscriptions[key]
