"""8. The emulator's speed, side by side with a bare aiohttp handler returning the same JSON.

Each server runs in its own process (``python -m benchmarks.emulator_speed serve KIND``); the
load comes from this process over raw keep-alive sockets (a few microseconds of client work per
request, so the server sets the pace). For every scenario the table gives the requests per
second seen by the load (wall clock) and the server's CPU time per request (from
``/proc/<pid>/stat``), whose inverse is what the server could answer with a CPU of its own.

- GET ``/v1/bulk_operations/{id}``: the emulator (a completed operation; rate limits off) against
  the floor, an aiohttp handler answering ``web.json_response`` with the same operation.
- The bulk POST on a channel of 10,000 messages (default settings, rate limits off): every POST
  starts an operation that the emulator then processes while the POSTs go on.
- Responsiveness: 10,000 operations in progress (each over 10,000 messages, all due at once), then
  GETs one after another; the slowest answer is how long a request can wait for processing.
- Memory: one operation over 1,000,000 messages (100,000 in a quick run) on a manual clock,
  allocations traced (``tracemalloc``) from its POST until it completed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from typing import Any

from ._common import API_KEY, Report, Settings, Target, log, markdown_table, median, ratio

NAME = "emulator_speed"
TITLE = "8. Emulator speed: side by side with a bare aiohttp handler"

CHANNEL_MESSAGES = 10_000
IN_PROGRESS = 10_000
GET_TARGET = 0.6  # the emulator's GET at least 0.6x the floor's requests/s
POST_TARGET = 1_000.0  # bulk POSTs per second on a 10,000-message channel
WAIT_TARGET = 0.050  # seconds a request may wait for processing
MEMORY_TARGET = 1024.0  # bytes per message, "well under"


# The servers -------------------------------------------------------------------------------


async def _serve(kind: str) -> None:
    from aiohttp import web

    from knock_async.testing import KnockEmulator

    emulator = KnockEmulator(rate_limits=False, strict=True)
    channel = emulator.add_channel()
    emulator.add_messages(channel, CHANNEL_MESSAGES, seed=1)
    if kind == "floor":
        # The same JSON the emulator sends for a completed operation.
        body = await _one_completed_operation(emulator, channel)
        answer = json.loads(body)

        async def handler(request: web.Request) -> web.Response:
            return web.json_response(answer)

        app = web.Application()
        app.router.add_get("/v1/bulk_operations/{id}", handler)
        app.router.add_post("/v1/channels/{channel_id}/messages/bulk/{action}", handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        operation_id = answer["id"]
    else:
        await emulator.start()
        port = int(emulator.base_url.rsplit(":", 1)[1])
        operation_id = json.loads(await _one_completed_operation(emulator, channel))["id"]
    print(f"PORT {port} {channel} {operation_id}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def watch_stdin() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    await stop.wait()


async def _one_completed_operation(emulator: Any, channel: str) -> bytes:
    """Start an operation over the channel's first messages and let it finish."""
    from knock_async._models import BulkAction, BulkUpdateMessagesForChannelRequest

    engine = emulator._engine  # the benchmark's setup only: no request counted
    operation = engine.submit(
        channel, BulkAction.SEEN, BulkUpdateMessagesForChannelRequest(), progress_base=""
    )
    engine.advance(time.monotonic() + 3600)
    body: bytes = engine.body(operation.id)
    return body


class Server:
    """A server process: ``with Server("emulator") as server: server.port``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.emulator_speed", "serve", kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if not line or line[0] != "PORT":
            self.close()
            raise RuntimeError(f"the {kind} server did not start")
        self.port, self.channel, self.operation_id = int(line[1]), line[2], line[3]

    def cpu_seconds(self) -> float:
        """The server process's user + system CPU time so far (Linux ``/proc``)."""
        with open(f"/proc/{self.process.pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# The load ----------------------------------------------------------------------------------


def _request(method: str, path: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(
    port: int, requests: list[bytes], latencies: list[float], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for payload in requests:
            started = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()
        await writer.wait_closed()


async def _load(port: int, payloads: list[bytes], connections: int) -> tuple[float, list[float]]:
    """Send ``payloads`` over ``connections`` keep-alive sockets; (seconds, latencies)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    shares = [payloads[i::connections] for i in range(connections)]
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, s, latencies, statuses) for s in shares))
    elapsed = time.perf_counter() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"unexpected answers: {statuses}")
    return elapsed, latencies


def _measure(server: Server, payloads: list[bytes], connections: int) -> tuple[float, float]:
    """(requests per second seen by the load, server CPU seconds per request)."""
    asyncio.run(_load(server.port, payloads[: connections * 20], connections))  # warm-up
    cpu = server.cpu_seconds()
    elapsed, _ = asyncio.run(_load(server.port, payloads, connections))
    return len(payloads) / elapsed, (server.cpu_seconds() - cpu) / len(payloads)


def _throughput(settings: Settings) -> tuple[list[list[str]], list[Target]]:
    count = settings.pick(3_000, 20_000)
    rounds = settings.pick(2, 5)
    connections = 16
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_ in range(rounds):
        for kind in ("floor", "emulator") if round_ % 2 == 0 else ("emulator", "floor"):
            with Server(kind) as server:
                get = _request("GET", f"/v1/bulk_operations/{server.operation_id}")
                results.setdefault((kind, "GET"), []).append(
                    _measure(server, [get] * count, connections)
                )
                post_count = settings.pick(1_000, 3_000)
                post = _request("POST", f"/v1/channels/{server.channel}/messages/bulk/read", b"{}")
                results.setdefault((kind, "POST"), []).append(
                    _measure(server, [post] * post_count, connections)
                )
            log(f"  round {round_ + 1}/{rounds}: {kind} done")

    def figures(kind: str, what: str) -> tuple[float, float]:
        runs = results[kind, what]
        return median([r for r, _ in runs]), median([c for _, c in runs])

    rows = []
    for what, label in (
        ("GET", "GET /v1/bulk_operations/{id}"),
        ("POST", f"bulk POST, channel of {CHANNEL_MESSAGES:,} messages"),
    ):
        floor_rate, floor_cpu = figures("floor", what)
        emu_rate, emu_cpu = figures("emulator", what)
        for kind, rate, cpu in (("floor", floor_rate, floor_cpu), ("emulator", emu_rate, emu_cpu)):
            rows.append(
                [
                    label,
                    kind,
                    f"{rate:,.0f}",
                    f"{cpu * 1e6:,.0f}",
                    f"{1 / cpu:,.0f}" if cpu > 0 else "-",
                    f"{ratio(rate, floor_rate):.2f}x",
                ]
            )
    get_rate, get_cpu = figures("emulator", "GET")
    floor_rate, floor_cpu = figures("floor", "GET")
    post_rate, _ = figures("emulator", "POST")
    wall = ratio(get_rate, floor_rate)
    capacity = ratio(floor_cpu, get_cpu)
    targets = [
        Target(
            name=f"GET of an operation at least {GET_TARGET}x the floor's requests/s",
            met=wall >= GET_TARGET and capacity >= GET_TARGET,
            detail=f"{wall:.2f}x wall-clock, {capacity:.2f}x by server CPU per request",
        ),
        Target(
            name=f"bulk POST on a {CHANNEL_MESSAGES:,}-message channel at >= 1,000 requests/s",
            met=post_rate >= POST_TARGET,
            detail=f"{post_rate:,.0f} requests/s",
        ),
    ]
    return rows, targets


async def _responsiveness(server: Server, gets: int) -> tuple[float, list[float]]:
    post = _request("POST", f"/v1/channels/{server.channel}/messages/bulk/read", b"{}")
    started = time.perf_counter()
    await _load(server.port, [post] * IN_PROGRESS, 16)
    setup = time.perf_counter() - started
    await asyncio.sleep(0.2)  # past the queue delay: every operation is processing
    get = _request("GET", f"/v1/bulk_operations/{server.operation_id}")
    latencies: list[float] = []
    for _ in range(gets):
        _, one = await _load(server.port, [get], 1)
        latencies += one
        await asyncio.sleep(0.002)
    return setup, latencies


def _memory(messages: int) -> tuple[float, float, float]:
    """(peak growth, growth left, seconds) in bytes for one operation over ``messages``,
    traced from before the messages were added (so that a message replaced by its updated
    copy counts as freed)."""
    from knock_async._models import BulkAction, BulkUpdateMessagesForChannelRequest
    from knock_async.testing import KnockEmulator, ManualClock

    tracemalloc.start()
    emulator = KnockEmulator(clock=ManualClock(), rate_limits=False)
    channel = emulator.add_channel()
    emulator.add_messages(channel, messages, seed=3)
    gc.collect()
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    started = time.perf_counter()
    engine = emulator._engine  # no server needed: the engine is the whole cost
    operation = engine.submit(channel, BulkAction.ARCHIVE, BulkUpdateMessagesForChannelRequest())
    emulator.settle()
    seconds = time.perf_counter() - started
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    final = emulator.operation(operation.id)
    assert final.status == "completed"
    assert final.processed_rows == messages
    return peak - before, current - before, seconds


def run(settings: Settings) -> Report:
    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        return Report(name=NAME, title=TITLE, skipped="needs Linux /proc for server CPU time")
    log("  throughput: GET and bulk POST, floor and emulator")
    rows, targets = _throughput(settings)
    table = markdown_table(
        ["scenario", "server", "requests/s", "server CPU us/request", "req/s per CPU", "ratio"],
        rows,
        align="llrrrr",
    )

    log(f"  responsiveness: {IN_PROGRESS:,} operations in progress")
    gets = settings.pick(200, 500)
    with Server("emulator") as server:
        setup, latencies = asyncio.run(_responsiveness(server, gets))
    latencies.sort()
    slowest = latencies[-1]
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    targets.append(
        Target(
            name=f"with {IN_PROGRESS:,} operations in progress no request waits > 50 ms",
            met=slowest <= WAIT_TARGET,
            detail=f"slowest of {gets} GETs {slowest * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, "
            f"median {statistics.median(latencies) * 1e3:.2f} ms",
        )
    )

    messages = settings.pick(100_000, 1_000_000)
    log(f"  memory: one operation over {messages:,} messages")
    peak, left, seconds = _memory(messages)
    targets.append(
        Target(
            name=f"an operation over {messages:,} messages grows memory well under 1 KB/message",
            met=peak / messages < MEMORY_TARGET / 4,
            detail=f"peak growth {peak / messages:.1f} B/message, {left / messages:.1f} B/message "
            f"left at the end; {messages / seconds:,.0f} rows/s processed (traced)",
        )
    )
    notes = [
        f"Responsiveness: {IN_PROGRESS:,} POSTs took {setup:.1f} s to start the operations; "
        f"then {gets} GETs one after another, 2 ms apart, while every operation was due.",
        "requests/s is what the load saw (the load runs in this process, on the same CPUs); "
        "req/s per CPU is 1 / server CPU per request. Ratios are against the floor.",
    ]
    return Report(name=NAME, title=TITLE, table=table, targets=targets, notes=notes)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.emulator_speed")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("kind", choices=["floor", "emulator"])
    args = parser.parse_args()
    asyncio.run(_serve(args.kind))


if __name__ == "__main__":
    main()
