"""Knock's error bodies, and the exception that carries one up to the HTTP layer. Pure."""

from __future__ import annotations

from typing import Any

__all__ = [
    "NOT_FOUND_BODY",
    "KnockHTTPError",
    "bad_json",
    "error_body",
    "forbidden",
    "invalid_params",
    "not_found",
    "payload_too_large",
    "rate_limited",
    "unauthenticated",
]

# What Knock answers for a path no route matches (not the usual four-key body).
NOT_FOUND_BODY: dict[str, Any] = {"errors": {"detail": "404 Not Found"}}

# status -> (code, type) for an error body when a test scripts a bare status.
_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "invalid_request_error"),
    401: ("unauthorized", "authentication_error"),
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


def invalid_params(message: str) -> KnockHTTPError:
    return KnockHTTPError(422, error_body(422, "invalid_params", message))


def bad_json(message: str) -> KnockHTTPError:
    return KnockHTTPError(400, error_body(400, "invalid_json", message))


def unauthenticated(message: str) -> KnockHTTPError:
    return KnockHTTPError(401, error_body(401, "api_key_invalid", message))


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
