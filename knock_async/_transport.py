"""``Transport``: the only module that does I/O.

It owns the aiohttp session, the origin guard, the rate limiter, one try (an aiohttp exception
becomes a typed ``APIConnectionError``), the retry loop, the per-request timeout and the
caller's deadline, and reading the body under a size cap. ``KnockClient`` builds one;
``Poller`` and ``FanOut`` are handed it and call nothing else that sends.

Bounds, all measured on the client's clock:

* every wait in the rate limiter counts against the request's timeout and the caller's
  deadline: a request that cannot leave the limiter in time fails at once with
  ``APITimeoutError`` (``Failure.NOT_SENT``) instead of waiting past it;
* a server's Retry-After holds the limiter for no longer than the caller's cap
  (``RetryPolicy.max_retry_after`` for requests, ``PollPolicy.max_hint`` for polls), and a
  hint longer than ``max_retry_after``, which ends the request's retries, holds nothing;
* a body larger than ``max_response_bytes`` is refused (from its ``Content-Length``, or as it
  streams in after decompression) with ``ResponseTooLargeError``; the connection is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

import aiohttp
from yarl import URL

from ._errors import (
    APIConnectionError,
    APITimeoutError,
    DeadlineError,
    KnockError,
    ResponseTooLargeError,
)
from ._models import BulkOperation
from ._ratelimit import AdaptiveRateLimiter, RateLimiter, Tier
from ._requests import Headers, PollTarget, Request
from ._responses import error_from_response, operation_from_response
from ._retry import Failure, RetryPolicy, parse_retry_after, retry_delay

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "RawResponse", "Transport"]

logger = logging.getLogger("knock_async")

RawResponse = tuple[int, Mapping[str, str], bytes]

DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # Knock's bodies are a few KB
_CHUNK = 64 * 1024


async def _session_keeper(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Closes ``session`` when its event loop shuts down.

    ``asyncio.run`` (and every well-behaved loop runner) closes the async generators still
    alive before closing the loop; a client used across two ``asyncio.run`` calls thus gets
    its first session closed on the first loop, cleanly, and opens a new one on the second.
    """
    try:
        yield
    finally:
        await session.close()


class Transport:
    """Sends ``Request``s to the base URL's origin, paced, bounded and retried.

    ``session``: a caller's session, used as is and never closed here; ``None``: one is
    created per event loop on first use and closed by ``aclose`` (or when its loop shuts down).
    """

    def __init__(
        self,
        *,
        base_url: URL,
        get_headers: Headers,
        json_headers: Headers,
        session: aiohttp.ClientSession | None,
        timeout: aiohttp.ClientTimeout,
        limiter: RateLimiter | None,
        retry: RetryPolicy,
        max_response_bytes: int,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: Callable[[], float] | None = None,
    ) -> None:
        self.base_url = base_url
        self.get_headers = get_headers
        self.json_headers = json_headers
        self.timeout = timeout
        self.retry = retry
        self.max_response_bytes = max_response_bytes
        # Real time unless injected: then waits can be bounded by asyncio's own timers.
        self._real_time = clock is None
        self.clock: Callable[[], float] = clock or time.monotonic
        self.sleep: Callable[[float], Awaitable[None]] = sleep or asyncio.sleep
        self.rng: Callable[[], float] = rng or random.random
        self._limiter = limiter
        self._adaptive = isinstance(limiter, AdaptiveRateLimiter)
        self._session = session
        self._owns_session = session is None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._keeper: AsyncGenerator[None, None] | None = None
        self._closed = False
        self._warned_origins: set[str] = set()

    @property
    def limiter(self) -> RateLimiter | None:
        return self._limiter

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the session -------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the transport's own session (a caller's is left open). Idempotent."""
        self._closed = True
        keeper, self._keeper = self._keeper, None
        session, self._session = (self._session, None) if self._owns_session else (None, None)
        if keeper is not None and self._session_loop is asyncio.get_running_loop():
            await keeper.aclose()  # closes the session
        elif session is not None and not session.closed:
            await session.close()

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this KnockClient is closed")
        session = self._session
        if not self._owns_session:
            assert session is not None
            return session
        loop = asyncio.get_running_loop()
        if session is None or self._session_loop is not loop or session.closed:
            # First use, or the loop the session was made on is gone (its keeper closed it
            # there): a session belongs to one loop, so this loop gets its own.
            session = aiohttp.ClientSession(timeout=self.timeout)
            keeper = _session_keeper(session)
            await keeper.__anext__()
            self._session, self._session_loop, self._keeper = session, loop, keeper
        return session

    # -- requests ----------------------------------------------------------------------

    def poll_request(self, target: PollTarget) -> Request:
        """The GET that polls ``target``, warning once per foreign origin it was moved from."""
        origin = target.foreign_origin
        if origin is not None and origin not in self._warned_origins:
            self._warned_origins.add(origin)
            logger.warning(
                "progress_path points at %s, not at the configured base URL %s; polling the "
                "same path on the base URL instead (the API key is never sent elsewhere)",
                origin,
                self.base_url.origin(),
            )
        return Request("GET", target.url, self.get_headers, None, Tier.GET)

    # -- one try -----------------------------------------------------------------------

    async def exchange(
        self,
        request: Request,
        *,
        deadline: float | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        max_hint: float,
        clamp_hint: bool = True,
        committed: Callable[[], None] | None = None,
    ) -> RawResponse:
        """One try: wait for the limiter, send, read the body under the cap.

        The limiter wait and the exchange together last at most the request timeout, and end
        by ``deadline`` (the client's clock) if one is given. ``max_hint`` caps how long a 429's
        Retry-After holds the limiter; with ``clamp_hint=False`` a longer hint (one the caller
        gives up on) holds nothing beyond the usual slow-down. ``committed`` is called once
        the request has left the limiter: from then on it may reach Knock.
        Raises ``APIConnectionError``/``APITimeoutError`` (``DeadlineError`` when ``deadline``
        cannot be met) or ``ResponseTooLargeError``.
        """
        session = await self._get_session()
        # Defence in depth: the key goes to the base URL's origin and nowhere else.
        if request.url.origin() != self.base_url.origin():
            raise KnockError(f"refusing to send the API key to {request.url.origin()}")
        timeout = timeout or self.timeout
        started = self.clock()
        end = None if timeout.total is None else started + timeout.total
        if deadline is not None and (end is None or deadline < end):
            end, by_deadline = deadline, True
        else:
            by_deadline = False
        limiter = self._limiter
        if limiter is not None:
            await self._acquire(limiter, request, end, by_deadline)
        if committed is not None:
            committed()
        if end is not None:
            left = max(end - self.clock(), 0.001)
            if timeout.total is None or left < timeout.total:
                connect = timeout.connect
                timeout = aiohttp.ClientTimeout(
                    total=left, connect=left if connect is None else min(connect, left)
                )
        status, headers, body = await self._try(session, request, timeout)
        if limiter is not None:
            if status == 429:
                hint = parse_retry_after(headers)
                if hint is not None and hint > max_hint:
                    hint = max_hint if clamp_hint else None
                limiter.on_rate_limited(request.tier, retry_after=hint)
            else:
                limiter.on_success(request.tier)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d in %.3fs (request_id=%s)",
                request.method,
                request.url,
                status,
                self.clock() - started,
                headers.get("x-request-id"),
            )
        return status, headers, body

    async def _acquire(
        self, limiter: RateLimiter, request: Request, end: float | None, by_deadline: bool
    ) -> None:
        """The limiter's slot, or a timeout error as soon as it cannot come by ``end``."""
        if end is None:
            await limiter.acquire(request.tier)
            return
        in_time = True
        try:
            if self._adaptive:
                assert isinstance(limiter, AdaptiveRateLimiter)
                await limiter.acquire(request.tier, deadline=end)
            elif self._real_time:
                async with asyncio.timeout(max(0.0, end - self.clock())):
                    await limiter.acquire(request.tier)
            else:
                # Another limiter on an injected clock: asyncio's timers do not run on that
                # clock, so the wait is checked when it ends (the request is then not sent).
                await limiter.acquire(request.tier)
                in_time = self.clock() <= end
        except TimeoutError:
            in_time = False
        if in_time:
            return
        # Raised outside the except block: nothing of the limiter's error is chained.
        what = f"{request.method} {request.url.with_query(None)} could not be sent within"
        if by_deadline:
            raise DeadlineError(f"{what} the deadline: the rate limiter is queued past it")
        raise APITimeoutError(
            f"{what} its timeout: the rate limiter is queued past it", failure=Failure.NOT_SENT
        )

    async def _try(
        self, session: aiohttp.ClientSession, request: Request, timeout: aiohttp.ClientTimeout
    ) -> RawResponse:
        error: APIConnectionError | None = None
        try:
            async with session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=timeout,
                allow_redirects=False,  # a redirect could carry the key elsewhere
                raise_for_status=False,  # whatever a caller's session says: statuses are ours
            ) as response:
                body = await self._read(response)
                return response.status, response.headers, body
        # aiohttp's errors can hold the request headers (ClientResponseError.request_info), so
        # the typed error is raised after the except block: it has no __context__ to leak.
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            failure = (
                Failure.CONNECTION if isinstance(exc, aiohttp.ClientSSLError) else Failure.NOT_SENT
            )
            error = _connection_error(request, exc, failure)
        except TimeoutError as exc:
            error = _connection_error(request, exc, Failure.TIMEOUT)
        except aiohttp.ClientError as exc:
            error = _connection_error(request, exc, Failure.CONNECTION)
        raise error

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, refused as soon as it is known to exceed the cap (connection dropped)."""
        cap = self.max_response_bytes
        length = response.content_length
        encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        if length is not None and length > cap:
            response.close()
            raise _too_large(response, cap, f"Content-Length is {length} bytes")
        if length is not None and not encoded:
            return await response.read()  # bounded by its length: the fast path
        chunks: list[bytes] = []
        size = 0
        # Decompressed as it streams: a small gzip body can inflate far past the cap.
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > cap:
                response.close()
                raise _too_large(response, cap, "the body grew past it while streaming")
            chunks.append(chunk)
        return b"".join(chunks)

    # -- with retries ------------------------------------------------------------------

    async def send(
        self,
        request: Request,
        *,
        retry: RetryPolicy | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        deadline: float | None = None,
        committed: Callable[[], None] | None = None,
    ) -> BulkOperation:
        """Send with retries as ``retry`` allows; the operation, or the last error.

        Every try is bounded as ``exchange`` says; a retry whose wait would pass ``deadline``
        is not made. ``committed`` is called when the first try has left the limiter and may
        reach Knock (a fan-out then waits for its answer instead of cancelling it).
        """
        policy = retry or self.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                status, headers, body = await self.exchange(
                    request,
                    deadline=deadline,
                    timeout=timeout,
                    max_hint=policy.max_retry_after,
                    clamp_hint=False,
                    committed=committed if attempt == 1 else None,
                )
            except APIConnectionError as exc:
                delay = retry_delay(
                    policy,
                    method=request.method,
                    attempt=attempt,
                    failure=exc.failure,
                    rng=self.rng,
                )
                if delay is None or isinstance(exc, DeadlineError):
                    raise
                logger.info(
                    "%s %s failed (%s); retry in %.2fs", request.method, request.url, exc, delay
                )
                failed: KnockError = exc
            else:
                if 200 <= status < 300:
                    return operation_from_response(status, headers, body)
                delay = retry_delay(
                    policy,
                    method=request.method,
                    attempt=attempt,
                    status=status,
                    retry_after=parse_retry_after(headers),
                    rng=self.rng,
                )
                failed = error_from_response(status, headers, body)
                if delay is None:
                    raise failed
                logger.info(
                    "%s %s answered %d; retry in %.2fs", request.method, request.url, status, delay
                )
            if deadline is not None and self.clock() + delay >= deadline:
                raise failed
            await self.sleep(delay)


def _too_large(response: aiohttp.ClientResponse, cap: int, why: str) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"response to {response.method} {response.url.with_query(None)} is larger than "
        f"max_response_bytes={cap}: {why}",
        limit=cap,
        status=response.status,
        request_id=response.headers.get("x-request-id"),
    )


def _connection_error(request: Request, exc: BaseException, failure: Failure) -> APIConnectionError:
    cls = (
        APITimeoutError
        if failure is Failure.TIMEOUT or isinstance(exc, TimeoutError)
        else APIConnectionError
    )
    what = "timed out" if cls is APITimeoutError else f"failed: {exc.__class__.__name__}: {exc}"
    return cls(f"{request.method} {request.url.with_query(None)} {what}", failure=failure)
