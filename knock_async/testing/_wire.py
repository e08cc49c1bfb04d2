"""Knock's error bodies, and the exception that carries one up to the HTTP layer. Pure.

Documented by Knock (its API reference and error list, and its official SDKs' tests) and
followed exactly here:

- 401 ``api_key_missing`` / ``authentication_error`` / "No valid API key provided" for a
  missing, malformed or unknown key (Knock has no ``api_key_invalid`` code);
- 401 ``incorrect_token_type`` / "You cannot call this endpoint with this token." for a public
  ``pk_`` key on a server-side endpoint;
- 422 ``invalid_params`` / "One or more parameters supplied were invalid" with an ``errors``
  list of ``{"field", "message", "type": null}``;
- 404 ``{"errors": {"detail": "404 Not Found"}}`` for a path no route matches.

Inferred (Knock documents no body for them): 404 ``resource_missing`` for an unknown channel or
operation, and the 400, 413, 429 and 5xx bodies, which follow the same four-key shape.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .._models import BulkOperation

__all__ = [
    "NOT_FOUND_BODY",
    "format_timestamp",
    "operation_body",
    "render_operation",
    "KnockHTTPError",
    "bad_json",
    "error_body",
    "forbidden",
    "incorrect_token_type",
    "invalid_fields",
    "invalid_params",
    "not_found",
    "payload_too_large",
    "rate_limited",
    "unauthenticated",
]

# What Knock answers for a path no route matches (not the usual four-key body).
NOT_FOUND_BODY: dict[str, Any] = {"errors": {"detail": "404 Not Found"}}


def format_timestamp(value: datetime | None) -> str | None:
    """Knock's timestamp form: UTC with microseconds, ``2025-01-01T00:00:00.000000Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def operation_body(operation: BulkOperation) -> dict[str, Any]:
    """The JSON object of a ``BulkOperation`` as Knock sends it."""
    return {
        "__typename": operation.typename,
        "id": operation.id,
        "name": operation.name,
        "status": operation.status.value,
        "estimated_total_rows": operation.estimated_total_rows,
        "processed_rows": operation.processed_rows,
        "success_count": operation.success_count,
        "error_count": operation.error_count,
        "error_items": [{"id": i.id, "collection": i.collection} for i in operation.error_items],
        "progress_path": operation.progress_path,
        "inserted_at": format_timestamp(operation.inserted_at),
        "updated_at": format_timestamp(operation.updated_at),
        "started_at": format_timestamp(operation.started_at),
        "completed_at": format_timestamp(operation.completed_at),
        "failed_at": format_timestamp(operation.failed_at),
    }


def render_operation(operation: BulkOperation) -> bytes:
    """The JSON answer for ``operation``, encoded."""
    return json.dumps(operation_body(operation)).encode()


# status -> (code, type) for an error body when a test scripts a bare status.
_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "invalid_request_error"),
    401: ("api_key_missing", "authentication_error"),
    403: ("forbidden", "authentication_error"),
    404: ("resource_missing", "invalid_request_error"),
    408: ("request_timeout", "api_error"),
    409: ("conflict", "invalid_request_error"),
    413: ("payload_too_large", "invalid_request_error"),
    422: ("invalid_params", "invalid_request_error"),
    429: ("rate_limit_exceeded", "rate_limit_error"),
}


def error_body(status: int, code: str | None = None, message: str | None = None) -> dict[str, Any]:
    """Knock's four-key error body; ``code`` and ``message`` default from the status."""
    default_code, kind = _DEFAULTS.get(status, ("internal_server_error", "api_error"))
    if status < 500 and status not in _DEFAULTS:
        default_code, kind = "bad_request", "invalid_request_error"
    return {
        "code": code or default_code,
        "message": message or f"The request failed with status {status}.",
        "status": status,
        "type": kind,
    }


class KnockHTTPError(Exception):
    """An error answer: ``status`` and the JSON ``body`` to send."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", body))
        self.status = status
        self.body = body


INVALID_PARAMS_MESSAGE = "One or more parameters supplied were invalid"
API_KEY_MISSING_MESSAGE = "No valid API key provided"
INCORRECT_TOKEN_TYPE_MESSAGE = "You cannot call this endpoint with this token."  # noqa: S105


def invalid_params(field: str, message: str) -> KnockHTTPError:
    """422 ``invalid_params``: Knock's fixed message, and ``errors`` naming the ``field``."""
    return invalid_fields([(field, message)])


def invalid_fields(problems: list[tuple[str, str]]) -> KnockHTTPError:
    """422 ``invalid_params`` with one ``errors`` entry per ``(field, message)``."""
    body = error_body(422, "invalid_params", INVALID_PARAMS_MESSAGE)
    body["errors"] = [{"field": f, "message": m, "type": None} for f, m in problems]
    return KnockHTTPError(422, body)


def bad_json(message: str) -> KnockHTTPError:
    return KnockHTTPError(400, error_body(400, "invalid_json", message))


def unauthenticated() -> KnockHTTPError:
    return KnockHTTPError(401, error_body(401, "api_key_missing", API_KEY_MISSING_MESSAGE))


def incorrect_token_type() -> KnockHTTPError:
    body = error_body(401, "incorrect_token_type", INCORRECT_TOKEN_TYPE_MESSAGE)
    return KnockHTTPError(401, body)


def forbidden(message: str) -> KnockHTTPError:
    return KnockHTTPError(403, error_body(403, "forbidden", message))


def not_found(message: str) -> KnockHTTPError:
    return KnockHTTPError(404, error_body(404, "resource_missing", message))


def payload_too_large(limit: int) -> KnockHTTPError:
    message = f"The request body is larger than the limit of {limit} bytes."
    return KnockHTTPError(413, error_body(413, "payload_too_large", message))


def rate_limited() -> KnockHTTPError:
    message = "Rate limit exceeded. Slow down and retry the request later."
    return KnockHTTPError(429, error_body(429, "rate_limit_exceeded", message))
