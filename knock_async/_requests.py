"""Building requests: URLs, headers and bodies, from validated arguments. Pure, no I/O.

The rules that keep the API key safe live here: the base URL must be HTTPS unless it is on
loopback (or the caller opts in), and every URL a request goes to is on the base URL's origin;
a ``progress_path`` on another origin is rewritten onto it rather than followed.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

import attrs
from multidict import CIMultiDict
from yarl import URL

from ._convert import dumps_request
from ._environment import canonical_base_url
from ._models import BulkAction, BulkUpdateMessagesForChannelRequest, parse_action
from ._ratelimit import Tier
from ._version import __version__

__all__ = [
    "BULK_UPDATE_ROUTE",
    "DEFAULT_BASE_URL",
    "OPERATION_ROUTE",
    "BulkUpdateRequest",
    "OperationRequest",
    "PollTarget",
    "Request",
    "bulk_request",
    "bulk_update_request",
    "get_operation_request",
    "make_headers",
    "operation_request",
    "parse_base_url",
    "resolve_poll_target",
    "operation_poll_target",
]

DEFAULT_BASE_URL = "https://api.knock.app"
USER_AGENT = f"knock-async/{__version__}"
# The route templates: what hooks, metrics and spans name a request by (no ids in labels).
BULK_UPDATE_ROUTE = "/v1/channels/{channel_id}/messages/bulk/{action}"
OPERATION_ROUTE = "/v1/bulk_operations/{id}"


class Headers(CIMultiDict[str]):
    """Request headers whose repr hides the credentials, so that no traceback with local
    variables, debugger or ``vars(client)`` shows the API key. A ``CIMultiDict`` already, so
    aiohttp does not convert it again on every request."""

    def __repr__(self) -> str:
        shown = {k: ("<redacted>" if k.lower() == "authorization" else v) for k, v in self.items()}
        return f"Headers({shown!r})"


@attrs.frozen(init=False)
class Request:
    """One HTTP request, ready to send. What it is belongs to its class: ``method``, its
    ``route`` template (what hooks and metrics name it by) and the rate-limit ``tier`` it
    counts against; what it carries is its own: ``url``, ``headers``, ``body``. (Class
    attributes cost a poller, which holds its request for its whole life, no memory.)"""

    method: ClassVar[str]
    route: ClassVar[str]
    tier: ClassVar[Tier]
    url: URL
    headers: Mapping[str, str]
    body: bytes | None

    def __init__(self, url: URL, headers: Mapping[str, str], body: bytes | None) -> None:
        # Built once per request: the slots are set through their descriptors, which spares
        # the class look-up object.__setattr__ (a frozen class's way) makes per field.
        _set_url(self, url)
        _set_headers(self, headers)
        _set_body(self, body)


def _slot_setter(cls: type[Any], name: str) -> Any:
    descriptor: Any = getattr(cls, name)  # a slot's member descriptor, from the MRO
    return descriptor.__set__


_set_url = _slot_setter(Request, "url")
_set_headers = _slot_setter(Request, "headers")
_set_body = _slot_setter(Request, "body")


@attrs.frozen(init=False)
class OperationRequest(Request):
    """``GET /v1/bulk_operations/{id}``."""

    method: ClassVar[str] = "GET"
    route: ClassVar[str] = OPERATION_ROUTE
    tier: ClassVar[Tier] = Tier.GET


@attrs.frozen(init=False)
class BulkUpdateRequest(Request):  # type: ignore[override]  # attrs.frozen(init=False) types an __attrs_init__ that is never made
    """``POST /v1/channels/{channel_id}/messages/bulk/{action}``, naming its ``channel_id``
    and ``action``, which Knock's answer does not repeat: the operation it returns is built
    with them."""

    method: ClassVar[str] = "POST"
    route: ClassVar[str] = BULK_UPDATE_ROUTE
    tier: ClassVar[Tier] = Tier.POST
    channel_id: str
    action: str

    def __init__(
        self, url: URL, headers: Mapping[str, str], body: bytes, channel_id: str, action: str
    ) -> None:
        _set_url(self, url)
        _set_headers(self, headers)
        _set_body(self, body)
        _set_channel_id(self, channel_id)
        _set_action(self, action)


_set_channel_id = _slot_setter(BulkUpdateRequest, "channel_id")
_set_action = _slot_setter(BulkUpdateRequest, "action")


@attrs.frozen
class PollTarget:
    """Where to poll an operation. ``foreign_origin`` is set when a ``progress_path`` pointed
    at another origin and was rewritten onto the base URL."""

    url: URL
    operation_id: str
    foreign_origin: str | None = None


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# A leading http(s) scheme and its separators, however mistyped (``https//``, ``https:/``):
# letters and slashes only, so never a user name or a password.
_SCHEME_PREFIX = re.compile(r"(?i)https?[:/\\]+")


def _shown(base_url: object) -> str:
    """``base_url`` as a message may quote it, however malformed: nothing that may be its
    userinfo, query or fragment, where a password or a token may sit.

    Only what lies after the last ``@`` (or ``%40``) and before the first ``?`` or ``#`` is
    shown, after a leading http(s) scheme: a string that does not parse as a URL cannot say
    where its userinfo ends, so everything that could be one is left out.
    """
    text = str(base_url)
    ends = [i for i in (text.find("?"), text.find("#")) if i >= 0]
    cut = min(ends, default=len(text))
    encoded_at = text.lower().rfind("%40")
    start = max(text.rfind("@") + 1, encoded_at + 3 if encoded_at >= 0 else 0)
    if start == 0:
        return text[:cut]
    scheme = _SCHEME_PREFIX.match(text)
    head = scheme.group() if scheme is not None and scheme.end() <= min(start, cut) else ""
    return f"{head}<redacted>@{text[start:cut]}" if start <= cut else f"{head}<redacted>"


def parse_base_url(
    base_url: str | URL, *, allow_insecure_http: bool = False, name: str = "base_url"
) -> URL:
    """The base URL as a ``yarl.URL`` with no trailing slash, or ``ValueError`` saying why not.

    ``name`` is where the value came from (``base_url`` or ``KNOCK_BASE_URL``), for the
    message; no message quotes the URL's userinfo, query or fragment.
    """
    try:
        url = URL(base_url) if isinstance(base_url, str) else base_url
        absolute = url.is_absolute() and url.scheme in ("http", "https") and bool(url.host)
    except (TypeError, ValueError):
        absolute = False
    if not absolute:
        raise ValueError(f"{name} must be an absolute http(s) URL, got {_shown(base_url)!r}")
    if url.user or url.password or "@" in url.raw_path:
        # An "@" in the path is userinfo that a stray "/" moved there (user:/password@host).
        raise ValueError(f"{name} must not contain credentials; pass api_key instead")
    if url.query_string or url.fragment:
        raise ValueError(f"{name} must not have a query or fragment ({_shown(base_url)}?...)")
    if url.scheme == "http" and not allow_insecure_http and not _is_loopback(url.host):
        # The API key would cross the network in clear text.
        raise ValueError(
            f"{name} {_shown(url)!r} uses plain http on a non-loopback host; use https, "
            "or pass allow_insecure_http=True if you really mean it"
        )
    # One spelling per environment (lower-case, no default port, no trailing slash): the
    # budgets keyed on it (a shared limiter's prefix) are then one per environment too.
    return URL(canonical_base_url(url), encoded=True)


def make_headers(api_key: str, *, branch: str | None) -> tuple[Headers, Headers]:
    """The headers for GET requests and for requests with a JSON body, built once per client."""
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValueError("api_key must be a non-empty string")
    if any(ch in api_key for ch in "\r\n\t ") or not api_key.isprintable():
        # Never echo the key itself, not even in an error about it.
        raise ValueError("api_key contains whitespace or control characters")
    headers = Headers(
        {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
    )
    if branch is not None:
        if not isinstance(branch, str) or not branch or not branch.isprintable():
            raise ValueError(f"branch must be a non-empty printable string, got {branch!r}")
        headers["X-Knock-Branch"] = branch
    return headers, Headers({**headers, "Content-Type": "application/json"})


def parse_channel_id(channel_id: object) -> str:
    """``channel_id`` in canonical UUID form; it becomes part of a path, so nothing else goes."""
    if isinstance(channel_id, uuid.UUID):
        return str(channel_id)
    if not isinstance(channel_id, str):
        raise TypeError(f"channel_id must be a UUID string, got {type(channel_id).__name__}")
    if _CANONICAL_UUID.fullmatch(channel_id):
        return channel_id
    try:
        return str(uuid.UUID(channel_id))
    except ValueError:
        raise ValueError(f"channel_id must be a UUID, got {channel_id!r}") from None


def parse_operation_id(operation_id: object) -> str:
    if not isinstance(operation_id, str):
        raise TypeError(f"id must be a str, got {type(operation_id).__name__}")
    if not operation_id or "/" in operation_id or operation_id in (".", ".."):
        raise ValueError(f"id must be a bulk operation id, got {operation_id!r}")
    return operation_id


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def encode_body(body: BulkUpdateMessagesForChannelRequest) -> bytes:
    """The request body as compact JSON bytes (orjson with the ``speedups`` extra)."""
    return dumps_request(body)


def on_base(base_url: URL, path: str) -> URL:
    """``path`` (already encoded, from ``/``) under the base URL's own path prefix. A new path
    on the parsed base URL: parsing a whole URL string again costs three times as much."""
    return base_url.with_path(base_url.raw_path.rstrip("/") + path, encoded=True)


def bulk_request(
    base_url: URL, headers: Mapping[str, str], channel_id: str, action: str, body: bytes
) -> Request:
    """``POST /v1/channels/{channel_id}/messages/bulk/{action}`` on ``base_url``, for a
    channel id and an action already checked (a canonical UUID, a ``BulkAction`` value), so
    no segment needs quoting. The one place the bulk URL is built."""
    url = on_base(base_url, f"/v1/channels/{channel_id}/messages/bulk/{action}")
    return BulkUpdateRequest(url, headers, body, channel_id, action)


def bulk_update_request(
    base_url: URL,
    headers: Mapping[str, str],
    channel_id: object,
    action: object,
    filters: BulkUpdateMessagesForChannelRequest | Mapping[str, Any],
) -> Request:
    """``bulk_request`` from unchecked arguments: raises ``ValueError``/``TypeError`` naming
    the argument for any bad input."""
    channel = parse_channel_id(channel_id)
    act: BulkAction = parse_action(action)
    body = (
        filters
        if isinstance(filters, BulkUpdateMessagesForChannelRequest)
        else BulkUpdateMessagesForChannelRequest(**filters)
    )
    return bulk_request(base_url, headers, channel, act.value, encode_body(body))


def operation_request(url: URL, headers: Mapping[str, str]) -> Request:
    """``GET /v1/bulk_operations/{id}`` at ``url`` (built by ``resolve_poll_target`` or
    ``get_operation_request``)."""
    return OperationRequest(url, headers, None)


def get_operation_request(base_url: URL, headers: Mapping[str, str], operation_id: str) -> Request:
    """``GET /v1/bulk_operations/{id}`` on ``base_url``."""
    url = on_base(base_url, f"/v1/bulk_operations/{_quoted(operation_id)}")
    return operation_request(url, headers)


# RFC 3986's unreserved characters: an id made of these alone is its own quoted form.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _quoted(operation_id: object) -> str:
    """A checked operation id as one path segment: quoted, unless nothing in it needs it."""
    checked = parse_operation_id(operation_id)
    return checked if _UNRESERVED.issuperset(checked) else quote(checked, safe="")


def _same_origin(a: URL, b: URL) -> bool:
    # yarl's .port is the effective port, so "https://h" and "https://h:443" match.
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def resolve_poll_target(base_url: URL, target: str) -> PollTarget:
    """Where to poll, from an operation id or a ``progress_path`` (absolute or relative).

    The result is always on the base URL, under its path prefix if it has one. A
    ``progress_path`` on another origin is never followed with the key: its path is polled on
    the base URL and ``foreign_origin`` says so, for the caller to warn. The path must name a
    bulk operation (``.../bulk_operations/<id>``) with no dot segments, so a path from a server
    or a queued handle cannot steer the key to another endpoint.
    """
    if not isinstance(target, str) or not target:
        raise TypeError(f"poll target must be an operation, an id or a progress_path: {target!r}")
    if "/" not in target:
        return PollTarget(on_base(base_url, f"/v1/bulk_operations/{_quoted(target)}"), target)
    parts = urlsplit(target)
    if parts.scheme and parts.scheme not in ("http", "https"):
        raise ValueError(f"progress_path must be an http(s) URL or a path, got {target!r}")
    segments = parts.path.split("/")
    if any(unquote(seg) in (".", "..") or "/" in unquote(seg) for seg in segments):
        raise ValueError(f"progress_path must not contain dot segments: {target!r}")
    named = [seg for seg in segments if seg]
    if len(named) < 2 or named[-2] != "bulk_operations":
        raise ValueError(f"progress_path does not name a bulk operation: {target!r}")
    foreign: str | None = None
    if parts.netloc:
        origin = URL(target).origin()
        if not _same_origin(origin, base_url):
            foreign = str(origin)
    prefix = base_url.raw_path.rstrip("/")
    path = parts.path if parts.path.startswith("/") else "/" + parts.path
    if prefix and not path.startswith(prefix + "/"):
        path = prefix + path
    return PollTarget(base_url.with_path(path, encoded=True), unquote(named[-1]), foreign)


def operation_poll_target(
    base_url: URL, operation_id: str, progress_path: str | None
) -> PollTarget:
    """Where to poll a known operation: its ``progress_path``, or its id when the server sent
    no usable path (a server's odd path must not stop a poll that the id can do). Only an
    absolute path or an http(s) URL counts as a path: anything else (``"null"``) would
    otherwise be taken for an operation id."""
    if isinstance(progress_path, str) and progress_path.startswith(("/", "http://", "https://")):
        try:
            target = resolve_poll_target(base_url, progress_path)
        except (TypeError, ValueError):
            pass
        else:
            return attrs.evolve(target, operation_id=operation_id)
    return resolve_poll_target(base_url, parse_operation_id(operation_id))
