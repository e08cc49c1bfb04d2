"""Bearer API keys, checked as Knock does for server-side endpoints. Pure."""

from __future__ import annotations

from collections.abc import Collection

from ._wire import forbidden, unauthenticated

__all__ = ["authenticate", "redact_authorization"]


def authenticate(header: str | None, *, api_keys: Collection[str] | None) -> str:
    """The API key of an ``Authorization`` header allowed on a server-side endpoint.

    Missing, malformed or unknown key: 401. With ``api_keys=None`` every ``sk_``/``pk_`` key is
    known; otherwise exactly the listed keys are. A known public (``pk_``) key: 403.
    """
    if not header:
        raise unauthenticated(
            "Missing API key: send it as an `Authorization: Bearer <key>` header."
        )
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise unauthenticated("Malformed Authorization header: expected `Bearer <key>`.")
    known = key in api_keys if api_keys is not None else key.startswith(("sk_", "pk_"))
    if not known:
        raise unauthenticated("The API key provided is invalid.")
    if key.startswith("pk_"):
        raise forbidden(
            "Public API keys (pk_...) cannot be used for this endpoint; use a secret key (sk_...)."
        )
    return key


def redact_authorization(value: str) -> str:
    """The header with its credentials replaced: ``Bearer [REDACTED]``."""
    scheme, sep, _ = value.strip().partition(" ")
    return f"{scheme} [REDACTED]" if sep else "[REDACTED]"
