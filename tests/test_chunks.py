"""The ``_all`` methods' chunker, alone (no I/O): chunks of the endpoint's cap, request lines
under Knock's 8,000 bytes for ``tenants/bulk/delete``, every item once and in order."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator

from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from knock_async._chunks import ChunkSource
from knock_async._endpoints import ENDPOINTS, MAX_REQUEST_LINE
from knock_async._requests import Request

BASE = URL("https://api.knock.app")
HEADERS = {"Authorization": "Bearer sk_test_chunks"}


def _drain(source: ChunkSource) -> list[tuple[str, Request]]:
    async def run() -> list[tuple[str, Request]]:
        taken = []
        while (pair := await source.take()) is not None:
            taken.append(pair)
        return taken

    return asyncio.run(run())


ids = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=300
).filter(str.strip)


@settings(max_examples=60, deadline=None)
@given(st.lists(ids, max_size=1500))
def test_tenant_ids_split_under_the_request_line(tenant_ids: list[str]) -> None:
    """Any tenant ids (up to 300 characters, any Unicode) are split into requests of at most
    1,000 ids whose request line stays within 8,000 bytes; joined, they give every id once, in
    order, and each key names the indices its request carries."""
    row = ENDPOINTS["tenants.bulk.delete"]
    source = ChunkSource(row, iter(tenant_ids), base_url=BASE, headers=HEADERS)
    seen: list[str] = []
    for key, request in _drain(source):
        url = request.url
        assert url is not None
        line = len(f"POST {url.raw_path_qs} HTTP/1.1")
        assert line <= MAX_REQUEST_LINE
        values = [v for _, v in urllib.parse.parse_qsl(url.raw_query_string)]
        assert 1 <= len(values) <= row.cap
        span = source.items_of(key)
        assert span == range(len(seen), len(seen) + len(values))
        seen += values
    assert seen == tenant_ids
    assert source.exhausted


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=3500))
def test_users_in_chunks_of_the_cap_from_an_async_iterable(count: int) -> None:
    """``count`` users from an async generator go in ceil(count / 1,000) bodies of 1,000 (the
    last the rest), in order; a sized input would count the same chunks in advance."""
    row = ENDPOINTS["users.bulk.identify"]

    async def users() -> AsyncIterator[dict[str, str]]:
        for i in range(count):
            yield {"id": f"u{i}"}

    source = ChunkSource(row, users(), base_url=BASE, headers=HEADERS)
    sized = ChunkSource(row, [{"id": "x"}] * count, base_url=BASE, headers=HEADERS)
    assert sized.untaken() == -(-count // 1000)
    bodies = [json.loads(request.body or b"") for _, request in _drain(source)]
    assert [len(body["users"]) for body in bodies] == [
        min(1000, count - start) for start in range(0, count, 1000)
    ]
    assert [user["id"] for body in bodies for user in body["users"]] == [
        f"u{i}" for i in range(count)
    ]
