"""Interpreting responses: (status, headers, body) into a model or a typed error. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._convert import loads_operation
from ._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    UnprocessableEntityError,
)
from ._models import BulkOperation
from ._retry import parse_retry_after

__all__ = ["Answer", "error_from_response", "operation_from_answer", "operation_from_response"]

_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

# Only this much of a body that is not Knock's error JSON is quoted in a message.
_SNIPPET = 200


def _request_id(headers: Mapping[str, str]) -> str | None:
    return headers.get("x-request-id") or headers.get("X-Request-Id")


class Answer:
    """One HTTP answer, read once by the transport: everything the facade and the followers
    need from it, with the headers they look at parsed here and nowhere else.

    ``headers`` must be case-insensitive (aiohttp's) or use lowercase names. ``retry_after``
    is the server's hint in seconds (``retry-after-ms`` or ``retry-after``), ``None`` without
    one; ``request_id`` is Knock's ``x-request-id``. Both are parsed on first use and kept:
    most answers (a 200 to a POST) never need them.
    """

    __slots__ = ("_request_id", "_retry_after", "body", "headers", "status")
    _retry_after: float | None
    _request_id: str | None

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def retry_after(self) -> float | None:
        """The server's Retry-After in seconds, ``None`` without a usable one."""
        try:
            return self._retry_after
        except AttributeError:  # first read: the slot is left unset until then
            value = self._retry_after = parse_retry_after(self.headers)
            return value

    @property
    def request_id(self) -> str | None:
        """Knock's ``x-request-id``, for support."""
        try:
            return self._request_id
        except AttributeError:
            value = self._request_id = _request_id(self.headers)
            return value

    def __repr__(self) -> str:
        return f"<Answer status={self.status} request_id={self.request_id!r}>"

    @property
    def ok(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status < 300


def operation_from_answer(
    answer: Answer, *, channel_id: str | None = None, action: str | None = None
) -> BulkOperation:
    """The ``BulkOperation`` a 2xx answer carries (with the caller's ``channel_id`` and
    ``action``, which the server's answer does not hold), or the typed error for any other."""
    if not answer.ok:
        raise error_from_response(answer.status, answer.headers, answer.body)
    try:
        return loads_operation(answer.body, channel_id=channel_id, action=action)
    except ResponseValidationError as exc:
        exc.status = answer.status
        exc.request_id = answer.request_id
        raise


def operation_from_response(
    status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
) -> BulkOperation:
    """The ``BulkOperation`` a 2xx response carries, or the typed error for any other status.

    ``headers`` must be case-insensitive (aiohttp's) or use lowercase names.
    """
    if not 200 <= status < 300:
        raise error_from_response(status, headers, body, now=now)
    try:
        return loads_operation(body)
    except ResponseValidationError as exc:
        exc.status = status
        exc.request_id = _request_id(headers)
        raise


def _error_fields(body: bytes) -> tuple[str | None, str | None, str | None]:
    """``(code, type, message)`` from Knock's error body, either of its two shapes."""
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):
        text = body[:_SNIPPET].decode("utf-8", "replace").strip()
        return None, None, text or None
    if not isinstance(data, dict):
        return None, None, None
    errors = data.get("errors")
    if isinstance(errors, dict) and "detail" in errors:
        # The shape of an unrouted path: {"errors": {"detail": "404 Not Found"}}.
        return None, None, str(errors["detail"])
    code, kind, message = data.get("code"), data.get("type"), data.get("message")
    return (
        code if isinstance(code, str) else None,
        kind if isinstance(kind, str) else None,
        message if isinstance(message, str) else None,
    )


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
) -> APIStatusError:
    """The ``APIStatusError`` subclass for an error response, with Knock's code, type and
    message."""
    code, kind, message = _error_fields(body)
    fields: dict[str, Any] = {
        "status": status,
        "code": code,
        "type": kind,
        "request_id": _request_id(headers),
    }
    text = message or f"Knock answered HTTP {status} with no error message"
    if status == 429:
        return RateLimitError(text, retry_after=parse_retry_after(headers, now=now), **fields)
    cls = _BY_STATUS.get(status, InternalServerError if status >= 500 else APIStatusError)
    return cls(text, **fields)
