"""A refused base URL is described without its userinfo, query or fragment, whatever its
shape, from the ``base_url=`` argument and from ``KNOCK_BASE_URL`` alike."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import knock_async as ka

SECRETS = ("USERNAME", "PASSW0RD", "QTOKEN", "FRAGTOKEN")

MALFORMED = [
    "https//USERNAME:PASSW0RD@api.knock.app",
    "https:/USERNAME:PASSW0RD@api.knock.app",
    "https:USERNAME:PASSW0RD@api.knock.app",
    "https:\\\\USERNAME:PASSW0RD@api.knock.app",
    "htps://USERNAME:PASSW0RD@api.knock.app",
    "USERNAME:PASSW0RD@api.knock.app",
    "//USERNAME:PASSW0RD@api.knock.app",
    "https://USERNAME:PASS/W0RD@api.knock.app",  # a slash in the password ends the authority
    "https://USERNAME:PASSW0RD@",
    "https://USERNAME:/PASSW0RD@api.knock.app",  # valid, but its path holds the userinfo
    "https//api.knock.app?token=QTOKEN",
    "https//api.knock.app#FRAGTOKEN",
    "https//api.knock.app?token=QT@OKEN",  # an @ in the query
    "ftp://USERNAME:PASSW0RD@api.knock.app",
    "https://USERNAME:PASSW0RD%40api.knock.app",
]


def refusal(base_url: str, monkeypatch: pytest.MonkeyPatch, *, from_env: bool) -> str:
    if from_env:
        monkeypatch.setenv("KNOCK_BASE_URL", base_url)
        with pytest.raises(ValueError, match=r"URL|credentials|query|http") as info:
            ka.KnockClient(api_key="sk_x")
    else:
        monkeypatch.delenv("KNOCK_BASE_URL", raising=False)
        with pytest.raises(ValueError, match=r"URL|credentials|query|http") as info:
            ka.KnockClient(api_key="sk_x", base_url=base_url)
    return str(info.value)


@pytest.mark.parametrize("from_env", [False, True], ids=["argument", "environment"])
@pytest.mark.parametrize("base_url", MALFORMED)
def test_malformed_base_urls_are_refused_without_their_secrets(
    base_url: str, from_env: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each malformed shape is refused with a message naming where it came from and quoting
    none of its user name, password, query or fragment."""
    message = refusal(base_url, monkeypatch, from_env=from_env)
    assert message.startswith("KNOCK_BASE_URL" if from_env else "base_url")
    for secret in SECRETS:
        assert secret not in message.replace("<redacted>", "")
    assert "QT" not in message
    assert "OKEN" not in message


def test_a_mistyped_scheme_is_still_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """What is safe to show (the scheme as typed, the host) is shown, to find the typo by."""
    message = refusal("https//USERNAME:PASSW0RD@api.knock.app", monkeypatch, from_env=False)
    assert "'https//<redacted>@api.knock.app'" in message


_parts = st.text(alphabet=st.sampled_from("ab:/@?#%4\\0 ."), max_size=4)


@given(
    scheme=st.sampled_from(["https", "http", "HTTPS", "htps", "", "ftp"]),
    separator=st.text(alphabet=st.sampled_from(":/\\"), max_size=4),
    before=_parts,
    after=_parts,
    query=st.booleans(),
    fragment=st.booleans(),
)
def test_no_shape_leaks_a_secret(
    scheme: str, separator: str, before: str, after: str, query: bool, fragment: bool
) -> None:
    """However the scheme, its separator and the userinfo are mangled (and whatever URL
    characters surround the password), a refused base URL's message never holds the user
    name, the password, the query or the fragment."""
    url = f"{scheme}{separator}USERNAME:{before}PASSW0RD{after}@api.knock.app/v1"
    url += "?token=QTOKEN" if query else ""
    url += "#FRAGTOKEN" if fragment else ""
    with pytest.raises(ValueError, match=r"URL|credentials|query|http") as info:
        ka.KnockClient(api_key="sk_x", base_url=url)
    message = str(info.value)
    for secret in SECRETS:
        assert secret not in message


@pytest.mark.parametrize(
    "spelling",
    [
        "https://api.knock.app",
        "https://api.knock.app/",
        "https://API.knock.app",
        "https://api.knock.app:443",
        "HTTPS://Api.Knock.App:443/",
    ],
)
def test_every_spelling_of_one_environment_is_one_base_url(spelling: str) -> None:
    """The client keeps one spelling of an environment (lower-case scheme and host, no
    default port, no trailing slash), the one a shared limiter's prefix is hashed from."""
    client = ka.KnockClient(api_key="sk_x", base_url=spelling)
    assert str(client.base_url) == "https://api.knock.app"
