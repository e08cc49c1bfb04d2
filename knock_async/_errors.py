"""The exception hierarchy, knockapi's tree under this library's root ``KnockError``::

    KnockError                          everything raised; .operation_may_have_started
     +-- APIError                       one API request went wrong (knockapi's root)
     |    +-- APIStatusError            Knock answered an error status: .status_code (.status)
     |    |    +-- BadRequestError              400
     |    |    +-- AuthenticationError          401
     |    |    +-- PermissionDeniedError        403
     |    |    +-- NotFoundError                404
     |    |    +-- UnprocessableEntityError     422
     |    |    +-- RateLimitError               429 (.retry_after)
     |    |    +-- InternalServerError          5xx
     |    +-- APIConnectionError        no HTTP answer came (.failure: was it sent?)
     |    |    +-- APITimeoutError      the per-request timeout ran out
     |    |         +-- RateLimiterTimeoutError  the client's own pacing queue outlasted it
     |    +-- APIResponseValidationError  (alias ResponseValidationError) a body off the spec
     |         +-- ResponseTooLargeError        larger than max_response_bytes
     +-- ClientClosedError              the KnockClient or its aiohttp session is closed
     +-- BulkOperationFailedError       the operation ended ``failed`` (.progress, .handle)
     +-- PollTimeoutError               the poll's deadline passed (.progress, .handle)

``except APIError`` thus catches a status, a dropped connection, a timeout and a bad body,
as knockapi's does. Every error carries ``status``, ``code``, ``type``, ``message`` and
``request_id`` (``None`` where it does not apply): branch on ``code``, never on ``message``,
and quote ``request_id`` to Knock support. No error ever holds the API key or the headers.

``operation_may_have_started`` is ``True`` on an error of the bulk POST that may have started
an operation all the same (a 5xx, a connection dropped after sending, a timeout, a 2xx with an
unreadable body); its message then says what is safe to do next. ``False`` means the POST
certainly started nothing (a 4xx such as 429, a connection that failed before sending), or the
error is not about a POST.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._handle import BulkOperationHandle
from ._retry import Failure

if TYPE_CHECKING:
    from ._progress import Progress

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BulkOperationFailedError",
    "ClientClosedError",
    "InternalServerError",
    "KnockError",
    "NotFoundError",
    "PermissionDeniedError",
    "PollTimeoutError",
    "RateLimitError",
    "RateLimiterTimeoutError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "UnprocessableEntityError",
]

MAY_HAVE_STARTED = (
    "this POST may have started a bulk operation although it failed (Knock ignores "
    "idempotency keys here): sending it again can run the update twice. Check the channel's "
    "messages (or Knock's dashboard) before retrying, and retry automatically only for an "
    "idempotent action, with RetryPolicy(retry_ambiguous_post=True)"
)


class KnockError(Exception):
    """Root of every error raised by ``knock_async``."""

    status: int | None = None
    code: str | None = None
    type: str | None = None
    request_id: str | None = None
    # Set by the transport on the errors of a POST that may have started an operation.
    operation_may_have_started: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        type: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.type = type
        self.request_id = request_id

    def _summary(self) -> str:
        return self.message

    def __str__(self) -> str:
        text = self._summary()
        if self.request_id:
            text += f" (request_id={self.request_id})"
        if self.operation_may_have_started:
            text += f"; {MAY_HAVE_STARTED}"
        return text


class APIError(KnockError):
    """One API request went wrong: an error status, no answer at all, or an answer whose body
    is not what the spec says (knockapi's ``APIError``)."""


class APIStatusError(APIError):
    """Knock answered with an error status: ``status_code`` (also ``status``) is always set."""

    status: int

    @property
    def status_code(self) -> int:
        """The HTTP status Knock answered (knockapi's name for ``status``)."""
        return self.status

    def _summary(self) -> str:
        head = f"HTTP {self.status}"
        if self.code:
            head += f" {self.code}"
        if self.type:
            head += f" ({self.type})"
        return f"{head}: {self.message}"


class BadRequestError(APIStatusError):
    """400: the request was malformed (a body that is not JSON, an unknown parameter)."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, unknown or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this (a public ``pk_`` key on a server-side endpoint)."""


class NotFoundError(APIStatusError):
    """404: unknown channel or bulk operation, or an unrouted path."""


class UnprocessableEntityError(APIStatusError):
    """422: the request failed Knock's validation (``code`` is usually ``invalid_params``)."""


class RateLimitError(APIStatusError):
    """429. ``retry_after`` is the server's hint in seconds, ``None`` when it gave none."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class InternalServerError(APIStatusError):
    """5xx: Knock failed; GETs are retried, the bulk POST only where that is safe."""


class APIConnectionError(APIError):
    """The request did not get an HTTP answer: DNS, refused connection, reset, TLS.

    ``failure`` says whether the request may have reached the server: ``Failure.NOT_SENT``
    when connecting failed, ``CONNECTION`` or ``TIMEOUT`` when it may have been acted on.
    """

    def __init__(self, message: str, *, failure: Failure = Failure.CONNECTION) -> None:
        super().__init__(message)
        self.failure = failure


class APITimeoutError(APIConnectionError):
    """The per-request timeout ran out before an answer came."""


class RateLimiterTimeoutError(APITimeoutError):
    """The client's own rate limiter could not let the request out within its timeout: more
    requests were queued on one client than its ``RateLimits`` send in that time (e.g.
    thousands of gathered ``update_message_status`` calls). Nothing was sent
    (``Failure.NOT_SENT``). ``channels.bulk.update_many`` is the way to send many updates.

    ``opens_in``: seconds until the limiter's next free slot, when it can tell.
    """

    def __init__(self, message: str, *, opens_in: float | None = None) -> None:
        super().__init__(message, failure=Failure.NOT_SENT)
        self.opens_in = opens_in


class DeadlineError(APITimeoutError):
    """The caller's deadline passed (or would, waiting in the client's rate limiter) before
    the request could be sent. Not public: followers turn it into ``PollTimeoutError``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, failure=Failure.NOT_SENT)


class APIResponseValidationError(APIError):
    """A response body is not what the spec says: invalid JSON, missing or mistyped fields.

    ``errors`` lists cattrs' readable messages with their paths, e.g.
    ``"expected int @ $.processed_rows"``.
    """

    def __init__(self, message: str, *, errors: list[str] | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.errors = list(errors or ())


# The name this library used before it took knockapi's.
ResponseValidationError = APIResponseValidationError


class ResponseTooLargeError(APIResponseValidationError):
    """A response body was larger than ``KnockClient(max_response_bytes=...)`` (``limit``).

    It was not read whole: refused from its ``Content-Length`` or cut off as it streamed in
    (after decompression), and its connection dropped.
    """

    def __init__(self, message: str, *, limit: int, **kw: object) -> None:
        super().__init__(message, errors=[f"body larger than {limit} bytes @ $"], **kw)
        self.limit = limit


class ClientClosedError(KnockError, RuntimeError):
    """The ``KnockClient`` was used after ``aclose()``, or the ``aiohttp.ClientSession``
    given as ``session=`` is closed. Nothing was sent. (Also a ``RuntimeError``, which is
    what this raised before.)"""


class _PollError(KnockError):
    """Base of the poller's errors: carries what is needed to resume polling."""

    def __init__(self, message: str, *, progress: Progress | None, operation_id: str) -> None:
        super().__init__(message)
        self.progress = progress
        self.operation_id = operation_id

    @property
    def handle(self) -> BulkOperationHandle:
        """What ``bulk_operations.poll`` needs to resume following the operation."""
        if self.progress is not None:
            return self.progress.handle
        return BulkOperationHandle(operation_id=self.operation_id)


class BulkOperationFailedError(_PollError):
    """The bulk operation ended ``failed``; ``progress.operation`` is its final state."""


class PollTimeoutError(_PollError, TimeoutError):
    """The poll's total deadline passed before the operation finished, or the operation did
    not change for ``stall_timeout`` seconds (then ``stalled_for`` is that limit; ``None``
    when the total deadline ended it).

    The operation goes on server-side; ``poll(err.operation_id)`` resumes following it.
    """

    def __init__(
        self,
        message: str,
        *,
        progress: Progress | None,
        operation_id: str,
        stalled_for: float | None = None,
    ) -> None:
        super().__init__(message, progress=progress, operation_id=operation_id)
        self.stalled_for = stalled_for
