"""Bearer API keys, checked as Knock does for server-side endpoints. Pure."""

from __future__ import annotations

from collections.abc import Collection

from ._wire import incorrect_token_type, unauthenticated

__all__ = ["authenticate", "redact_authorization"]


def authenticate(header: str | None, *, api_keys: Collection[str] | None) -> str:
    """The API key of an ``Authorization`` header allowed on a server-side endpoint.

    Missing, malformed or unknown key: 401 ``api_key_missing`` (Knock's one code for all
    three). With ``api_keys=None`` every ``sk_``/``pk_`` key is known; otherwise exactly the
    listed keys are. A known public (``pk_``) key: 401 ``incorrect_token_type``.
    """
    if not header:
        raise unauthenticated()
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise unauthenticated()
    known = key in api_keys if api_keys is not None else key.startswith(("sk_", "pk_"))
    if not known:
        raise unauthenticated()
    if key.startswith("pk_"):
        raise incorrect_token_type()
    return key


def redact_authorization(value: str) -> str:
    """The header with its credentials replaced: ``Bearer [REDACTED]``."""
    scheme, sep, _ = value.strip().partition(" ")
    return f"{scheme} [REDACTED]" if sep else "[REDACTED]"
