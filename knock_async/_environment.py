"""Which Knock environment a base URL names: one spelling per environment. Pure.

Knock's rate limits are per environment, so everything that keys a budget on the base URL
(``knock_async.redis.environment_key_prefix``, the CLI, the client) must see one string for
``https://api.knock.app``, ``https://API.knock.app/`` and ``https://api.knock.app:443``.
"""

from __future__ import annotations

from yarl import URL

__all__ = ["canonical_base_url"]


def canonical_base_url(base_url: str | URL) -> str:
    """``base_url`` as ``scheme://host[:port][/path]``: scheme and host lower-case, the
    scheme's default port dropped, no trailing slash, no userinfo, query or fragment.

    ``ValueError`` for anything that is not an absolute http(s) URL (the message never quotes
    the URL, which may carry a password); ``TypeError`` for anything that is not a string or a
    ``yarl.URL``.
    """
    if isinstance(base_url, str):
        try:
            url = URL(base_url)
        except ValueError:
            raise ValueError("base_url is not a valid URL") from None
    elif isinstance(base_url, URL):
        url = base_url
    else:
        raise TypeError(f"base_url must be a str or a yarl.URL, got {type(base_url).__name__}")
    scheme = (url.scheme or "").lower()
    host = (url.raw_host or "").lower()
    if scheme not in ("http", "https") or not host:
        raise ValueError("base_url must be an absolute http(s) URL with a host")
    netloc = f"[{host}]" if ":" in host else host
    if url.explicit_port is not None and not url.is_default_port():
        netloc += f":{url.explicit_port}"
    return f"{scheme}://{netloc}{url.raw_path.rstrip('/')}"
