"""``Transport``: the only module that does I/O.

It owns the aiohttp session, the origin guard, the rate limiter, one try (an aiohttp exception
becomes a typed ``APIConnectionError``), the retry loop, the per-request timeout and the
caller's deadline, and reading the body under a size cap. ``KnockClient`` builds one;
``Poller`` and ``FanOut`` are handed it and call nothing else that sends. It knows nothing of
poll policies: a try is bounded by its timeout and an optional deadline, nothing else.

Bounds, all measured on the client's clock:

* every wait in the rate limiter counts against the request's timeout and the caller's
  deadline (``try_end`` decides which comes first): a request that cannot leave the limiter
  in time fails at once, not sent, with ``RateLimiterTimeoutError`` (``DeadlineError`` when
  the deadline is what ran out) instead of waiting past it;
* a server's Retry-After holds the limiter for as long as it says when that is at most the
  client's ``RetryPolicy.max_retry_after`` (``max_hold``); a longer hint, which no retry
  waits out, holds nothing beyond the limiter's usual slow-down;
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

from ._defaults import USE_CLIENT_DEFAULT, UseClientDefault
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ClientClosedError,
    DeadlineError,
    KnockError,
    RateLimiterTimeoutError,
    ResponseTooLargeError,
)
from ._hooks import (
    Hook,
    RateLimitWait,
    RetryScheduled,
    Watch,
    emit,
    request_answered,
    request_sent,
)
from ._models import BulkOperation
from ._ratelimit import AdaptiveRateLimiter, RateLimiter, Tier
from ._requests import BulkUpdateRequest, Headers, PollTarget, Request, operation_request
from ._responses import Answer, error_from_response, operation_from_answer
from ._retry import Failure, RetryPolicy, may_have_started, retry_delay

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "Transport", "try_end"]

logger = logging.getLogger("knock_async")

DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # Knock's bodies are a few KB
_CHUNK = 64 * 1024
# A limiter wait shorter than this leaves the request its whole timeout (no new ClientTimeout).
_SLACK = 0.01
# What is left of a try whose end has come: aiohttp then times out at once.
_MIN_LEFT = 0.001


def try_end(
    started: float, total: float | None, deadline: float | None
) -> tuple[float | None, bool]:
    """When a try started at ``started`` must have ended: ``total`` seconds later (the request
    timeout; ``None``: no timeout), or at the caller's ``deadline`` if that comes first
    (``None``: no deadline). Also whether the deadline is what bounds it. Pure."""
    end = None if total is None else started + total
    if deadline is not None and (end is None or deadline < end):
        return deadline, True
    return end, False


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


def _no_silent_resend(session: aiohttp.ClientSession) -> None:
    """Turns off aiohttp's own resend of an idempotent request dropped on a reused connection.

    That second send is invisible to the limiter and the hooks (a soak counted 84 GETs at the
    server that the client never reported); without it the drop is a ``Failure.CONNECTION``,
    retried (or ridden out by a follow) by the client's own policy, which paces and reports
    every send. aiohttp has no public switch: the private flag is set where this aiohttp has it.
    """
    if "_retry_connection" in aiohttp.ClientSession.ATTRS:
        session._retry_connection = False


class Transport:
    """Sends ``Request``s to the base URL's origin, paced, bounded and retried.

    ``session``: a caller's session, used as is and never closed here; ``None``: one is
    created per event loop on first use and closed by ``aclose`` (or when its loop shuts down).
    ``retry`` is the client's policy: the default of ``send`` and, by its
    ``max_retry_after``, the longest a server's Retry-After holds the limiter.
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
        self.max_hold = retry.max_retry_after
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

    # -- the session -------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the transport's own session (a caller's is left open). Idempotent."""
        self._closed = True
        loop, self._session_loop = self._session_loop, None
        keeper, self._keeper = self._keeper, None
        session, self._session = (self._session, None) if self._owns_session else (None, None)
        if keeper is not None and loop is asyncio.get_running_loop():
            await keeper.aclose()  # closes the session
        elif session is not None and not session.closed:
            await session.close()

    async def _get_session(self) -> aiohttp.ClientSession:
        """The session for this loop, opened if need be; ``exchange`` skips this call while
        ``_session_loop`` is the running loop."""
        if self._closed:
            raise ClientClosedError("this KnockClient is closed: build a new one to send more")
        session = self._session
        loop = asyncio.get_running_loop()
        if not self._owns_session:
            assert session is not None
            self._session_loop = loop
            return session
        if session is None or self._session_loop is not loop or session.closed:
            # First use, or the loop the session was made on is gone (its keeper closed it
            # there): a session belongs to one loop, so this loop gets its own.
            session = aiohttp.ClientSession(timeout=self.timeout)
            _no_silent_resend(session)
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
        return operation_request(target.url, self.get_headers)

    # -- one try -----------------------------------------------------------------------

    async def exchange(
        self,
        request: Request,
        *,
        deadline: float | None = None,
        timeout: aiohttp.ClientTimeout | UseClientDefault = USE_CLIENT_DEFAULT,
        committed: Callable[[], None] | None = None,
        attempt: int = 1,
    ) -> Answer:
        """One try: wait for the limiter, send, read the body under the cap; the answer. The
        wait and the exchange last at most ``timeout`` and end by ``deadline`` (client clock).
        ``committed`` is called once the request leaves the limiter (it may reach Knock from
        then on). Raises ``APIConnectionError`` and its subclasses, ``ResponseTooLargeError``
        or ``ClientClosedError``. One coroutine on purpose: thousands of polls wait in here at
        once, and each layer costs every one of them a frame and every request its calls."""
        session = self._session
        if session is None or self._session_loop is not asyncio.get_running_loop():
            session = await self._get_session()
        self._check_origin(request)
        if timeout is USE_CLIENT_DEFAULT:
            timeout = self.timeout
        if deadline is not None or not self._free_to_go(request):
            started = self.clock()
            end, by_deadline = try_end(started, timeout.total, deadline)
            waiting = self._admission(request, end)
            if waiting is not None:
                try:
                    await waiting
                except TimeoutError:
                    raise self._queued_past(request, by_deadline, timeout.total) from None
                if self.hooks:
                    self._waited(request, self.clock() - started)
            timeout = self._shortened(timeout, started, end, by_deadline)
        if committed is not None:
            committed()
        sent = self._announce(request, attempt) if self.hooks else None
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
                answer = await self._read(response)
        except (aiohttp.ClientError, TimeoutError, RuntimeError, ResponseTooLargeError) as exc:
            error = self._failed(request, session, exc, sent)
            if error is None:
                raise  # a bug, not the exchange's failure: as it is
        except BaseException as exc:
            # Cancelled (or a bug): no record, but the hooks' context managers still close.
            if sent is not None:
                sent.close(exc)
            raise
        else:
            self._answered(request, answer, sent)
            return answer
        raise error  # outside the except block: no __context__ (aiohttp's may hold headers)

    def _check_origin(self, request: Request) -> None:
        url = request.url
        # Defence in depth: the key goes to the base URL's origin and nowhere else.
        if (url.scheme, url.host, url.port) != self._origin:
            raise KnockError(f"refusing to send the API key to {url.origin()}")

    def _free_to_go(self, request: Request) -> bool:
        """Whether ``request`` may leave now with its whole timeout: no limiter, or the
        default limiter has a free slot (then taken), which spares it the wait's arithmetic."""
        if self._limiter is None:
            return True
        adaptive = self._adaptive
        return adaptive is not None and adaptive.try_acquire(request.tier)

    async def _read(self, response: aiohttp.ClientResponse) -> Answer:
        """The answer, its body read under the cap."""
        length = response.content_length
        if (
            length is not None
            and length <= self.max_response_bytes
            and "Content-Encoding" not in response.headers
        ):
            body = await response.read()  # bounded by its length: the fast path
        else:
            body = await self._read_capped(response, length)
        return Answer(response.status, response.headers, body)

    def _failed(
        self,
        request: Request,
        session: aiohttp.ClientSession,
        exc: BaseException,
        sent: Watch | None,
    ) -> KnockError | None:
        """The typed error a try ended with (told to the hooks), or ``None`` for a
        ``RuntimeError`` that is not about a closed session (a bug, to propagate).

        aiohttp's errors can hold the request headers (``ClientResponseError.request_info``),
        so the typed error is built here, not chained, and raised after the except block."""
        error = exc if isinstance(exc, KnockError) else _typed_error(request, session, exc)
        if sent is not None:
            if error is None:
                sent.close(exc)
            else:
                self._ended(sent, error)
        return error

    def _admission(self, request: Request, end: float | None) -> Awaitable[None] | None:
        """The wait for the limiter's slot (raising ``TimeoutError`` when it cannot come by
        ``end``), or ``None`` without a limiter."""
        limiter = self._limiter
        if limiter is None:
            return None
        if end is None:
            return limiter.acquire(request.tier)
        if self._adaptive is not None:
            return self._adaptive.acquire(request.tier, deadline=end)
        return self._acquire_foreign(limiter, request.tier, end)

    async def _acquire_foreign(self, limiter: RateLimiter, tier: Tier, end: float) -> None:
        """Another ``RateLimiter``'s slot, or ``TimeoutError`` once it cannot come by ``end``."""
        if self._real_time:
            async with asyncio.timeout(max(0.0, end - self.clock())):
                await limiter.acquire(tier)
            return
        # On an injected clock asyncio's timers do not run on that clock, so the wait is
        # checked when it ends (the request is then not sent).
        await limiter.acquire(tier)
        if self.clock() > end:
            raise TimeoutError

    def _shortened(
        self,
        timeout: aiohttp.ClientTimeout,
        started: float,
        end: float | None,
        by_deadline: bool,
    ) -> aiohttp.ClientTimeout:
        """``timeout``, cut to what is left until ``end`` once the limiter's wait (or the
        deadline) has taken some of it."""
        if end is None:
            return timeout
        now = self.clock()
        if not by_deadline and now - started <= _SLACK:
            return timeout  # the limiter let it straight through: the timeout stands
        left = max(end - now, _MIN_LEFT)
        connect = timeout.connect
        return aiohttp.ClientTimeout(
            total=left, connect=left if connect is None else min(connect, left)
        )

    def _queued_past(
        self, request: Request, by_deadline: bool, total: float | None
    ) -> APITimeoutError:
        what = f"{request.method} {request.url.with_query(None)} could not be sent within"
        if by_deadline:
            return DeadlineError(f"{what} the deadline: the rate limiter is queued past it")
        opens_in: float | None = None
        if self._adaptive is not None:
            now = self.clock()
            opens_in = self._adaptive.state(request.tier).next_slot(now) - now
        many = (
            "to start many bulk updates use knock.channels.bulk.update_many(channel_ids, ...), "
            "which paces them and follows each; otherwise "
            if request.tier is Tier.POST
            else ""
        )
        return RateLimiterTimeoutError(
            f"{what} its {total}s timeout: the client's rate limiter is queued past it (more "
            f"requests are waiting on this client than its RateLimits let out in that time); "
            f"{many}allow a longer timeout= or change KnockClient(rate_limits=RateLimits(...))",
            opens_in=opens_in,
        )

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

    # -- what a try tells the limiter, the hooks and the log ------------------------------

    def _waited(self, request: Request, seconds: float) -> None:
        if seconds > _SLACK:  # below that, the limiter let the request straight through
            emit(self.hooks, RateLimitWait(tier=str(request.tier), seconds=seconds))

    def _announce(self, request: Request, attempt: int) -> Watch:
        return Watch(self.hooks, request_sent(request, attempt), self.clock)

    def _ended(self, sent: Watch, error: KnockError) -> None:
        """The hooks' record of a try that ended with ``error``."""
        if isinstance(error, APIConnectionError):
            failure = error.failure.value
        elif isinstance(error, ResponseTooLargeError):
            failure = "response_too_large"
        else:
            failure = Failure.NOT_SENT.value  # a closed session: nothing went out
        ended = request_answered(
            sent.record,
            duration=self.clock() - sent.sent_at,
            status=error.status,
            request_id=error.request_id,
            failure=failure,
        )
        emit(self.hooks, ended)
        sent.close(None)

    def _answered(self, request: Request, answer: Answer, sent: Watch | None) -> None:
        """An answer came: feed it back to the limiter, the hooks and the debug log."""
        limiter = self._limiter
        if limiter is not None:
            if answer.status == 429:
                hint = answer.retry_after
                # A hint nobody waits out must not stall every other request of the client.
                held = None if hint is not None and hint > self.max_hold else hint
                limiter.on_rate_limited(request.tier, retry_after=held)
            else:
                limiter.on_success(request.tier)
        if sent is not None:
            answered = request_answered(
                sent.record,
                duration=self.clock() - sent.sent_at,
                status=answer.status,
                request_id=answer.request_id,
            )
            emit(self.hooks, answered)
            sent.close(None)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d (request_id=%s)",
                request.method,
                request.url,
                answer.status,
                answer.request_id,
            )

    # -- with retries ------------------------------------------------------------------

    async def send(
        self,
        request: Request,
        *,
        retry: RetryPolicy | UseClientDefault | None = USE_CLIENT_DEFAULT,
        timeout: aiohttp.ClientTimeout | UseClientDefault = USE_CLIENT_DEFAULT,
        committed: Callable[[], None] | None = None,
    ) -> BulkOperation:
        """Send with retries as ``retry`` allows (the client's policy by default, ``None``:
        one try); the operation (with the request's channel and action), or the last error.

        Every try is bounded as ``exchange`` says. ``committed`` is called when the first try
        has left the limiter and may reach Knock (a fan-out then waits for its answer instead
        of cancelling it). An error of a POST that may have started an operation says so
        (``operation_may_have_started``).
        """
        policy = self.retry if retry is USE_CLIENT_DEFAULT else retry or _ONE_TRY
        attempt = 0
        earlier = False  # whether a try before this one may have started an operation
        while True:
            attempt += 1
            try:
                answer = await self.exchange(
                    request,
                    timeout=timeout,
                    committed=committed if attempt == 1 else None,
                    attempt=attempt,
                )
            except APIConnectionError as exc:
                failed: APIError = exc
                delay = self._retry_delay(policy, request, attempt, exc)
            except APIError as exc:
                _told(request, exc, earlier)
                raise
            else:
                if answer.ok:
                    return self._operation(request, answer)
                failed = error_from_response(answer.status, answer.headers, answer.body)
                delay = retry_delay(
                    policy,
                    method=request.method,
                    attempt=attempt,
                    status=answer.status,
                    retry_after=answer.retry_after,
                    rng=self.rng,
                )
            earlier = _told(request, failed, earlier).operation_may_have_started
            if delay is None:
                raise failed
            self._retrying(request, attempt, failed, delay)
            await self.sleep(delay)

    def _operation(self, request: Request, answer: Answer) -> BulkOperation:
        try:
            if isinstance(request, BulkUpdateRequest):
                return operation_from_answer(
                    answer, channel_id=request.channel_id, action=request.action
                )
            return operation_from_answer(answer)
        except APIError as exc:
            _told(request, exc, earlier=False)
            raise

    def _retry_delay(
        self, policy: RetryPolicy, request: Request, attempt: int, error: APIConnectionError
    ) -> float | None:
        delay = retry_delay(
            policy, method=request.method, attempt=attempt, failure=error.failure, rng=self.rng
        )
        if (
            delay is not None
            and isinstance(error, RateLimiterTimeoutError)
            and error.opens_in is not None
            and error.opens_in <= policy.max_retry_after
        ):
            # A hold within what the policy accepts (a server's Retry-After): the retry
            # waits it out instead of asking the limiter again at once.
            delay = max(delay, error.opens_in)
        return delay

    def _retrying(self, request: Request, attempt: int, error: APIError, delay: float) -> None:
        if isinstance(error, APIConnectionError):
            why = error.failure.value
            logger.info(
                "%s %s failed (%s); retry in %.2fs", request.method, request.url, error, delay
            )
        else:
            why = str(error.status)
            logger.info(
                "%s %s answered %s; retry in %.2fs", request.method, request.url, why, delay
            )
        if self.hooks:
            scheduled = RetryScheduled(
                method=request.method, route=request.route, attempt=attempt, why=why, delay=delay
            )
            emit(self.hooks, scheduled)


_ONE_TRY = RetryPolicy(attempts=1)


def _told(request: Request, error: APIError, earlier: bool) -> APIError:
    """``error``, marked when its try, or an ``earlier`` one of the same request, may have
    started an operation."""
    failure = error.failure if isinstance(error, APIConnectionError) else None
    if earlier or may_have_started(request.method, status=error.status, failure=failure):
        error.operation_may_have_started = True
    return error


def _too_large(response: aiohttp.ClientResponse, cap: int, why: str) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"response to {response.method} {response.url.with_query(None)} is larger than "
        f"max_response_bytes={cap}: {why}",
        limit=cap,
        status=response.status,
        request_id=response.headers.get("x-request-id"),
    )


def _failure_of(exc: BaseException) -> Failure:
    """Whether the request may have reached the server, from how aiohttp failed."""
    if isinstance(exc, aiohttp.ClientSSLError):
        return Failure.CONNECTION  # the handshake may have followed a sent request
    if isinstance(exc, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
        return Failure.NOT_SENT
    if isinstance(exc, TimeoutError):
        return Failure.TIMEOUT
    return Failure.CONNECTION


def _typed_error(
    request: Request, session: aiohttp.ClientSession, exc: BaseException
) -> KnockError | None:
    """The typed error for what aiohttp raised, or ``None`` for a ``RuntimeError`` that is
    not about a closed session (a bug, to propagate as it is)."""
    where = f"{request.method} {request.url.with_query(None)}"
    if isinstance(exc, RuntimeError) and not isinstance(exc, aiohttp.ClientError):
        if not session.closed:
            return None
        return ClientClosedError(
            f"{where} not sent: the aiohttp session given as KnockClient(session=...) is "
            "closed; keep it open while the client is in use"
        )
    failure = _failure_of(exc)
    if failure is Failure.TIMEOUT or isinstance(exc, TimeoutError):
        return APITimeoutError(f"{where} timed out", failure=failure)
    return APIConnectionError(f"{where} failed: {exc.__class__.__name__}: {exc}", failure=failure)
