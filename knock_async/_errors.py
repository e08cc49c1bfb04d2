"""The exception hierarchy. ``KnockError`` is the root of everything this library raises.

Every error carries ``status``, ``code``, ``type``, ``message`` and ``request_id`` (``None``
where it does not apply), so handlers can branch on ``code`` (never on ``message``) and quote
``request_id`` to Knock support. No error ever holds the API key or the request headers.
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
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BulkOperationFailedError",
    "InternalServerError",
    "KnockError",
    "NotFoundError",
    "PermissionDeniedError",
    "PollTimeoutError",
    "RateLimitError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "UnprocessableEntityError",
]


class KnockError(Exception):
    """Root of every error raised by ``knock_async``."""

    status: int | None = None
    code: str | None = None
    type: str | None = None
    request_id: str | None = None

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

    def __str__(self) -> str:
        parts = [self.message]
        if self.request_id:
            parts.append(f"(request_id={self.request_id})")
        return " ".join(parts)


class APIError(KnockError):
    """Knock answered with an error status. ``status`` is always set."""

    status: int

    def __str__(self) -> str:
        head = f"HTTP {self.status}"
        if self.code:
            head += f" {self.code}"
        if self.type:
            head += f" ({self.type})"
        text = f"{head}: {self.message}"
        if self.request_id:
            text += f" (request_id={self.request_id})"
        return text


class BadRequestError(APIError):
    """400: the request was malformed (a body that is not JSON, an unknown parameter)."""


class AuthenticationError(APIError):
    """401: the API key is missing, unknown or revoked."""


class PermissionDeniedError(APIError):
    """403: the key may not do this (a public ``pk_`` key on a server-side endpoint)."""


class NotFoundError(APIError):
    """404: unknown channel or bulk operation, or an unrouted path."""


class UnprocessableEntityError(APIError):
    """422: the request failed Knock's validation (``code`` is usually ``invalid_params``)."""


class RateLimitError(APIError):
    """429. ``retry_after`` is the server's hint in seconds, ``None`` when it gave none."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class InternalServerError(APIError):
    """5xx: Knock failed; GETs are retried, the bulk POST only where that is safe."""


class APIConnectionError(KnockError):
    """The request did not get an HTTP answer: DNS, refused connection, reset, TLS.

    ``failure`` says whether the request may have reached the server: ``Failure.NOT_SENT``
    when connecting failed, ``CONNECTION`` or ``TIMEOUT`` when it may have been acted on.
    """

    def __init__(self, message: str, *, failure: Failure = Failure.CONNECTION) -> None:
        super().__init__(message)
        self.failure = failure


class APITimeoutError(APIConnectionError):
    """The per-request timeout ran out before an answer came."""


class DeadlineError(APITimeoutError):
    """The caller's deadline passed (or would, waiting in the client's rate limiter) before
    the request could be sent. Not public: followers turn it into ``PollTimeoutError``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, failure=Failure.NOT_SENT)


class ResponseValidationError(KnockError):
    """A response body is not what the spec says: invalid JSON, missing or mistyped fields.

    ``errors`` lists cattrs' readable messages with their paths, e.g.
    ``"expected int @ $.processed_rows"``.
    """

    def __init__(self, message: str, *, errors: list[str] | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.errors = list(errors or ())


class ResponseTooLargeError(ResponseValidationError):
    """A response body was larger than ``KnockClient(max_response_bytes=...)`` (``limit``).

    It was not read whole: refused from its ``Content-Length`` or cut off as it streamed in
    (after decompression), and its connection dropped.
    """

    def __init__(self, message: str, *, limit: int, **kw: object) -> None:
        super().__init__(message, errors=[f"body larger than {limit} bytes @ $"], **kw)
        self.limit = limit


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
    """The poll's total deadline passed before the operation finished.

    The operation goes on server-side; ``poll(err.operation_id)`` resumes following it.
    """
