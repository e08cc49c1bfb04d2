"""What tests read (and seed) of the emulator's users, objects, subscriptions, tenants,
preference sets and schedules. Every view brings the operations up to date first and returns
copies, so a test cannot change the emulator's state by accident."""

from __future__ import annotations

from typing import Any

from ._bulk_store import Recipient, RecordStore
from ._operations import OperationEngine

__all__ = ["RecordViews"]


class RecordViews:
    """Mixed into ``KnockEmulator``."""

    _records: RecordStore
    _engine: OperationEngine

    def users(self) -> dict[str, dict[str, Any]]:
        """Every user by id, with its properties."""
        self._engine.advance()
        return {k: dict(v) for k, v in self._records.users.items()}

    def preferences(self, user_id: str, set_id: str = "default") -> dict[str, Any] | None:
        """``user_id``'s preference set ``set_id`` (``None``: none set)."""
        self._engine.advance()
        found = self._records.preferences.get((user_id, set_id))
        return None if found is None else dict(found)

    def objects(self, collection: str) -> dict[str, dict[str, Any]]:
        """Every object of ``collection`` by id, with its properties."""
        self._engine.advance()
        return {k[1]: dict(v) for k, v in self._records.objects.items() if k[0] == collection}

    def subscriptions(self, collection: str, object_id: str) -> dict[Recipient, dict[str, Any]]:
        """The subscribers of one object (a user id, or ``(collection, id)`` for an object),
        each with its subscription's properties."""
        self._engine.advance()
        return {
            k[2]: dict(v)
            for k, v in self._records.subscriptions.items()
            if k[:2] == (collection, object_id)
        }

    def tenants(self) -> dict[str, dict[str, Any]]:
        """Every tenant by id, with its properties."""
        self._engine.advance()
        return {k: dict(v) for k, v in self._records.tenants.items()}

    def schedules(self) -> list[dict[str, Any]]:
        """Every schedule created, oldest first (``recipient`` as a recipient key)."""
        self._engine.advance()
        return [dict(v) for v in self._records.schedules.values()]

    def add_users(self, *user_ids: str) -> None:
        """Seed users (with no properties) directly, without an operation."""
        for user_id in user_ids:
            self._records.identify_user({"id": user_id})

    def add_objects(self, collection: str, *object_ids: str) -> None:
        """Seed objects of ``collection`` directly, without an operation."""
        for object_id in object_ids:
            self._records.objects.setdefault((collection, object_id), {"id": object_id})
