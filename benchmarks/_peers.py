"""The clients compared, each doing the same job, and the worker process that runs one of them.

A *job* is what the client-cost benchmark repeats: one bulk-update POST (the same filters for
every client) and one ``GET /v1/bulk_operations/{id}`` of the operation it returned, each
answer parsed the way that client parses it. ``PEERS`` maps a peer's name to a factory
``base_url -> async context manager yielding the job``; a peer whose package is not installed
is reported unavailable and skipped.

The worker (``python -m benchmarks._peers PEER BASE_URL``) imports only its own peer, so that
one client's imports do not weigh on another's garbage collections, and measures its own CPU
time: it answers one JSON line per batch asked for on stdin. The fan-out benchmark can reuse
``PEERS`` and the worker once the fan-out API exists.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib.util
import inspect
import json
import resource
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final

from ._common import API_KEY, CHANNEL_ID

__all__ = [
    "FILTERS_WIRE",
    "PEERS",
    "Job",
    "PeerFactory",
    "knock_client_kwargs",
    "raw_round_trip",
    "run_batch",
]

Job = Callable[[], Awaitable[None]]
PeerFactory = Callable[[str], AbstractAsyncContextManager[Job]]

# The filters every client sends, as arguments and as the wire body they become.
ARCHIVED: Final = "include"
OLDER_THAN = datetime(2024, 1, 1, tzinfo=UTC)
RECIPIENT_IDS = ["user_1", "user_2", "user_3"]
FILTERS_WIRE = {
    "archived": ARCHIVED,
    "older_than": "2024-01-01T00:00:00Z",
    "recipient_ids": RECIPIENT_IDS,
}
HEADERS = {
    "Authorization": f"Bearer {API_KEY}",
    "User-Agent": "bench-raw-aiohttp",
    "Accept": "application/json",
}
JSON_HEADERS = {**HEADERS, "Content-Type": "application/json"}


class PeerUnavailableError(Exception):
    """The peer's package is not installed here."""


def knock_client_kwargs(*, pacing: bool) -> dict[str, Any]:
    """``KnockClient`` keywords for a client-cost run.

    Client-side pacing (Knock's 5 POST/s) would make the run measure the pacing, not the
    client: ``pacing=False`` turns it off, ``pacing=True`` keeps the limiter's code path with
    rates so high that it never waits. Empty where this version of the client has no pacing.
    """
    import knock_async as ka

    if "rate_limits" not in inspect.signature(ka.KnockClient).parameters:
        return {}
    if not pacing:
        return {"rate_limits": None}
    rate_limits_cls: Any = getattr(ka, "RateLimits", None)
    if rate_limits_cls is None:
        from knock_async import _ratelimit

        rate_limits_cls = _ratelimit.RateLimits
    return {"rate_limits": rate_limits_cls(post_per_second=1e9, get_per_second=1e9)}


@asynccontextmanager
async def raw_aiohttp(base_url: str) -> AsyncIterator[Job]:
    """The floor for this stack: aiohttp, ``json.dumps``/``json.loads``, a status check."""
    import aiohttp

    post_url = f"{base_url}/v1/channels/{CHANNEL_ID}/messages/bulk/archive"
    async with aiohttp.ClientSession() as session:

        async def job() -> None:
            body = json.dumps(FILTERS_WIRE).encode()
            await raw_round_trip(
                session, base_url, post_url, {"data": body, "headers": JSON_HEADERS}
            )

        yield job


async def raw_round_trip(session: Any, base_url: str, post_url: str, post: dict[str, Any]) -> None:
    """A raw client's job: POST (with ``post``'s keywords), ``json.loads`` the operation, GET
    it by id, ``json.loads`` that; any status but 200 is an error."""
    async with session.post(post_url, **post) as response:
        if response.status != 200:
            raise RuntimeError(f"POST answered {response.status}")
        operation = json.loads(await response.read())
    get_url = f"{base_url}/v1/bulk_operations/{operation['id']}"
    async with session.get(get_url, headers=HEADERS) as response:
        if response.status != 200:
            raise RuntimeError(f"GET answered {response.status}")
        json.loads(await response.read())


def _knock_async(*, pacing: bool) -> PeerFactory:
    @asynccontextmanager
    async def peer(base_url: str) -> AsyncIterator[Job]:
        import knock_async as ka

        options = knock_client_kwargs(pacing=pacing)
        if pacing and not options:
            raise PeerUnavailableError("this knock_async has no client-side pacing")
        async with ka.KnockClient(api_key=API_KEY, base_url=base_url, **options) as knock:

            async def job() -> None:
                operation = await knock.channels.bulk.update_message_status(
                    CHANNEL_ID,
                    "archive",
                    archived=ARCHIVED,
                    older_than=OLDER_THAN,
                    recipient_ids=RECIPIENT_IDS,
                )
                await knock.bulk_operations.get(operation.id)

            yield job

    return peer


def _knockapi(*, transport: str) -> PeerFactory:
    @asynccontextmanager
    async def peer(base_url: str) -> AsyncIterator[Job]:
        try:
            import knockapi
        except ImportError as exc:
            raise PeerUnavailableError(f"knockapi is not installed ({exc})") from None
        http_client: Any = None
        if transport == "aiohttp":
            if importlib.util.find_spec("httpx_aiohttp") is None:
                raise PeerUnavailableError(
                    "knockapi's aiohttp transport needs `pip install 'knockapi[aiohttp]'`"
                )
            http_client = knockapi.DefaultAioHttpClient()
        # Defaults otherwise, as a user would build it (retries on, its connection limits).
        async with knockapi.AsyncKnock(
            api_key=API_KEY, base_url=base_url, http_client=http_client
        ) as client:

            async def job() -> None:
                operation = await client.channels.bulk.update_message_status(
                    CHANNEL_ID,
                    "archive",
                    archived=ARCHIVED,
                    older_than=OLDER_THAN,
                    recipient_ids=RECIPIENT_IDS,
                )
                await client.bulk_operations.get(operation.id)

            yield job

    return peer


PEERS: dict[str, tuple[str, PeerFactory]] = {
    "raw_aiohttp": ("raw aiohttp + json.loads (floor)", raw_aiohttp),
    "knock_async": ("knock_async (pacing off)", _knock_async(pacing=False)),
    "knock_async_paced": ("knock_async (pacing on, never waits)", _knock_async(pacing=True)),
    "knockapi_httpx": ("knockapi, httpx transport (default)", _knockapi(transport="httpx")),
    "knockapi_aiohttp": ("knockapi, aiohttp transport", _knockapi(transport="aiohttp")),
}


async def run_batch(job: Job, jobs: int, concurrency: int) -> None:
    """``jobs`` jobs, at most ``concurrency`` at a time (a fixed pool of workers)."""
    todo = iter(range(jobs))

    async def worker() -> None:
        for _ in todo:
            await job()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, jobs))))


async def _measure(
    peer: PeerFactory,
    base_url: str,
    *,
    jobs: int,
    concurrency: int,
    warmup: int,
    profiler: cProfile.Profile | None,
) -> dict[str, float]:
    async with peer(base_url) as job:
        # Warm up: open the connections, fill the caches, run every code path once.
        await run_batch(job, warmup, concurrency)
        gc.collect()
        if profiler is not None:
            profiler.enable()
        before = resource.getrusage(resource.RUSAGE_SELF)
        cpu, wall = time.process_time(), time.perf_counter()
        await run_batch(job, jobs, concurrency)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_SELF)
        if profiler is not None:
            profiler.disable()
    return {
        "cpu": cpu,
        "user": after.ru_utime - before.ru_utime,
        "system": after.ru_stime - before.ru_stime,
        "wall": wall,
        "requests": 2 * jobs,
    }


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks._peers",
        description="Run one client's batches on request (JSON lines on stdin and stdout).",
    )
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("base_url")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the timed batches into FILE")
    args = parser.parse_args()
    _, peer = PEERS[args.peer]
    profiler = cProfile.Profile() if args.profile else None

    # Is the peer there at all? One job against the server says so.
    async def probe() -> None:
        async with peer(args.base_url) as job:
            await job()

    try:
        asyncio.run(probe())
    except PeerUnavailableError as exc:
        _say({"unavailable": str(exc)})
        return
    _say({"ready": True})
    for line in sys.stdin:
        command = json.loads(line)
        result = asyncio.run(
            _measure(
                peer,
                args.base_url,
                jobs=int(command["jobs"]),
                concurrency=int(command["concurrency"]),
                warmup=int(command["warmup"]),
                profiler=profiler,
            )
        )
        _say(result)
    if profiler is not None:
        profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
