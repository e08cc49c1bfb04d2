"""``KnockClient``: the thin aiohttp shell around the pure core.

Everything that decides (URLs, headers, bodies, response interpretation, retries, the poll
schedule) lives in pure modules; this one sends, sleeps and logs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Self, Unpack

import aiohttp
from yarl import URL

from ._errors import APIConnectionError, APITimeoutError, KnockError
from ._fanout import FanOut, unique_channels
from ._handle import BulkOperationHandle
from ._models import (
    BulkAction,
    BulkActionValue,
    BulkFilters,
    BulkOperation,
    BulkUpdateMessagesForChannelRequest,
    parse_action,
)
from ._poller import Poller, PollTargetLike
from ._polling import PollPolicy
from ._progress import Progress
from ._ratelimit import RateLimiter, RateLimits, Tier, make_rate_limiter
from ._requests import (
    DEFAULT_BASE_URL,
    Request,
    bulk_update_request,
    encode_body,
    get_operation_request,
    make_headers,
    operation_poll_target,
    parse_base_url,
    parse_channel_id,
    resolve_poll_target,
)
from ._responses import error_from_response, operation_from_response
from ._retry import Failure, RetryPolicy, parse_retry_after, retry_delay
from ._validate import non_negative, optional, positive, positive_int

__all__ = ["KnockClient", "RawResponse"]

logger = logging.getLogger("knock_async")

DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_RATE_LIMITS = RateLimits()

RawResponse = tuple[int, Mapping[str, str], bytes]


def _timeout(total: float | None, connect: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=optional(positive)("timeout", total),
        connect=optional(positive)("connect_timeout", connect),
    )


class KnockClient:
    """An async client for Knock's channel bulk message-status API.

    Use it as ``async with KnockClient() as knock:`` (or call ``aclose()``). ``api_key``,
    ``base_url`` and ``branch`` default to ``KNOCK_API_KEY``, ``KNOCK_BASE_URL`` and
    ``KNOCK_BRANCH``. ``timeout`` is the per-request total in seconds (``connect_timeout``
    bounds connecting alone). A caller's ``session`` is used as is and never closed here;
    otherwise one ``aiohttp.ClientSession`` is created on first use and closed by ``aclose``.

    ``rate_limits`` paces the client's own requests (default: Knock's 5 POST/s and 200 GET/s,
    slowing down after a 429); pass ``RateLimits(...)`` to change the rates, your own
    ``RateLimiter`` (e.g. one shared between processes), or ``None`` to turn pacing off.

    ``clock`` (monotonic seconds), ``sleep`` and ``rng`` (uniform in ``[0, 1)``) are for tests
    and simulations: they drive the retry and poll schedules.
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
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: Callable[[], float] | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("KNOCK_API_KEY")
        if not key:
            raise ValueError(
                "no API key: pass api_key=... or set the KNOCK_API_KEY environment variable"
            )
        raw_base = base_url or os.environ.get("KNOCK_BASE_URL") or DEFAULT_BASE_URL
        self._base_url = parse_base_url(raw_base, allow_insecure_http=allow_insecure_http)
        self._branch = branch if branch is not None else os.environ.get("KNOCK_BRANCH") or None
        self._get_headers, self._json_headers = make_headers(key, branch=self._branch)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        if poll is not None and not isinstance(poll, PollPolicy):
            raise TypeError(f"poll must be a PollPolicy, got {type(poll).__name__}")
        self._retry = retry or RetryPolicy()
        self._poll_policy = poll or PollPolicy()
        self._timeout = _timeout(timeout, connect_timeout)
        self._session = session
        self._owns_session = session is None
        self._closed = False
        if (clock is None) != (sleep is None):
            # Pacing and polling wait for the clock to reach a time by sleeping: a sleep that
            # does not move the clock it is measured on would spin forever.
            raise ValueError("clock and sleep go together: pass both or neither")
        self._clock = clock or time.monotonic
        self._sleep = sleep or asyncio.sleep
        self._rng = rng or random.random
        self._warned_origins: set[str] = set()
        self._limiter = make_rate_limiter(rate_limits, clock=self._clock, sleep=self._sleep)

        self.channels = _Channels(self)
        self.bulk_operations = _BulkOperations(self)

    def __repr__(self) -> str:
        branch = f", branch={self._branch!r}" if self._branch else ""
        return f"<KnockClient base_url={str(self._base_url)!r}{branch}>"

    @property
    def base_url(self) -> URL:
        return self._base_url

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
        self._closed = True
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this KnockClient is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    # -- the I/O shell ---------------------------------------------------------------------

    async def _send_once(
        self,
        request: Request,
        timeout: aiohttp.ClientTimeout | None = None,
        *,
        paced: bool = False,
    ) -> RawResponse:
        """One try: the raw answer, or ``APIConnectionError``/``APITimeoutError``.

        The raised error's ``failure`` attribute says whether the request may have been seen.
        """
        session = self._get_session()
        # Defence in depth: the key goes to the base URL's origin and nowhere else.
        if request.url.origin() != self._base_url.origin():
            raise KnockError(f"refusing to send the API key to {request.url.origin()}")
        limiter = self._limiter
        if limiter is not None and not paced:
            await limiter.acquire(request.tier)
        started = self._clock()
        try:
            async with session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=timeout or self._timeout,
                allow_redirects=False,  # a redirect could carry the key elsewhere
                raise_for_status=False,  # whatever a caller's session says: statuses are ours
            ) as response:
                body = await response.read()
                status, headers = response.status, response.headers
        # aiohttp's errors can hold the request headers (ClientResponseError.request_info), so
        # they are not chained: the message keeps their type and text, which never hold them.
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            if isinstance(exc, aiohttp.ClientSSLError):
                raise _connection_error(request, exc, Failure.CONNECTION) from None
            raise _connection_error(request, exc, Failure.NOT_SENT) from None
        except TimeoutError as exc:
            raise _connection_error(request, exc, Failure.TIMEOUT) from None
        except aiohttp.ClientError as exc:
            raise _connection_error(request, exc, Failure.CONNECTION) from None
        if limiter is not None:
            if status == 429:
                limiter.on_rate_limited(request.tier, retry_after=parse_retry_after(headers))
            else:
                limiter.on_success(request.tier)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d in %.3fs (request_id=%s)",
                request.method,
                request.url,
                status,
                self._clock() - started,
                headers.get("x-request-id"),
            )
        return status, headers, body

    async def _send(
        self,
        request: Request,
        *,
        retry: RetryPolicy | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        paced: bool = False,
    ) -> BulkOperation:
        """Send with retries as ``retry`` allows; the operation, or the last error.

        ``paced``: the caller already waited for the rate limiter for the first try.
        """
        policy = retry or self._retry
        attempt = 0
        while True:
            attempt += 1
            try:
                status, headers, body = await self._send_once(
                    request, timeout, paced=paced and attempt == 1
                )
            except APIConnectionError as exc:
                delay = retry_delay(
                    policy,
                    method=request.method,
                    attempt=attempt,
                    failure=exc.failure,
                    rng=self._rng,
                )
                if delay is None:
                    raise
                logger.info(
                    "%s %s failed (%s); retry in %.2fs", request.method, request.url, exc, delay
                )
            else:
                if 200 <= status < 300:
                    return operation_from_response(status, headers, body)
                delay = retry_delay(
                    policy,
                    method=request.method,
                    attempt=attempt,
                    status=status,
                    retry_after=parse_retry_after(headers),
                    rng=self._rng,
                )
                if delay is None:
                    raise error_from_response(status, headers, body)
                logger.info(
                    "%s %s answered %d; retry in %.2fs", request.method, request.url, status, delay
                )
            await self._sleep(delay)

    def _send_within(self, request: Request, seconds: float | None) -> Awaitable[RawResponse]:
        """One try, bounded by ``seconds`` (a poll's time left) as well as the usual timeout.

        A plain function handing back ``_send_once``'s coroutine: no extra frame is kept per
        waiting poll.
        """
        total = self._timeout.total
        if seconds is None or (total is not None and seconds >= total):
            return self._send_once(request)
        seconds = max(seconds, 0.001)
        connect = self._timeout.connect
        bounded = aiohttp.ClientTimeout(
            total=seconds, connect=seconds if connect is None else min(connect, seconds)
        )
        return self._send_once(request, bounded)

    def _poll_url_warning(self, origin: str) -> None:
        if origin not in self._warned_origins:
            self._warned_origins.add(origin)
            logger.warning(
                "progress_path points at %s, not at the configured base URL %s; polling the "
                "same path on the base URL instead (the API key is never sent elsewhere)",
                origin,
                self._base_url.origin(),
            )


def _connection_error(request: Request, exc: BaseException, failure: Failure) -> APIConnectionError:
    cls = (
        APITimeoutError
        if failure is Failure.TIMEOUT or isinstance(exc, TimeoutError)
        else APIConnectionError
    )
    what = "timed out" if cls is APITimeoutError else f"failed: {exc.__class__.__name__}: {exc}"
    return cls(f"{request.method} {request.url.with_query(None)} {what}", failure=failure)


def _filters_body(filters: BulkFilters) -> BulkUpdateMessagesForChannelRequest:
    unknown = set(filters) - set(BulkFilters.__annotations__)
    if unknown:
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
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        **filters: Unpack[BulkFilters],
    ) -> BulkOperation:
        """Start a bulk status update of a channel's messages; returns the ``BulkOperation``.

        The keyword names are those of Knock's official SDK. Filters left as ``None`` are not
        sent. ``trigger_data`` may be a mapping or a JSON object string. Bad input raises
        ``ValueError``/``TypeError`` naming the argument before anything is sent.
        """
        client = self._client
        body = _filters_body(filters)
        request = bulk_update_request(
            client._base_url, client._json_headers, channel_id, action, body
        )
        return await client._send(request, retry=retry, timeout=_per_call(client, timeout))

    def update_many(
        self,
        channel_ids: Iterable[str],
        action: BulkAction | BulkActionValue,
        *,
        concurrency: int = 10,
        timeout: float | None = 3600.0,
        policy: PollPolicy | None = None,
        **filters: Unpack[BulkFilters],
    ) -> FanOut:
        """The same bulk update on many channels, followed to the end on one shared budget.

        Submits the updates paced by the client's rate limiter, polls every operation with
        at most ``concurrency`` requests in flight, and returns a ``FanOut``: iterate it for
        ``FanOutEvent`` (submitted, progress, completed, failed, error; each with the
        fan-out's totals), await it for the ``FanOutSummary``. ``timeout`` is each
        operation's deadline from its submission. All arguments are checked before any
        request is sent; a channel listed twice is an error.
        """
        client = self._client
        positive_int("concurrency", concurrency)
        optional(non_negative)("timeout", timeout)
        if policy is not None and not isinstance(policy, PollPolicy):
            raise TypeError(f"policy must be a PollPolicy, got {type(policy).__name__}")
        body = _filters_body(filters)
        act = parse_action(action)
        channels = unique_channels(channel_ids, parse_channel_id)
        encoded = encode_body(body)

        def make_request(channel_id: str) -> Request:
            url = URL(
                f"{client._base_url}/v1/channels/{channel_id}/messages/bulk/{act}", encoded=True
            )
            return Request("POST", url, client._json_headers, encoded, Tier.POST)

        return FanOut(
            client=client,
            channel_ids=channels,
            make_request=make_request,
            concurrency=concurrency,
            timeout=timeout,
            policy=policy or client._poll_policy,
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
        self, id: str, *, timeout: float | None = None, retry: RetryPolicy | None = None
    ) -> BulkOperation:
        """The bulk operation ``id`` as it stands now."""
        client = self._client
        request = get_operation_request(client._base_url, client._get_headers, id)
        return await client._send(request, retry=retry, timeout=_per_call(client, timeout))

    def poll(
        self,
        target: PollTargetLike,
        *,
        timeout: float | None = 3600.0,
        policy: PollPolicy | None = None,
    ) -> Poller:
        """Follow a bulk operation until it is ``completed`` or ``failed``.

        ``target`` is a ``BulkOperation``, a ``Progress``, a ``BulkOperationHandle``, an
        operation id or a ``progress_path``. ``timeout`` is the total deadline in seconds
        (``None``: none), not the per-request timeout. Iterate the result for ``Progress``
        snapshots, await it for the final ``BulkOperation``.
        """
        client = self._client
        optional(non_negative)("timeout", timeout)
        if policy is not None and not isinstance(policy, PollPolicy):
            raise TypeError(f"policy must be a PollPolicy, got {type(policy).__name__}")
        initial: BulkOperation | None = None
        if isinstance(target, Progress):
            target = target.operation
        if isinstance(target, BulkOperation):
            initial = target
            resolved = operation_poll_target(client._base_url, target.id, target.progress_path)
        elif isinstance(target, BulkOperationHandle):
            resolved = operation_poll_target(
                client._base_url, target.operation_id, target.progress_path
            )
        elif isinstance(target, str):
            resolved = resolve_poll_target(client._base_url, target)
        else:
            raise TypeError(
                "poll() takes a BulkOperation, a Progress, a BulkOperationHandle, an operation id "
                f"or a progress_path, got {type(target).__name__}"
            )
        if resolved.foreign_origin is not None:
            client._poll_url_warning(resolved.foreign_origin)
        request = Request("GET", resolved.url, client._get_headers, None, Tier.GET)
        return Poller(
            send=client._send_within,
            request=request,
            operation_id=resolved.operation_id,
            initial=initial,
            timeout=timeout,
            policy=policy or client._poll_policy,
            clock=client._clock,
            sleep=client._sleep,
            rng=client._rng,
        )


def _per_call(client: KnockClient, timeout: float | None) -> aiohttp.ClientTimeout | None:
    if timeout is None:
        return None
    return _timeout(timeout, client._timeout.connect)
