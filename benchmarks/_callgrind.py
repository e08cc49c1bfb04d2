"""The client side of the instruction-count benchmark: one client's jobs under callgrind.

``python -m benchmarks._callgrind PEER BASE_URL --jobs N --concurrency C --warmup W --toggle LIB``
runs ``W`` warm-up jobs uninstrumented, then turns callgrind's instrumentation on, runs ``N``
jobs with ``C`` in flight, and turns it off again: the callgrind output then holds the ``N``
jobs alone (start-up, imports, connecting and warm-up excluded). The toggle is a tiny shared
library (``LIB``, compiled from ``valgrind/callgrind.h`` by the parent) called through ctypes.

A job is what the issue measures: ``update_message_status(channel, "archive", archived=,
delivery_status=, recipient_ids=[two ids], newer_than=)`` with values that differ at every call
(as an app's calls do: no cache of a repeated body can help), then ``bulk_operations.get(id)``
of the operation it returned. The arguments of every call are made before the measured part.

orjson is blocked (as if not installed) for every peer but ``knock_async_speedups``, so that
the rows without speedups measure the stdlib JSON path whatever is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from ._common import API_KEY, CHANNEL_ID

__all__ = ["PEERS", "Call", "calls"]

_ARCHIVED = ("exclude", "include", "only")
_DELIVERY = (
    "queued",
    "sent",
    "delivered",
    "delivery_attempted",
    "undelivered",
    "not_sent",
    "bounced",
)
_SINCE = datetime(2024, 1, 1, tzinfo=UTC)


@attrs.frozen
class Call:
    """The filters of one job: each job's differ from the last one's."""

    # Any: each client types these as its own literals.
    archived: Any
    delivery_status: Any
    recipient_ids: list[str]
    newer_than: datetime


def calls(count: int) -> list[Call]:
    return [
        Call(
            archived=_ARCHIVED[i % len(_ARCHIVED)],
            delivery_status=_DELIVERY[i % len(_DELIVERY)],
            recipient_ids=[f"user_{i}", f"user_{i + 1}"],
            newer_than=_SINCE + timedelta(seconds=i, microseconds=i % 1000),
        )
        for i in range(count)
    ]


Job = Callable[[Call], Awaitable[None]]
PeerFactory = Callable[[str], AbstractAsyncContextManager[Job]]


class PeerUnavailableError(Exception):
    """The peer's package is not installed here."""


@asynccontextmanager
async def _raw_aiohttp(base_url: str) -> AsyncIterator[Job]:
    """The floor: the same headers, the body with ``json=``, ``json.loads`` of each answer."""
    import aiohttp

    from ._peers import HEADERS, raw_round_trip

    post_url = f"{base_url}/v1/channels/{CHANNEL_ID}/messages/bulk/archive"
    async with aiohttp.ClientSession() as session:

        async def job(call: Call) -> None:
            body = {
                "archived": call.archived,
                "delivery_status": call.delivery_status,
                "recipient_ids": call.recipient_ids,
                "newer_than": call.newer_than.isoformat(),
            }
            await raw_round_trip(session, base_url, post_url, {"json": body, "headers": HEADERS})

        yield job


def _sdk_job(update: Any, get: Any) -> Job:
    """The job for a client with Knock's SDK methods (knock_async and knockapi alike)."""

    async def job(call: Call) -> None:
        operation = await update(
            CHANNEL_ID,
            "archive",
            archived=call.archived,
            delivery_status=call.delivery_status,
            recipient_ids=call.recipient_ids,
            newer_than=call.newer_than,
        )
        await get(operation.id)

    return job


def _knock_async(*, pacing: bool, speedups: bool = False) -> PeerFactory:
    @asynccontextmanager
    async def peer(base_url: str) -> AsyncIterator[Job]:
        if speedups and sys.modules.get("orjson", 0) is None:
            raise PeerUnavailableError(
                "orjson is not installed (pip install 'knock-async[speedups]')"
            )
        import knock_async as ka

        from ._peers import knock_client_kwargs

        options = knock_client_kwargs(pacing=pacing)
        async with ka.KnockClient(api_key=API_KEY, base_url=base_url, **options) as knock:
            yield _sdk_job(knock.channels.bulk.update_message_status, knock.bulk_operations.get)

    return peer


@asynccontextmanager
async def _knockapi(base_url: str) -> AsyncIterator[Job]:
    try:
        import knockapi
    except ImportError as exc:
        raise PeerUnavailableError(f"knockapi is not installed ({exc})") from None
    import importlib.util

    if importlib.util.find_spec("httpx_aiohttp") is None:
        raise PeerUnavailableError("knockapi's aiohttp transport needs 'knockapi[aiohttp]'")
    async with knockapi.AsyncKnock(
        api_key=API_KEY, base_url=base_url, http_client=knockapi.DefaultAioHttpClient()
    ) as client:
        yield _sdk_job(client.channels.bulk.update_message_status, client.bulk_operations.get)


PEERS: dict[str, tuple[str, PeerFactory]] = {
    "raw_aiohttp": ("raw aiohttp (`json=`, `json.loads`): the floor", _raw_aiohttp),
    "knock_async": ("knock_async, `rate_limits=None`", _knock_async(pacing=False)),
    "knock_async_paced": (
        "knock_async, pacing on (never waits)",
        _knock_async(pacing=True),
    ),
    "knock_async_speedups": (
        "knock_async + speedups (orjson), `rate_limits=None`",
        _knock_async(pacing=False, speedups=True),
    ),
    "knockapi": ("knockapi on aiohttp", _knockapi),
}


async def _run(job: Job, todo: Sequence[Call], concurrency: int) -> None:
    """Every call of ``todo``, at most ``concurrency`` at a time (a fixed pool of workers)."""
    remaining = iter(todo)

    async def worker() -> None:
        for call in remaining:
            await job(call)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(todo)))))


async def _measure(
    peer: PeerFactory, base_url: str, *, jobs: int, concurrency: int, warmup: int, toggle: Any
) -> None:
    todo = calls(warmup + jobs)
    async with peer(base_url) as job:
        # Connections open, caches filled, the interpreter's specialisation settled.
        await _run(job, todo[:warmup], concurrency)
        measured = todo[warmup:]
        toggle.bench_start()
        await _run(job, measured, concurrency)
        toggle.bench_stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._callgrind")
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("base_url")
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--toggle", required=True, help="the callgrind toggle library")
    args = parser.parse_args(argv)
    if args.peer != "knock_async_speedups":
        sys.modules["orjson"] = None  # type: ignore[assignment]
    else:
        try:
            import orjson  # noqa: F401
        except ImportError:
            sys.modules["orjson"] = None  # type: ignore[assignment]
    toggle = ctypes.CDLL(args.toggle)
    _, peer = PEERS[args.peer]
    try:
        asyncio.run(
            _measure(
                peer,
                args.base_url,
                jobs=args.jobs,
                concurrency=args.concurrency,
                warmup=args.warmup,
                toggle=toggle,
            )
        )
    except PeerUnavailableError as exc:
        print(f"UNAVAILABLE {exc}", flush=True)
        return
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
