"""One Knock environment, one shared budget: every spelling of a base URL gets one prefix."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from knock_async._environment import canonical_base_url
from knock_async.redis import environment_key_prefix

KEY = "sk_test_environment"

LABELS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
HOSTS = st.lists(LABELS, min_size=1, max_size=3).map(".".join)
PATHS = st.lists(LABELS, max_size=2).map(lambda parts: "".join(f"/{p}" for p in parts))
PORTS = st.one_of(st.none(), st.integers(min_value=1, max_value=65535))


@st.composite
def spellings(draw: st.DrawFn) -> tuple[str, str]:
    """A base URL in its plain spelling and in another of the same environment: scheme and
    host in mixed case, the default port written out, trailing slashes."""
    scheme = draw(st.sampled_from(["http", "https"]))
    host, path, port = draw(HOSTS), draw(PATHS), draw(PORTS)
    default = 80 if scheme == "http" else 443
    if port == default:
        port = None
    plain = f"{scheme}://{host}{'' if port is None else f':{port}'}{path}"

    def mixed(text: str) -> str:
        flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
        return "".join(c.upper() if flip else c for c, flip in zip(text, flips, strict=True))

    written_port = port if port is not None else draw(st.sampled_from([None, default]))
    other = f"{mixed(scheme)}://{mixed(host)}"
    other += "" if written_port is None else f":{written_port}"
    other += path + "/" * draw(st.integers(min_value=0, max_value=2))
    return plain, other


@given(spellings())
def test_spellings_of_one_environment_share_one_prefix(pair: tuple[str, str]) -> None:
    """``HTTPS://API.knock.app:443/`` and ``https://api.knock.app`` (and every such pair: case
    of scheme and host, the default port, trailing slashes) give one key prefix."""
    plain, other = pair
    assert environment_key_prefix(KEY, base_url=other) == environment_key_prefix(
        KEY, base_url=plain
    )
    assert canonical_base_url(other) == canonical_base_url(plain) == plain


def test_the_canonical_spelling_keeps_its_prefix() -> None:
    """A base URL already in canonical form hashes as it did before normalisation, so
    processes that used it keep their budget across the upgrade."""
    digest = hashlib.sha256(f"https://api.knock.app\n{KEY}".encode()).hexdigest()
    expected = f"knock_async:{digest[:24]}"
    assert environment_key_prefix(KEY, base_url="https://api.knock.app") == expected


def test_the_issues_four_spellings_are_one_budget() -> None:
    """The four spellings the issue found giving four budgets give one."""
    spellings = [
        "https://api.knock.app",
        "https://api.knock.app/",
        "https://API.knock.app",
        "https://api.knock.app:443",
    ]
    assert len({environment_key_prefix(KEY, base_url=url) for url in spellings}) == 1


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://api.knock.app", "http://api.knock.app"),
        ("https://api.knock.app", "https://api.knock.app:8443"),
        ("https://api.knock.app", "https://api.knock.app/eu"),
        ("https://api.knock.app/EU", "https://api.knock.app/eu"),
        ("https://api.knock.app", "https://eu.api.knock.app"),
    ],
)
def test_other_environments_keep_their_own_prefix(one: str, other: str) -> None:
    """Scheme, a port that is not the default, the path (case included) and the host still
    tell environments apart."""
    assert environment_key_prefix(KEY, base_url=one) != environment_key_prefix(KEY, base_url=other)


def test_canonical_form() -> None:
    """The canonical spelling: lower-case scheme and host, no default port, no trailing
    slash, no userinfo, query or fragment; IPv6 hosts keep their brackets; a yarl URL works
    as its string does."""
    assert canonical_base_url("HTTP://LocalHost:80/v1/") == "http://localhost/v1"
    assert canonical_base_url("http://[::1]:8080/") == "http://[::1]:8080"
    assert canonical_base_url(URL("https://u:p@api.knock.app/?q=1#f")) == "https://api.knock.app"


@pytest.mark.parametrize(
    ("base_url", "error", "message"),
    [
        ("api.knock.app", ValueError, "absolute http"),
        ("ftp://api.knock.app", ValueError, "absolute http"),
        ("https://", ValueError, "absolute http"),
        (None, TypeError, "base_url must be a str or a yarl.URL, got NoneType"),
    ],
)
def test_not_a_base_url_is_refused(base_url: object, error: type[Exception], message: str) -> None:
    """Anything but an absolute http(s) URL is refused by name, before any hashing."""
    with pytest.raises(error, match=message):
        environment_key_prefix(KEY, base_url=base_url)  # type: ignore[arg-type]
