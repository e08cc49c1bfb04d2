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
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

import aiohttp
from yarl import URL

from ._errors import (
    APIConnectionError,
    APITimeoutError,
    DeadlineError,
    KnockError,
    ResponseTooLargeError,
)
from ._hooks import (
    Hook,
    RateLimitWait,
    RetryScheduled,
    emit,
    request_answered,
    request_sent,
    route_of,
)
from ._models import BulkOperation
from ._ratelimit import AdaptiveRateLimiter, RateLimiter, Tier
from ._requests import Headers, PollTarget, Request
from ._responses import Answer, error_from_response, operation_from_answer
from ._retry import Failure, RetryPolicy, retry_delay

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "Transport"]

logger = logging.getLogger("knock_async")

DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # Knock's bodies are a few KB
_CHUNK = 64 * 1024
# A limiter wait shorter than this leaves the request its whole timeout (no new ClientTimeout).
_SLACK = 0.01


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
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.base_url = base_url
        # Instrumentation: every try, retry and limiter wait is reported to these.
        self.hooks = tuple(hooks)
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
        # The default limiter takes the deadline itself: no timer, no task per wait.
        self._adaptive = limiter if isinstance(limiter, AdaptiveRateLimiter) else None
        self._session = session
        self._owns_session = session is None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._keeper: AsyncGenerator[None, None] | None = None
        self._closed = False
        self._warned_origins: set[str] = set()
        self._origin = (base_url.scheme, base_url.host, base_url.port)

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
        attempt: int = 1,
    ) -> Answer:
        """One try: wait for the limiter, send, read the body under the cap.

        The limiter wait and the exchange together last at most the request timeout, and end
        by ``deadline`` (the client's clock) if one is given. ``max_hint`` caps how long a 429's
        Retry-After holds the limiter; with ``clamp_hint=False`` a longer hint (one the caller
        gives up on) holds nothing beyond the usual slow-down. ``committed`` is called once
        the request has left the limiter: from then on it may reach Knock. ``attempt`` numbers
        the try for the hooks. Raises ``APIConnectionError``/``APITimeoutError``
        (``DeadlineError`` when ``deadline`` cannot be met) or ``ResponseTooLargeError``.
        """
        session = self._session
        if (
            session is None
            or self._closed
            or (self._owns_session and self._session_loop is not asyncio.get_running_loop())
        ):
            session = await self._get_session()
        url = request.url
        # Defence in depth: the key goes to the base URL's origin and nowhere else.
        if (url.scheme, url.host, url.port) != self._origin:
            raise KnockError(f"refusing to send the API key to {url.origin()}")
        timeout = timeout or self.timeout
        limiter = self._limiter
        # Frames are kept few on purpose: thousands of awaited polls wait in here at once.
        if limiter is not None or deadline is not None:
            started = self.clock()
            end = None if timeout.total is None else started + timeout.total
            by_deadline = deadline is not None and (end is None or deadline < end)
            if by_deadline:
                end = deadline
            if limiter is not None:
                if end is None:
                    await limiter.acquire(request.tier)
                elif self._adaptive is not None:
                    try:
                        await self._adaptive.acquire(request.tier, deadline=end)
                    except TimeoutError:
                        in_time = False
                    else:
                        in_time = True
                    if not in_time:
                        now = self.clock()
                        opens_in = self._adaptive.state(request.tier).next_slot(now) - now
                        raise _queued_past(request, by_deadline, opens_in)
                else:
                    await self._acquire_foreign(limiter, request, end, by_deadline)
                if self.hooks:
                    self._waited(request, self.clock() - started)
            if end is not None and (by_deadline or self.clock() - started > _SLACK):
                # The wait in the limiter (or the deadline) shortens what is left for the try.
                left = max(end - self.clock(), 0.001)
                connect = timeout.connect
                timeout = aiohttp.ClientTimeout(
                    total=left, connect=left if connect is None else min(connect, left)
                )
        if committed is not None:
            committed()
        hooks = self.hooks
        if hooks:
            sent = request_sent(request, attempt)
            emit(hooks, sent)
            sent_at = self.clock()
        error: APIConnectionError | None = None
        try:
            async with session.request(
                request.method,
                url,
                headers=request.headers,
                data=request.body,
                timeout=timeout,
                allow_redirects=False,  # a redirect could carry the key elsewhere
                raise_for_status=False,  # whatever a caller's session says: statuses are ours
            ) as response:
                length = response.content_length
                if (
                    length is not None
                    and length <= self.max_response_bytes
                    and "Content-Encoding" not in response.headers
                ):
                    body = await response.read()  # bounded by its length: the fast path
                else:
                    body = await self._read_capped(response, length)
                status, headers = response.status, response.headers
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
        except ResponseTooLargeError as exc:
            if hooks:  # the try ended too: its record says how
                too_large = request_answered(
                    sent,
                    duration=self.clock() - sent_at,
                    status=exc.status,
                    request_id=exc.request_id,
                    failure="response_too_large",
                )
                emit(hooks, too_large)
            raise
        if hooks:
            duration = self.clock() - sent_at
            if error is not None:
                emit(hooks, request_answered(sent, duration=duration, failure=error.failure.value))
            else:
                answered = request_answered(
                    sent, duration=duration, status=status, request_id=headers.get("x-request-id")
                )
                emit(hooks, answered)
        if error is not None:
            raise error
        answer = Answer(status, headers, body)
        if limiter is not None:
            if status == 429:
                hint = answer.retry_after
                if hint is not None and hint > max_hint:
                    hint = max_hint if clamp_hint else None
                limiter.on_rate_limited(request.tier, retry_after=hint)
            else:
                limiter.on_success(request.tier)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d (request_id=%s)",
                request.method,
                url,
                status,
                answer.request_id,
            )
        return answer

    def _waited(self, request: Request, seconds: float) -> None:
        if seconds > _SLACK:  # below that, the limiter let the request straight through
            emit(self.hooks, RateLimitWait(tier=str(request.tier), seconds=seconds))

    async def _acquire_foreign(
        self, limiter: RateLimiter, request: Request, end: float, by_deadline: bool
    ) -> None:
        """Another ``RateLimiter``'s slot, or a timeout error once it cannot come by ``end``."""
        in_time = True
        try:
            if self._real_time:
                async with asyncio.timeout(max(0.0, end - self.clock())):
                    await limiter.acquire(request.tier)
            else:
                # On an injected clock asyncio's timers do not run on that clock, so the wait
                # is checked when it ends (the request is then not sent).
                await limiter.acquire(request.tier)
                in_time = self.clock() <= end
        except TimeoutError:
            in_time = False
        if not in_time:
            raise _queued_past(request, by_deadline)

    async def _read_capped(self, response: aiohttp.ClientResponse, length: int | None) -> bytes:
        """The body, refused as soon as it is known to exceed the cap (connection dropped)."""
        cap = self.max_response_bytes
        if length is not None and length > cap:
            response.close()
            raise _too_large(response, cap, f"Content-Length is {length} bytes")
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
        committed: Callable[[], None] | None = None,
    ) -> BulkOperation:
        """Send with retries as ``retry`` allows; the operation, or the last error.

        Every try is bounded as ``exchange`` says. ``committed`` is called when the first try
        has left the limiter and may reach Knock (a fan-out then waits for its answer instead
        of cancelling it).
        """
        policy = retry or self.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = await self.exchange(
                    request,
                    timeout=timeout,
                    max_hint=policy.max_retry_after,
                    clamp_hint=False,
                    committed=committed if attempt == 1 else None,
                    attempt=attempt,
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
                if (
                    isinstance(exc, _QueuedPastError)
                    and exc.opens_in is not None
                    and exc.opens_in <= policy.max_retry_after
                ):
                    # A hold within what the policy accepts (a server's Retry-After): the
                    # retry waits it out instead of asking the limiter again at once.
                    delay = max(delay, exc.opens_in)
                logger.info(
                    "%s %s failed (%s); retry in %.2fs", request.method, request.url, exc, delay
                )
                failed: KnockError = exc
                why = exc.failure.value
            else:
                status = answer.status
                if answer.ok:
                    return operation_from_answer(answer)
                delay = retry_delay(
                    policy,
                    method=request.method,
                    attempt=attempt,
                    status=status,
                    retry_after=answer.retry_after,
                    rng=self.rng,
                )
                failed = error_from_response(status, answer.headers, answer.body)
                if delay is None:
                    raise failed
                why = str(status)
                logger.info(
                    "%s %s answered %d; retry in %.2fs", request.method, request.url, status, delay
                )
            if self.hooks:
                emit(
                    self.hooks,
                    RetryScheduled(
                        method=request.method,
                        route=route_of(request),
                        attempt=attempt,
                        why=why,
                        delay=delay,
                    ),
                )
            await self.sleep(delay)


class _QueuedPastError(APITimeoutError):
    """The rate limiter could not grant a slot within the request's timeout. ``opens_in``:
    seconds until the tier's next free slot, when the limiter can tell (a retry waits that
    long rather than asking again while a hold the policy accepted still stands)."""

    def __init__(self, message: str, opens_in: float | None) -> None:
        super().__init__(message, failure=Failure.NOT_SENT)
        self.opens_in = opens_in


def _queued_past(
    request: Request, by_deadline: bool, opens_in: float | None = None
) -> APITimeoutError:
    what = f"{request.method} {request.url.with_query(None)} could not be sent within"
    if by_deadline:
        return DeadlineError(f"{what} the deadline: the rate limiter is queued past it")
    return _QueuedPastError(f"{what} its timeout: the rate limiter is queued past it", opens_in)


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
