"""``knock.users.bulk``, ``knock.objects.bulk``, ``knock.tenants.bulk`` and
``knock.schedules.bulk``: Knock's other bulk endpoints under knockapi's names.

Thin: each method names its row in ``_endpoints`` and hands the checked request to the one
generic starter, which sends it once through the transport (paced on the endpoint's own
budget; never resent when it may have started an operation) and returns the
``BulkOperation``, followed like any other with ``knock.bulk_operations.poll``.

The ``_all`` variants take any number of items (an iterable or an async iterable) and hand
them to the one generic chunker: a ``FanOut`` whose source reads the input a chunk at a time
(``_chunks``), paced on the endpoint's budget and followed like ``update_many``'s channels.
A bad item ends the sending before its chunk goes: iterating (or awaiting) the fan-out raises
its ``TypeError``/``ValueError``, naming its index in the whole input and what was already
sent; those operations go on, and ``summary()`` has their handles.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, Unpack

from ._chunks import ChunkSource
from ._defaults import USE_CLIENT_DEFAULT, UseClientDefault
from ._endpoints import ENDPOINTS, Endpoint, build
from ._fanout import FanOut
from ._follow import DEFAULT_STALL_TIMEOUT, PollPolicy
from ._models import BulkOperation
from ._retry import RetryPolicy
from ._validate import positive_int

if TYPE_CHECKING:
    from ._client import KnockClient

__all__ = [
    "Family",
    "FollowOptions",
    "ObjectsBulk",
    "families",
    "SchedulesBulk",
    "TenantsBulk",
    "UsersBulk",
    "start",
    "start_all",
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


Items = Iterable[Any] | AsyncIterable[Any]


class FollowOptions(TypedDict, total=False):
    """The ``_all`` methods' options, as ``update_many`` takes them: at most ``concurrency``
    requests in flight; each operation's ``timeout`` and ``stall_timeout``; ``max_silence``
    between events (a heartbeat then); the ``policy`` of its polls."""

    concurrency: int
    timeout: float | None
    stall_timeout: float | None
    max_silence: float | None
    policy: PollPolicy | None


def start_all(
    client: KnockClient,
    row: Endpoint,
    items: object,
    *,
    collection: object = None,
    extra: Mapping[str, object] | None = None,
    concurrency: int = 10,
    timeout: float | None = None,
    stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
    max_silence: float | None = None,
    policy: PollPolicy | None = None,
) -> FanOut:
    """The generic chunker: the options and the input's kind are checked now, each item as its
    chunk is read; returns the fan-out that sends the chunks and follows their operations."""
    from ._client import _limits, _policy  # the facade's option checks

    positive_int("concurrency", concurrency)
    deadlines = _limits(timeout, stall_timeout, max_silence)
    _policy(policy)
    transport = client._transport
    headers = transport.get_headers if row.in_query else transport.json_headers
    source = ChunkSource(
        row,
        items,  # type: ignore[arg-type]  # checked by ChunkSource
        base_url=transport.base_url,
        headers=headers,
        collection=collection,
        extra=extra,
    )
    return FanOut(
        transport=transport,
        source=source,
        concurrency=concurrency,
        limits=deadlines,
        policy=policy or client._poll_policy,
        tier=row.tier,
        # One chunk read ahead at most: the endpoint takes one request a second anyway.
        submit_slots=1,
    )


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

    def identify_all(
        self,
        *,
        users: Items,
        **options: Unpack[FollowOptions],
    ) -> FanOut:
        """Any number of users to identify (as ``identify``) from an iterable or async iterable,
        read a chunk of 1,000 at a time, sent paced at tier 1 and followed to the end; returns the
        ``FanOut`` (iterate for events, await for the summary; options as for ``update_many``)."""
        return start_all(
            self._client,
            ENDPOINTS["users.bulk.identify"],
            users,
            **options,
        )

    def delete_all(
        self,
        *,
        user_ids: Items,
        **options: Unpack[FollowOptions],
    ) -> FanOut:
        """Any number of users to delete from an iterable or async iterable, read a chunk of 1,000
        at a time, sent paced at tier 1 and followed to the end; returns the ``FanOut`` (iterate
        for events, await for the summary; options as for ``update_many``)."""
        return start_all(
            self._client,
            ENDPOINTS["users.bulk.delete"],
            user_ids,
            **options,
        )

    def set_preferences_all(
        self,
        *,
        preferences: Mapping[str, Any],
        user_ids: Items,
        **options: Unpack[FollowOptions],
    ) -> FanOut:
        """Any number of users whose preference set to replace with ``preferences`` from an
        iterable or async iterable, read a chunk of 1,000 at a time, sent paced at tier 1 and
        followed to the end; returns the ``FanOut`` (iterate for events, await for the summary;
        options as for ``update_many``)."""
        if not isinstance(preferences, Mapping):
            raise TypeError(f"preferences must be a mapping, got {type(preferences).__name__}")
        return start_all(
            self._client,
            ENDPOINTS["users.bulk.set_preferences"],
            user_ids,
            extra={"preferences": dict(preferences)},
            **options,
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

    def set_all(
        self,
        collection: str,
        *,
        objects: Items,
        **options: Unpack[FollowOptions],
    ) -> FanOut:
        """Any number of objects of ``collection`` to set from an iterable or async iterable, read
        a chunk of 1,000 at a time, sent paced at tier 1 and followed to the end; returns the
        ``FanOut`` (iterate for events, await for the summary; options as for ``update_many``)."""
        return start_all(
            self._client,
            ENDPOINTS["objects.bulk.set"],
            objects,
            collection=collection,
            **options,
        )

    def delete_all(
        self,
        collection: str,
        *,
        object_ids: Items,
        **options: Unpack[FollowOptions],
    ) -> FanOut:
        """Any number of objects of ``collection`` to delete from an iterable or async iterable,
        read a chunk of 1,000 at a time, sent paced at tier 1 and followed to the end; returns the
        ``FanOut`` (iterate for events, await for the summary; options as for ``update_many``)."""
        return start_all(
            self._client,
            ENDPOINTS["objects.bulk.delete"],
            object_ids,
            collection=collection,
            **options,
        )

    def add_subscriptions_all(
        self,
        collection: str,
        *,
        subscriptions: Items,
        **options: Unpack[FollowOptions],
    ) -> FanOut:
        """Any number of subscriptions to objects of ``collection`` to add from an iterable or
        async iterable, read a chunk of 1,000 at a time, sent paced at tier 1 and followed to the
        end; returns the ``FanOut`` (iterate for events, await for the summary; options as for
        ``update_many``)."""
        return start_all(
            self._client,
            ENDPOINTS["objects.bulk.add_subscriptions"],
            subscriptions,
            collection=collection,
            **options,
        )

    def delete_subscriptions_all(
        self,
        collection: str,
        *,
        subscriptions: Items,
        **options: Unpack[FollowOptions],
    ) -> FanOut:
        """Any number of subscriptions to objects of ``collection`` to delete from an iterable or
        async iterable, read a chunk of 1,000 at a time, sent paced at tier 1 and followed to the
        end; returns the ``FanOut`` (iterate for events, await for the summary; options as for
        ``update_many``)."""
        return start_all(
            self._client,
            ENDPOINTS["objects.bulk.delete_subscriptions"],
            subscriptions,
            collection=collection,
            **options,
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

    def set_all(
        self,
        *,
        tenants: Items,
        **options: Unpack[FollowOptions],
    ) -> FanOut:
        """Any number of tenants to set from an iterable or async iterable, read a chunk of 1,000
        at a time, sent paced at tier 1 and followed to the end; returns the ``FanOut`` (iterate
        for events, await for the summary; options as for ``update_many``)."""
        return start_all(
            self._client,
            ENDPOINTS["tenants.bulk.set"],
            tenants,
            **options,
        )

    def delete_all(
        self,
        *,
        tenant_ids: Items,
        **options: Unpack[FollowOptions],
    ) -> FanOut:
        """Any number of tenants to delete from an iterable or async iterable, read a chunk of up
        to 1,000 (fewer when their ids would pass the 8,000-byte request line) at a time, sent
        paced at tier 1 and followed to the end; returns the ``FanOut`` (iterate for events, await
        for the summary; options as for ``update_many``)."""
        return start_all(
            self._client,
            ENDPOINTS["tenants.bulk.delete"],
            tenant_ids,
            **options,
        )


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

    def create_all(
        self,
        *,
        schedules: Items,
        **options: Unpack[FollowOptions],
    ) -> FanOut:
        """Any number of schedules to create from an iterable or async iterable, read a chunk of
        1,000 at a time, sent paced at tier 1 and followed to the end; returns the ``FanOut``
        (iterate for events, await for the summary; options as for ``update_many``)."""
        return start_all(
            self._client,
            ENDPOINTS["schedules.bulk.create"],
            schedules,
            **options,
        )


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
