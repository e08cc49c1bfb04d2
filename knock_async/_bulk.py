"""``knock.users.bulk``, ``knock.objects.bulk``, ``knock.tenants.bulk`` and
``knock.schedules.bulk``: Knock's other bulk endpoints under knockapi's names.

Thin: each method names its row in ``_endpoints`` and hands the checked request to the one
generic starter, which sends it once through the transport (paced on the endpoint's own
budget; never resent when it may have started an operation) and returns the
``BulkOperation``, followed like any other with ``knock.bulk_operations.poll``. The ``_all``
variants (any number of items, chunked and followed) come with the fan-out's streams.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._defaults import USE_CLIENT_DEFAULT, UseClientDefault
from ._endpoints import ENDPOINTS, Endpoint, build
from ._models import BulkOperation
from ._retry import RetryPolicy

if TYPE_CHECKING:
    from ._client import KnockClient

__all__ = [
    "Family",
    "ObjectsBulk",
    "families",
    "SchedulesBulk",
    "TenantsBulk",
    "UsersBulk",
    "start",
]

Timeout = float | UseClientDefault | None
Retry = RetryPolicy | UseClientDefault | None


async def start(
    client: KnockClient,
    row: Endpoint,
    items: object,
    *,
    collection: object = None,
    extra: Mapping[str, object] | None = None,
    timeout: Timeout,
    retry: Retry,
) -> BulkOperation:
    """The generic starter: check, build, send once (retries only where nothing can have
    started), and return the operation Knock answered with."""
    from ._client import _per_call, _retry  # the facade's per-call option checks

    transport = client._transport
    headers = transport.get_headers if row.in_query else transport.json_headers
    request = build(row, transport.base_url, headers, items, collection=collection, extra=extra)
    return await transport.send(request, retry=_retry(retry), timeout=_per_call(transport, timeout))


class _Namespace:
    def __init__(self, client: KnockClient) -> None:
        self._client = client


class UsersBulk(_Namespace):
    """``knock.users.bulk``: identify, delete and set preferences of up to 1,000 users."""

    async def identify(
        self,
        *,
        users: Iterable[Any],
        timeout: Timeout = USE_CLIENT_DEFAULT,
        retry: Retry = USE_CLIENT_DEFAULT,
    ) -> BulkOperation:
        """Create or update up to 1,000 users (mappings or ``UserRecord``, each with an
        ``id``); operation ``users.identify``."""
        row = ENDPOINTS["users.bulk.identify"]
        return await start(self._client, row, users, timeout=timeout, retry=retry)

    async def delete(
        self,
        *,
        user_ids: Iterable[str],
        timeout: Timeout = USE_CLIENT_DEFAULT,
        retry: Retry = USE_CLIENT_DEFAULT,
    ) -> BulkOperation:
        """Delete up to 1,000 users for good; operation ``users.delete``."""
        row = ENDPOINTS["users.bulk.delete"]
        return await start(self._client, row, user_ids, timeout=timeout, retry=retry)

    async def set_preferences(
        self,
        *,
        preferences: Mapping[str, Any],
        user_ids: Iterable[str],
        timeout: Timeout = USE_CLIENT_DEFAULT,
        retry: Retry = USE_CLIENT_DEFAULT,
    ) -> BulkOperation:
        """Replace the preference set (``preferences["id"]``, default ``default``) of up to
        1,000 users; operation ``users.set_preferences``."""
        if not isinstance(preferences, Mapping):
            raise TypeError(f"preferences must be a mapping, got {type(preferences).__name__}")
        row = ENDPOINTS["users.bulk.set_preferences"]
        return await start(
            self._client,
            row,
            user_ids,
            extra={"preferences": dict(preferences)},
            timeout=timeout,
            retry=retry,
        )


class ObjectsBulk(_Namespace):
    """``knock.objects.bulk``: objects of one collection and their subscriptions."""

    async def set(
        self,
        collection: str,
        *,
        objects: Iterable[Any],
        timeout: Timeout = USE_CLIENT_DEFAULT,
        retry: Retry = USE_CLIENT_DEFAULT,
    ) -> BulkOperation:
        """Create or update up to 1,000 objects (mappings or ``ObjectRecord``) in
        ``collection``; operation ``objects.<collection>.set``."""
        row = ENDPOINTS["objects.bulk.set"]
        return await start(
            self._client, row, objects, collection=collection, timeout=timeout, retry=retry
        )

    async def delete(
        self,
        collection: str,
        *,
        object_ids: Iterable[str],
        timeout: Timeout = USE_CLIENT_DEFAULT,
        retry: Retry = USE_CLIENT_DEFAULT,
    ) -> BulkOperation:
        """Delete up to 1,000 objects of ``collection``; operation
        ``objects.<collection>.delete``."""
        row = ENDPOINTS["objects.bulk.delete"]
        return await start(
            self._client, row, object_ids, collection=collection, timeout=timeout, retry=retry
        )

    async def add_subscriptions(
        self,
        collection: str,
        *,
        subscriptions: Iterable[Any],
        timeout: Timeout = USE_CLIENT_DEFAULT,
        retry: Retry = USE_CLIENT_DEFAULT,
    ) -> BulkOperation:
        """Subscribe recipients to objects of ``collection`` (an upsert; mappings or
        ``SubscriptionRecord``); operation ``objects.<collection>.upsert_subscriptions``."""
        row = ENDPOINTS["objects.bulk.add_subscriptions"]
        return await start(
            self._client,
            row,
            subscriptions,
            collection=collection,
            timeout=timeout,
            retry=retry,
        )

    async def delete_subscriptions(
        self,
        collection: str,
        *,
        subscriptions: Iterable[Any],
        timeout: Timeout = USE_CLIENT_DEFAULT,
        retry: Retry = USE_CLIENT_DEFAULT,
    ) -> BulkOperation:
        """Unsubscribe recipients from objects of ``collection`` (missing ones are skipped);
        operation ``objects.<collection>.delete_subscriptions``."""
        row = ENDPOINTS["objects.bulk.delete_subscriptions"]
        return await start(
            self._client,
            row,
            subscriptions,
            collection=collection,
            timeout=timeout,
            retry=retry,
        )


class TenantsBulk(_Namespace):
    """``knock.tenants.bulk``: set and delete up to 1,000 tenants."""

    async def set(
        self,
        *,
        tenants: Iterable[Any],
        timeout: Timeout = USE_CLIENT_DEFAULT,
        retry: Retry = USE_CLIENT_DEFAULT,
    ) -> BulkOperation:
        """Create or update tenants (ids, mappings or ``TenantRecord``); operation
        ``tenants.set``."""
        row = ENDPOINTS["tenants.bulk.set"]
        return await start(self._client, row, tenants, timeout=timeout, retry=retry)

    async def delete(
        self,
        *,
        tenant_ids: Iterable[str],
        timeout: Timeout = USE_CLIENT_DEFAULT,
        retry: Retry = USE_CLIENT_DEFAULT,
    ) -> BulkOperation:
        """Delete tenants; the ids go in the query string (``tenant_ids[]=a&...``), so the
        list must fit Knock's 8,000-byte request line too; operation ``tenants.delete``."""
        row = ENDPOINTS["tenants.bulk.delete"]
        return await start(self._client, row, tenant_ids, timeout=timeout, retry=retry)


class SchedulesBulk(_Namespace):
    """``knock.schedules.bulk``: create up to 1,000 schedules."""

    async def create(
        self,
        *,
        schedules: Iterable[Any],
        timeout: Timeout = USE_CLIENT_DEFAULT,
        retry: Retry = USE_CLIENT_DEFAULT,
    ) -> BulkOperation:
        """Create schedules (mappings or ``ScheduleRecord``, each with a ``workflow`` and a
        ``recipient``); operation ``schedules.create_schedules``."""
        row = ENDPOINTS["schedules.bulk.create"]
        return await start(self._client, row, schedules, timeout=timeout, retry=retry)


B = TypeVar("B", bound=_Namespace)


class Family(Generic[B]):
    """``knock.users`` and its siblings: their ``bulk`` namespace."""

    def __init__(self, bulk: B) -> None:
        self.bulk = bulk


def families(client: KnockClient) -> dict[str, Family[Any]]:
    """The four families of ``client``, by attribute name."""
    return {
        "users": Family(UsersBulk(client)),
        "objects": Family(ObjectsBulk(client)),
        "tenants": Family(TenantsBulk(client)),
        "schedules": Family(SchedulesBulk(client)),
    }
