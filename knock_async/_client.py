"""``KnockClient``: the facade. It reads the environment, checks the options, builds the
``Transport`` (the only I/O) and holds the ``channels.bulk`` and ``bulk_operations``
namespaces, which build requests and hand them to the transport or to a follower.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, Unpack

import aiohttp
from yarl import URL

from ._defaults import USE_CLIENT_DEFAULT, Clock, UseClientDefault
from ._fanout import ChannelSource, FanOut, unique_channels
from ._follow import DEFAULT_STALL_TIMEOUT, Follow, Limits, PollPolicy, limits
from ._handle import BulkOperationHandle
from ._hooks import Hook
from ._models import (
    BulkAction,
    BulkActionValue,
    BulkFilters,
    BulkOperation,
    BulkUpdateMessagesForChannelRequest,
    parse_action,
)
from ._poller import Poller, PollTargetLike
from ._progress import Progress
from ._ratelimit import RateLimiter, RateLimits, make_rate_limiter
from ._requests import (
    DEFAULT_BASE_URL,
    PollTarget,
    Request,
    bulk_request,
    bulk_update_request,
    encode_body,
    get_operation_request,
    make_headers,
    operation_poll_target,
    parse_base_url,
    parse_channel_id,
    resolve_poll_target,
)
from ._retry import RetryPolicy
from ._transport import DEFAULT_MAX_RESPONSE_BYTES, Transport
from ._validate import boolean, non_negative, optional, positive, positive_int

if TYPE_CHECKING:
    from ._bulk import Family, ObjectsBulk, SchedulesBulk, TenantsBulk, UsersBulk

__all__ = ["KnockClient"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_RATE_LIMITS = RateLimits()


def _timeout(total: float | None, connect: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=optional(positive)("timeout", total),
        connect=optional(positive)("connect_timeout", connect),
    )


def _api_key(api_key: str | None) -> str:
    key = api_key if api_key is not None else os.environ.get("KNOCK_API_KEY")
    if not key:
        raise ValueError(
            "no API key: pass api_key=... or set the KNOCK_API_KEY environment variable"
        )
    return key


def _base_url(base_url: str | URL | None, allow_insecure_http: object) -> URL:
    insecure = boolean("allow_insecure_http", allow_insecure_http)
    if base_url:
        return parse_base_url(base_url, allow_insecure_http=insecure)
    raw = os.environ.get("KNOCK_BASE_URL")
    if raw:
        return parse_base_url(raw, allow_insecure_http=insecure, name="KNOCK_BASE_URL")
    return parse_base_url(DEFAULT_BASE_URL)


Sleep = Callable[[float], Awaitable[None]]


def _time(
    clock: Clock | Callable[[], float] | None, sleep: Sleep | None
) -> tuple[Callable[[], float] | None, Sleep | None]:
    """``(monotonic, sleep)`` from a ``Clock`` object, or from a clock function and ``sleep``
    (the older form), or ``(None, None)`` for real time."""
    if clock is None and sleep is None:
        return None, None
    if sleep is None and isinstance(clock, Clock):
        return clock.monotonic, clock.sleep
    if clock is None or sleep is None or not callable(clock):
        # Pacing and polling wait for the clock to reach a time by sleeping: a sleep that
        # does not move the clock it is measured on would spin forever.
        raise ValueError(
            "clock and sleep go together: pass clock= an object with monotonic() and async "
            "sleep(seconds), or clock= a function and sleep= (both or neither)"
        )
    return clock, sleep


def _hooks(hooks: object) -> tuple[Hook, ...]:
    if isinstance(hooks, str | bytes) or not isinstance(hooks, Iterable):
        raise TypeError(f"hooks must be an iterable of callables, got {type(hooks).__name__}")
    checked = tuple(hooks)
    for hook in checked:
        if not callable(hook):
            raise TypeError(f"hooks must be callables taking an event, got {hook!r}")
        if inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(
            getattr(hook, "__call__", None)  # noqa: B004 - an object whose __call__ is async
        ):
            raise TypeError(
                f"hooks must be synchronous, and {hook!r} is async (a coroutine function, or "
                "its __call__ is one): hooks run inline and are never awaited; make it a plain "
                "function that hands its async work to a task "
                "(asyncio.get_running_loop().create_task(...), keeping a reference) or to a "
                "queue (hooks=[queue.put_nowait])"
            )
    return checked


class KnockClient:
    """An async client for Knock's channel bulk message-status API.

    Use it as ``async with KnockClient() as knock:`` (or call ``aclose()``). ``api_key``,
    ``base_url`` and ``branch`` default to ``KNOCK_API_KEY``, ``KNOCK_BASE_URL`` and
    ``KNOCK_BRANCH``. ``timeout`` is the per-request total in seconds (``connect_timeout``
    bounds connecting alone). A caller's ``session`` is used as is and never closed here;
    otherwise one ``aiohttp.ClientSession`` is created on first use and closed by ``aclose``.

    ``allow_insecure_http=True`` allows a plain ``http://`` base URL off loopback.

    ``rate_limits`` paces the client's own requests (default: Knock's 5 POST/s and 200 GET/s,
    slowing down after a 429); pass ``RateLimits(...)`` to change the rates, your own
    ``RateLimiter`` (e.g. one shared between processes), or ``None`` to turn pacing off.

    ``max_response_bytes`` caps every response body (default 4 MiB; Knock's are a few KB): a
    larger one is not read whole and raises ``ResponseTooLargeError``.

    ``hooks`` are called with a frozen record of each request sent and answered, retry
    scheduled, rate-limiter wait and poll observation (``Hook``, ``RequestSent``, ...); they
    never see the key or headers, and one that raises is logged, never breaking the request.
    ``knock_async.otel.OpenTelemetryHook`` turns them into OpenTelemetry spans and metrics.

    ``clock`` and ``rng`` (uniform in ``[0, 1)``) are for tests and simulations: they drive
    pacing, retries and polls. ``clock`` is an object with ``monotonic()`` and ``async
    sleep(seconds)`` (a ``Clock``: the emulator's clocks are), or a function of monotonic
    seconds passed with ``sleep=``.

    Per call, ``timeout`` and ``retry`` default to ``USE_CLIENT_DEFAULT`` (this client's);
    ``timeout=None`` means no timeout and ``retry=None`` one try.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | URL | None = None,
        *,
        branch: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        rate_limits: RateLimits | RateLimiter | None = DEFAULT_RATE_LIMITS,
        allow_insecure_http: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Clock | Callable[[], float] | None = None,
        sleep: Sleep | None = None,
        rng: Callable[[], float] | None = None,
        hooks: Iterable[Hook] = (),
    ) -> None:
        key = _api_key(api_key)
        base = _base_url(base_url, allow_insecure_http)
        self._branch = branch if branch is not None else os.environ.get("KNOCK_BRANCH") or None
        get_headers, json_headers = make_headers(key, branch=self._branch)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        if poll is not None and not isinstance(poll, PollPolicy):
            raise TypeError(f"poll must be a PollPolicy, got {type(poll).__name__}")
        self._poll_policy = poll or PollPolicy()
        monotonic, sleep = _time(clock, sleep)
        self._transport = Transport(
            base_url=base,
            get_headers=get_headers,
            json_headers=json_headers,
            session=session,
            timeout=_timeout(timeout, connect_timeout),
            limiter=make_rate_limiter(rate_limits, clock=monotonic, sleep=sleep),
            retry=retry or RetryPolicy(),
            max_response_bytes=positive_int("max_response_bytes", max_response_bytes),
            clock=monotonic,
            sleep=sleep,
            rng=rng,
            hooks=_hooks(hooks),
        )
        self._channels = _Channels(self)
        self._bulk_operations = _BulkOperations(self)
        self._families: dict[str, Any] = {}

    def __repr__(self) -> str:
        branch = f", branch={self._branch!r}" if self._branch else ""
        return f"<KnockClient base_url={str(self.base_url)!r}{branch}>"

    @property
    def channels(self) -> _Channels:
        """Channel endpoints: ``channels.bulk.update_message_status(channel_id, action,
        **filters)`` starts a bulk update of one channel's messages;
        ``channels.bulk.update_many(channel_ids, action, **filters)`` starts it on many
        channels, paced, and follows every operation to its end."""
        return self._channels

    @property
    def bulk_operations(self) -> _BulkOperations:
        """Bulk operations: ``bulk_operations.get(id)`` reads one as it stands;
        ``bulk_operations.poll(target)`` follows one until it is ``completed`` or ``failed``
        (iterate it for ``Progress``, await it for the final ``BulkOperation``)."""
        return self._bulk_operations

    @property
    def users(self) -> Family[UsersBulk]:
        """``users.bulk``: ``identify(users=)``, ``delete(user_ids=)``,
        ``set_preferences(preferences=, user_ids=)``."""
        return self._family("users")  # type: ignore[no-any-return]

    @property
    def objects(self) -> Family[ObjectsBulk]:
        """``objects.bulk``: ``set``, ``delete``, ``add_subscriptions``,
        ``delete_subscriptions`` (each takes the ``collection`` first)."""
        return self._family("objects")  # type: ignore[no-any-return]

    @property
    def tenants(self) -> Family[TenantsBulk]:
        """``tenants.bulk``: ``set(tenants=)``, ``delete(tenant_ids=)``."""
        return self._family("tenants")  # type: ignore[no-any-return]

    @property
    def schedules(self) -> Family[SchedulesBulk]:
        """``schedules.bulk``: ``create(schedules=)``."""
        return self._family("schedules")  # type: ignore[no-any-return]

    def _family(self, name: str) -> Any:
        # Imported on first use: a client that only updates channels (and `import
        # knock_async`) does not pay for the other endpoints' table.
        family = self._families.get(name)
        if family is None:
            from ._bulk import families

            self._families.update(families(self))
            family = self._families[name]
        return family

    @property
    def base_url(self) -> URL:
        """The API's base URL, from ``base_url=`` or ``KNOCK_BASE_URL`` (default Knock's)."""
        return self._transport.base_url

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's own session (a caller's session is left open). Idempotent."""
        await self._transport.aclose()

    @property
    def _session(self) -> aiohttp.ClientSession | None:
        return self._transport._session


_FILTER_NAMES = frozenset(BulkFilters.__annotations__)


def _filters_body(filters: BulkFilters) -> BulkUpdateMessagesForChannelRequest:
    if not _FILTER_NAMES.issuperset(filters):
        unknown = set(filters) - _FILTER_NAMES
        raise TypeError(
            f"unknown filter {', '.join(sorted(unknown))}; the filters are "
            + ", ".join(BulkFilters.__annotations__)
        )
    return BulkUpdateMessagesForChannelRequest(**filters)


class _Bulk:
    """``knock.channels.bulk``."""

    def __init__(self, client: KnockClient) -> None:
        self._client = client

    async def update_message_status(
        self,
        channel_id: str,
        action: BulkAction | BulkActionValue,
        *,
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        retry: RetryPolicy | UseClientDefault | None = USE_CLIENT_DEFAULT,
        **filters: Unpack[BulkFilters],
    ) -> BulkOperation:
        """Start a bulk status update of a channel's messages; returns the ``BulkOperation``.

        The keyword names are those of Knock's official SDK. Filters left as ``None`` are not
        sent. ``trigger_data`` may be a mapping or a JSON object string. Bad input raises
        ``ValueError``/``TypeError`` naming the argument before anything is sent.
        ``timeout`` (seconds per try; ``None``: none) and ``retry`` (``None``: one try)
        default to the client's. The operation returned carries ``channel_id`` and
        ``action``, for the logs of whoever follows it.

        An error that ends the call with ``operation_may_have_started`` set (a 5xx, a
        connection dropped after sending, a timeout) means the update may be running all the
        same: see its message before sending it again.
        """
        transport = self._client._transport
        body = _filters_body(filters)
        request = bulk_update_request(
            transport.base_url, transport.json_headers, channel_id, action, body
        )
        return await transport.send(
            request, retry=_retry(retry), timeout=_per_call(transport, timeout)
        )

    def update_many(
        self,
        channel_ids: Iterable[str],
        action: BulkAction | BulkActionValue,
        *,
        concurrency: int = 10,
        timeout: float | None = None,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        max_silence: float | None = None,
        policy: PollPolicy | None = None,
        **filters: Unpack[BulkFilters],
    ) -> FanOut:
        """The same bulk update on many channels, followed to the end on one shared budget.

        Submits the updates paced by the client's rate limiter, polls every operation with
        at most ``concurrency`` requests in flight, and returns a ``FanOut``: iterate it for
        ``FanOutEvent`` (submitted, progress, completed, failed, error; each with the
        fan-out's totals), await it for the ``FanOutSummary``. ``timeout`` is each
        operation's deadline from its submission (``None``: none) and ``stall_timeout`` how
        long it may go without a change; ``max_silence`` is the longest the stream goes
        without an event (a ``heartbeat`` event then). All arguments are checked before any
        request is sent; a channel listed twice is an error.
        """
        client = self._client
        positive_int("concurrency", concurrency)
        deadlines = _limits(timeout, stall_timeout, max_silence)
        _policy(policy)
        body = _filters_body(filters)
        act = parse_action(action)
        channels = unique_channels(channel_ids, parse_channel_id)
        encoded = encode_body(body)

        transport = client._transport
        base, headers, value = transport.base_url, transport.json_headers, act.value

        def make_request(channel_id: str) -> Request:
            return bulk_request(base, headers, channel_id, value, encoded)

        return FanOut(
            transport=transport,
            source=ChannelSource(channels, make_request),
            concurrency=concurrency,
            limits=deadlines,
            policy=policy or client._poll_policy,
            action=act.value,
        )


class _Channels:
    """``knock.channels``."""

    def __init__(self, client: KnockClient) -> None:
        self.bulk = _Bulk(client)


class _BulkOperations:
    """``knock.bulk_operations``."""

    def __init__(self, client: KnockClient) -> None:
        self._client = client

    async def get(
        self,
        id: str,
        *,
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        retry: RetryPolicy | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> BulkOperation:
        """The bulk operation ``id`` as it stands now. ``timeout`` (seconds per try;
        ``None``: none) and ``retry`` (``None``: one try) default to the client's."""
        transport = self._client._transport
        request = get_operation_request(transport.base_url, transport.get_headers, id)
        return await transport.send(
            request, retry=_retry(retry), timeout=_per_call(transport, timeout)
        )

    def poll(
        self,
        target: PollTargetLike,
        *,
        timeout: float | None = None,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        max_silence: float | None = None,
        policy: PollPolicy | None = None,
    ) -> Poller:
        """Follow a bulk operation until it is ``completed`` or ``failed``.

        ``target`` is a ``BulkOperation``, a ``Progress``, a ``BulkOperationHandle``, an
        operation id or a ``progress_path``. ``timeout`` is the total deadline in seconds
        (``None``, the default: none), not the per-request timeout; ``stall_timeout`` ends
        the poll with ``PollTimeoutError`` ("stalled") once the operation has not changed for
        that long (``None``: never). ``max_silence`` is the longest the iteration goes without
        a snapshot: the latest one comes again, marked ``heartbeat`` (``None``: no
        heartbeats). Iterate the result for ``Progress`` snapshots, await it for the final
        ``BulkOperation``.
        """
        client = self._client
        deadlines = _limits(timeout, stall_timeout, max_silence)
        _policy(policy)
        transport = client._transport
        resolved, initial, channel_id, action = _target(transport.base_url, target, "poll()")
        return Poller(
            transport=transport,
            request=transport.poll_request(resolved),
            operation_id=resolved.operation_id,
            initial=initial,
            limits=deadlines,
            policy=policy or client._poll_policy,
            channel_id=channel_id,
            action=action,
        )

    def follow_many(
        self,
        targets: Iterable[PollTargetLike],
        *,
        concurrency: int = 10,
        timeout: float | None = None,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        max_silence: float | None = None,
        policy: PollPolicy | None = None,
    ) -> FanOut:
        """Follow many bulk operations to their end on one shared budget, as one stream.

        ``targets`` holds what ``poll`` takes (operations, snapshots, handles, ids, progress
        paths), each a different operation. Returns a ``FanOut``, as ``update_many`` does:
        iterate it for ``FanOutEvent`` (``progress``, ``completed``, ``failed``, ``error``,
        ``heartbeat``; each naming its ``operation_id``), await it for the ``FanOutSummary``
        (its results in the order given). At most ``concurrency`` requests are in flight;
        ``timeout``, ``stall_timeout`` and ``max_silence`` are as for ``poll``. All targets
        are checked before any request is sent; an operation listed twice is an error.
        """
        client = self._client
        positive_int("concurrency", concurrency)
        deadlines = _limits(timeout, stall_timeout, max_silence)
        _policy(policy)
        if isinstance(targets, str | bytes):
            raise TypeError("targets must be a list of operations, not a single string")
        transport = client._transport
        chosen = policy or client._poll_policy
        follows: list[tuple[Follow, BulkOperation | None]] = []
        seen: set[str] = set()
        for index, target in enumerate(targets):
            try:
                resolved, initial, channel_id, action = _target(
                    transport.base_url, target, "follow_many()"
                )
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"targets[{index}]: {exc}") from None
            if resolved.operation_id in seen:
                raise ValueError(f"targets[{index}]: {resolved.operation_id} is listed twice")
            seen.add(resolved.operation_id)
            follow = Follow(
                resolved.operation_id,
                request=transport.poll_request(resolved),
                limits=deadlines,
                policy=chosen,
                hooks=transport.hooks,
                channel_id=channel_id,
                action=action,
            )
            follows.append((follow, initial))
        return FanOut(
            transport=transport,
            follows=follows,
            concurrency=concurrency,
            limits=deadlines,
            policy=chosen,
        )


def _limits(
    timeout: float | None, stall_timeout: float | None, max_silence: float | None
) -> Limits:
    optional(non_negative)("timeout", timeout)
    optional(positive)("stall_timeout", stall_timeout)
    optional(positive)("max_silence", max_silence)
    return limits(timeout, stall_timeout, max_silence)


def _policy(policy: object) -> None:
    if policy is not None and not isinstance(policy, PollPolicy):
        raise TypeError(f"policy must be a PollPolicy, got {type(policy).__name__}")


def _target(
    base_url: URL, target: object, caller: str
) -> tuple[PollTarget, BulkOperation | None, str | None, str | None]:
    """Where to poll ``target``, the operation already known, its channel and action."""
    if isinstance(target, Progress):
        target = target.operation
    if isinstance(target, BulkOperation):
        resolved = operation_poll_target(base_url, target.id, target.progress_path)
        return resolved, target, target.channel_id, target.action
    if isinstance(target, BulkOperationHandle):
        resolved = operation_poll_target(base_url, target.operation_id, target.progress_path)
        return resolved, None, target.channel_id, target.action
    if isinstance(target, str):
        return resolve_poll_target(base_url, target), None, None, None
    raise TypeError(
        f"{caller} takes a BulkOperation, a Progress, a BulkOperationHandle, an operation id "
        f"or a progress_path, got {type(target).__name__}"
    )


def _per_call(
    transport: Transport, timeout: float | UseClientDefault | None
) -> aiohttp.ClientTimeout | UseClientDefault:
    """A call's ``timeout=`` as the transport takes it: ``None`` lifts the total limit only
    (connecting stays bounded by the client's ``connect_timeout``)."""
    if timeout is USE_CLIENT_DEFAULT:
        return timeout
    return _timeout(timeout, transport.timeout.connect)


def _retry(retry: object) -> RetryPolicy | UseClientDefault | None:
    if retry is USE_CLIENT_DEFAULT or retry is None or isinstance(retry, RetryPolicy):
        return retry
    raise TypeError(
        f"retry must be a RetryPolicy, None or USE_CLIENT_DEFAULT, got {type(retry).__name__}"
    )
