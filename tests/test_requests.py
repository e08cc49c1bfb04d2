"""Building requests: URLs, headers, bodies, and the rules that keep the key at home."""

from __future__ import annotations

import json
import uuid

import pytest
from yarl import URL

from knock_async._models import BulkUpdateMessagesForChannelRequest
from knock_async._requests import (
    USER_AGENT,
    bulk_update_request,
    get_operation_request,
    make_headers,
    operation_poll_target,
    parse_base_url,
    resolve_poll_target,
)
from knock_async._version import __version__

BASE_URL = URL("https://api.knock.app")
BASE = str(BASE_URL)
CHANNEL = "7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c11"


def test_headers() -> None:
    """GETs carry auth, user agent and Accept; bodies add Content-Type; a branch is sent."""
    get, post = make_headers("sk_test", branch="feature-x")
    assert get == {
        "Authorization": "Bearer sk_test",
        "User-Agent": f"knock-async/{__version__}",
        "Accept": "application/json",
        "X-Knock-Branch": "feature-x",
    }
    assert post == {**get, "Content-Type": "application/json"}
    assert "X-Knock-Branch" not in make_headers("sk_test", branch=None)[0]
    assert f"knock-async/{__version__}" == USER_AGENT


@pytest.mark.parametrize("key", ["", "  ", "sk_a\r\nX-Evil: 1", "sk a"])
def test_bad_keys_are_refused_without_echoing_them(key: str) -> None:
    """An empty key or one that could inject headers is refused; the message omits the key."""
    with pytest.raises(ValueError, match="api_key") as info:
        make_headers(key, branch=None)
    assert key.strip() == "" or key not in str(info.value)


def test_bulk_update_request_wire_form() -> None:
    """The POST goes to /v1/channels/{uuid}/messages/bulk/{action} with the JSON body."""
    _, post = make_headers("sk_test", branch=None)
    body = BulkUpdateMessagesForChannelRequest(archived="exclude", recipient_ids=["u1"])
    request = bulk_update_request(BASE_URL, post, CHANNEL.upper(), "archive", body)
    assert request.method == "POST"
    assert str(request.url) == f"https://api.knock.app/v1/channels/{CHANNEL}/messages/bulk/archive"
    assert request.headers is post
    assert request.body is not None
    assert json.loads(request.body) == {"archived": "exclude", "recipient_ids": ["u1"]}
    assert request.tier == "post"


def test_bulk_update_request_accepts_uuid_objects_and_filter_mappings() -> None:
    """A uuid.UUID channel id and a plain mapping of filters are accepted."""
    request = bulk_update_request(BASE_URL, {}, uuid.UUID(CHANNEL), "read", {"has_tenant": True})
    assert request.url.path.endswith(f"{CHANNEL}/messages/bulk/read")
    assert request.body == b'{"has_tenant":true}'


@pytest.mark.parametrize(
    ("channel", "action", "error", "text"),
    [
        ("../../v1/users", "archive", ValueError, "channel_id must be a UUID"),
        ("not-a-uuid", "archive", ValueError, "channel_id must be a UUID"),
        (12, "archive", TypeError, "channel_id must be a UUID string"),
        (CHANNEL, "archive/../../x", ValueError, "action must be one of"),
        (CHANNEL, "ARCHIVE", ValueError, "action must be one of"),
    ],
)
def test_bad_path_parts_fail_before_any_request(
    channel: object, action: object, error: type[Exception], text: str
) -> None:
    """channel_id is validated as a UUID and action against the enum before a URL is made."""
    with pytest.raises(error, match=text):
        bulk_update_request(BASE_URL, {}, channel, action, {})


def test_get_operation_request_quotes_the_id() -> None:
    """GET /v1/bulk_operations/{id}; an id cannot smuggle path segments."""
    request = get_operation_request(BASE_URL, {}, "op 1")
    assert request.method == "GET"
    assert request.url.raw_path == "/v1/bulk_operations/op%201"
    assert request.body is None
    with pytest.raises(ValueError, match="id must be"):
        get_operation_request(BASE_URL, {}, "../users")
    with pytest.raises(ValueError, match="id must be"):
        get_operation_request(BASE_URL, {}, "")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://api.knock.app", "https://api.knock.app"),
        ("https://api.knock.app/", "https://api.knock.app"),
        ("https://proxy.example/knock/", "https://proxy.example/knock"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:3000/", "http://localhost:3000"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_base_urls_accepted(raw: str, expected: str) -> None:
    """HTTPS anywhere and plain HTTP on loopback are accepted, trailing slash dropped."""
    assert str(parse_base_url(raw)) == expected


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("http://api.knock.app", "plain http on a non-loopback host"),
        ("http://10.0.0.5:8080", "plain http on a non-loopback host"),
        ("ftp://api.knock.app", "absolute http"),
        ("api.knock.app", "absolute http"),
        ("https://user:pw@api.knock.app", "credentials"),
        ("https://api.knock.app/?a=1", "query"),
    ],
)
def test_base_urls_refused(raw: str, text: str) -> None:
    """Plain HTTP off loopback, non-HTTP schemes and URLs with credentials are refused."""
    with pytest.raises(ValueError, match=text):
        parse_base_url(raw)


def test_refused_base_url_does_not_echo_its_query() -> None:
    """A token put in the base URL's query string is not repeated in the error."""
    with pytest.raises(ValueError, match="query") as info:
        parse_base_url("https://api.knock.app/?token=SECRET")
    assert "SECRET" not in str(info.value)


def test_insecure_http_opt_in() -> None:
    """allow_insecure_http=True lets a plain-HTTP base URL through."""
    assert str(parse_base_url("http://knock.internal", allow_insecure_http=True)) == (
        "http://knock.internal"
    )


@pytest.mark.parametrize(
    ("target", "url", "operation_id", "foreign"),
    [
        ("abc", "https://api.knock.app/v1/bulk_operations/abc", "abc", None),
        ("/v1/bulk_operations/abc", "https://api.knock.app/v1/bulk_operations/abc", "abc", None),
        (
            "https://api.knock.app/v1/bulk_operations/abc",
            "https://api.knock.app/v1/bulk_operations/abc",
            "abc",
            None,
        ),
        (
            "https://api.switchboard.com/v1/bulk_operations/abc",
            "https://api.knock.app/v1/bulk_operations/abc",
            "abc",
            "https://api.switchboard.com",
        ),
        (
            "http://api.knock.app/v1/bulk_operations/abc",
            "https://api.knock.app/v1/bulk_operations/abc",
            "abc",
            "http://api.knock.app",
        ),
    ],
)
def test_poll_targets(target: str, url: str, operation_id: str, foreign: str | None) -> None:
    """Ids and progress paths resolve onto the base URL; another origin is flagged, not used."""
    resolved = resolve_poll_target(BASE_URL, target)
    assert str(resolved.url) == url
    assert resolved.url.origin() == BASE_URL.origin()
    assert resolved.operation_id == operation_id
    assert resolved.foreign_origin == foreign


def test_poll_target_rejects_other_schemes() -> None:
    """A progress_path that is not http(s) or a path is refused."""
    with pytest.raises(ValueError, match="progress_path"):
        resolve_poll_target(BASE_URL, "file:///etc/passwd")


def test_operation_poll_target_prefers_the_progress_path() -> None:
    """A known operation is polled at its progress_path (on the base URL), keeping its id."""
    target = operation_poll_target(BASE_URL, "op-1", "/v1/bulk_operations/other-name")
    assert str(target.url) == "https://api.knock.app/v1/bulk_operations/other-name"
    assert target.operation_id == "op-1"


@pytest.mark.parametrize("path", [None, "", "file:///etc/passwd", "https://api.knock.app/"])
def test_operation_poll_target_falls_back_to_the_id(path: str | None) -> None:
    """No usable progress_path from the server: the operation is polled by its id."""
    target = operation_poll_target(BASE_URL, "op-1", path)
    assert str(target.url) == "https://api.knock.app/v1/bulk_operations/op-1"


@pytest.mark.parametrize(
    ("base", "target", "url"),
    [
        (
            "https://gw.example.com/knock",
            "/v1/bulk_operations/abc",
            "https://gw.example.com/knock/v1/bulk_operations/abc",
        ),
        (
            "https://gw.example.com/knock",
            "https://gw.example.com/knock/v1/bulk_operations/abc",
            "https://gw.example.com/knock/v1/bulk_operations/abc",
        ),
        (
            "https://gw.example.com/knock",
            "https://api.switchboard.com/v1/bulk_operations/abc",
            "https://gw.example.com/knock/v1/bulk_operations/abc",
        ),
        (
            "https://gw.example.com/knock",
            "v1/bulk_operations/abc",
            "https://gw.example.com/knock/v1/bulk_operations/abc",
        ),
    ],
)
def test_poll_targets_keep_the_base_path_prefix(base: str, target: str, url: str) -> None:
    """Behind a gateway with a path prefix, progress paths are polled under that prefix."""
    assert str(resolve_poll_target(parse_base_url(base), target).url) == url


def test_default_port_is_the_same_origin() -> None:
    """https://host and https://host:443 are one origin: no foreign-origin warning."""
    target = resolve_poll_target(BASE_URL, "https://api.knock.app:443/v1/bulk_operations/abc")
    assert target.foreign_origin is None


@pytest.mark.parametrize(
    "target",
    [
        "/v1/bulk_operations/../../admin/keys",
        "/v1/../admin/bulk_operations/x",
        "../../admin/bulk_operations/x",
        "/v1/bulk_operations/%2e%2e",
        "/v1/bulk_operations/a%2Fb",
        "/v1/users/abc",
        "https://api.knock.app/v1/messages",
    ],
)
def test_progress_paths_cannot_steer_the_key_elsewhere(target: str) -> None:
    """A progress_path with dot segments, encoded slashes or not naming a bulk operation is
    refused; for a known operation the poll falls back to its id."""
    with pytest.raises(ValueError, match="progress_path"):
        resolve_poll_target(BASE_URL, target)
    fallback = operation_poll_target(BASE_URL, "op-1", target)
    assert str(fallback.url) == "https://api.knock.app/v1/bulk_operations/op-1"
