"""7. Shared limit: N processes, one Knock environment, one budget in Redis.

N worker processes (2, 4, 8) each run ``update_many`` over channels of their own, all with the
same API key against one emulator (its own process) that enforces Knock's limits per key: 5
bulk POSTs/s and 200 GETs/s for all of them together, 429 beyond. Three ways to pace:

* ``redis``: every worker paces with a ``RedisRateLimiter`` on one local ``redis-server``.
* ``local``: every worker paces with the default in-process limiter at Knock's 5/s, so N
  workers send N x 5/s (what happens today without a shared limiter).
* ``outage``: as ``redis``, but the Redis server is stopped halfway through; the workers fall
  back to in-process pacing at ``fallback_share = 1/N`` of the rate each.

The workers start together (each sets up, says ready, and waits for a go). What is measured
comes from the emulator's request log: every POST it accepted and when, and the 429s its rate
limiter answered. The aggregate POST rate is (accepted POSTs - 1) / (first to last).

A last table gives the per-request cost of the Redis round trip: ``acquire`` on a tier whose
rate is so high that it never waits, ``RedisRateLimiter`` against ``AdaptiveRateLimiter``, wall
time and CPU time per call, one process, sequential calls.

Everything runs at real time: the shared state lives on Redis's clock, which cannot be sped up.
Needs ``redis-server`` (Debian package ``redis-server``) and the ``redis`` extra; without them
the benchmark is skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import IO, Any

import knock_async as ka

from ._common import API_KEY, Report, Settings, Target, log, markdown_table

NAME = "shared_limit"
TITLE = "7. Shared limit: N processes, one environment, one budget in Redis"

POST_PER_SECOND = 5.0
TARGET_TOLERANCE = 0.10  # the aggregate POST rate within 10% of 5/s with the Redis limiter
MESSAGES = 5
REAL_TIMEOUT = 300.0
MODES = ("redis", "local", "outage")


# ---------------------------------------------------------------------------------------------
# The emulator process: python -m benchmarks.shared_limit emulator --channels N


async def _emulator(channels: int) -> None:
    from knock_async.testing import KnockEmulator

    async with KnockEmulator(request_log_size=None, rows_per_second=100_000.0) as emu:
        ids = []
        for index in range(channels):
            channel = emu.add_channel(type="in_app_feed")
            emu.add_messages(channel, MESSAGES, seed=index)
            ids.append(channel)
        print(json.dumps({"base_url": emu.base_url, "channels": ids}), flush=True)
        loop = asyncio.get_running_loop()
        # Any line (or the end of stdin) asks for the results; they end the process.
        await loop.run_in_executor(None, sys.stdin.readline)
        accepted = sorted(
            r.received_at.timestamp()
            for r in emu.requests
            if r.method == "POST" and r.status is not None and r.status < 300
        )
        result = {
            "accepted_posts": len(accepted),
            "post_span": accepted[-1] - accepted[0] if len(accepted) > 1 else 0.0,
            "posts": sum(r.method == "POST" for r in emu.requests),
            "gets": sum(r.method == "GET" for r in emu.requests),
            "rate_limited": emu.stats.rate_limited,
        }
        print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------
# A worker process: python -m benchmarks.shared_limit worker (its plan as JSON on stdin)


async def _worker(plan: dict[str, Any]) -> dict[str, Any]:
    from knock_async.redis import RedisRateLimiter

    mode = plan["mode"]
    loop = asyncio.get_running_loop()
    limiter: RedisRateLimiter | None = None
    rate_limits: ka.RateLimits | ka.RateLimiter = ka.RateLimits()
    if mode != "local":
        limiter = RedisRateLimiter.from_url(
            plan["redis_url"], key_prefix=plan["prefix"], fallback_share=plan["fallback_share"]
        )
        await limiter.check()
        rate_limits = limiter
    async with ka.KnockClient(
        api_key=API_KEY, base_url=plan["base_url"], rate_limits=rate_limits
    ) as knock:
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        started = time.perf_counter()
        summary = await knock.channels.bulk.update_many(plan["channels"], "read")
        seconds = time.perf_counter() - started
    degraded = limiter is not None and limiter.degraded
    if limiter is not None:
        await limiter.aclose()
    return {
        "seconds": seconds,
        "completed": len(summary.by_status("completed")),
        "channels": len(plan["channels"]),
        "errors": dict(
            Counter(type(r.error).__name__ for r in summary.results if r.error is not None)
        ),
        "degraded": degraded,
    }


# ---------------------------------------------------------------------------------------------
# The per-request cost of the round trip: python -m benchmarks.shared_limit cost URL CALLS


async def _cost(redis_url: str, calls: int) -> dict[str, float]:
    from knock_async.redis import RedisRateLimiter

    # High enough that no acquire ever waits: what is left is the call itself.
    limits = ka.RateLimits(get_per_second=1e9, get_burst=1_000_000)
    result = {}
    shared = RedisRateLimiter.from_url(
        redis_url, key_prefix=f"bench:{uuid.uuid4().hex}", limits=limits
    )
    async with shared:
        for name, limiter in (("redis", shared), ("in_process", ka.AdaptiveRateLimiter(limits))):
            for _ in range(calls // 10):  # warm-up
                await limiter.acquire(ka.Tier.GET)
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                await limiter.acquire(ka.Tier.GET)
            result[f"{name}_wall"] = (time.perf_counter() - wall) / calls
            result[f"{name}_cpu"] = (time.process_time() - cpu) / calls
    return result


# ---------------------------------------------------------------------------------------------
# The benchmark, run from python -m benchmarks


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.shared_limit", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def _line(stream: IO[str] | None) -> str:
    assert stream is not None
    line = stream.readline()
    if not line:
        raise RuntimeError("a benchmark process exited early (see its stderr above)")
    return line


def _scenario(mode: str, processes: int, channels: int) -> dict[str, Any]:
    """One run: an emulator, ``processes`` workers started together, the emulator's count."""
    from tests.redis._server import RedisServer

    server = RedisServer()
    if mode != "local":
        server.start()
    emulator = _spawn("emulator", "--channels", str(channels * processes))
    workers: list[subprocess.Popen[str]] = []
    try:
        setup = json.loads(_line(emulator.stdout))
        ids: list[str] = setup["channels"]
        prefix = f"bench:{uuid.uuid4().hex}"
        for index in range(processes):
            plan = {
                "mode": mode,
                "base_url": setup["base_url"],
                "channels": ids[index * channels : (index + 1) * channels],
                "redis_url": server.url,
                "prefix": prefix,
                "fallback_share": 1 / processes,
            }
            worker = _spawn("worker")
            assert worker.stdin is not None
            worker.stdin.write(json.dumps(plan) + "\n")
            worker.stdin.flush()
            workers.append(worker)
        for worker in workers:
            if _line(worker.stdout).strip() != "ready":
                raise RuntimeError("a worker did not get ready")
        started = time.perf_counter()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        stopped_at = None
        if mode == "outage":
            # Halfway through the POSTs the shared budget allows.
            time.sleep(channels * processes / POST_PER_SECOND / 2)
            server.stop()
            stopped_at = time.perf_counter() - started
        results = [json.loads(_line(w.stdout)) for w in workers]
        for worker in workers:
            worker.wait(timeout=60)
        assert emulator.stdin is not None
        emulator.stdin.write("results\n")
        emulator.stdin.flush()
        counts: dict[str, Any] = json.loads(_line(emulator.stdout))
        emulator.wait(timeout=60)
    finally:
        server.stop()
        for process in (emulator, *workers):
            if process.poll() is None:
                process.kill()
                process.wait()
    return {
        "mode": mode,
        "processes": processes,
        "channels": channels * processes,
        "completed": sum(r["completed"] for r in results),
        "errors": sum((Counter(r["errors"]) for r in results), Counter()),
        "seconds": max(r["seconds"] for r in results),
        "degraded": sum(r["degraded"] for r in results),
        "stopped_at": stopped_at,
        **counts,
    }


def _redis_missing() -> str | None:
    from tests.redis._server import redis_server_missing

    try:
        import redis  # noqa: F401
    except ImportError:
        return "the `redis` extra is not installed (pip install 'knock-async[redis]')"
    return redis_server_missing()


def run(settings: Settings) -> Report:
    report = Report(name=NAME, title=TITLE)
    missing = _redis_missing()
    if missing is not None:
        report.skipped = missing
        return report
    total = settings.pick(16, 48)  # POSTs per run: about total / 5 s each
    counts = (4,) if settings.quick else (2, 4, 8)
    plan = [(mode, n) for n in counts for mode in ("redis", "local")]
    plan += [("outage", n) for n in counts]
    results = []
    for mode, processes in plan:
        per_process = max(1, total // processes)
        log(f"  shared_limit: {mode}, {processes} processes x {per_process} channels")
        results.append(_scenario(mode, processes, per_process))
    from tests.redis._server import RedisServer

    calls = settings.pick(2_000, 10_000)
    log(f"  shared_limit: per-request cost, {calls:,} acquires")
    with RedisServer() as server:
        cost_process = _spawn("cost", server.url, str(calls))
        cost: dict[str, float] = json.loads(_line(cost_process.stdout))
        cost_process.wait(timeout=60)
    _tabulate(report, results, cost, quick=settings.quick)
    return report


def _rate(result: dict[str, Any]) -> float:
    span: float = result["post_span"]
    return (result["accepted_posts"] - 1) / span if span > 0 else float("nan")


def _tabulate(
    report: Report, results: list[dict[str, Any]], cost: dict[str, float], *, quick: bool
) -> None:
    labels = {
        "redis": "`RedisRateLimiter`",
        "local": "in-process limiter per process",
        "outage": "`RedisRateLimiter`, Redis stopped halfway",
    }
    rows = []
    for r in results:
        stopped = f" (at {r['stopped_at']:.1f} s)" if r["stopped_at"] is not None else ""
        rows.append(
            [
                labels[r["mode"]] + stopped,
                str(r["processes"]),
                f"{r['completed']} / {r['channels']}",
                str(r["rate_limited"]),
                str(r["posts"]),
                f"{_rate(r):.2f}",
                f"{r['seconds']:.1f}",
                ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "-",
            ]
        )
    report.table = markdown_table(
        [
            "pacing",
            "processes",
            "channels updated",
            "429s",
            "POSTs sent",
            "accepted POSTs/s",
            "real s",
            "errors",
        ],
        rows,
        align="lrrrrrrl",
    )
    for r in results:
        if r["mode"] == "redis":
            rate = _rate(r)
            report.targets.append(
                Target(
                    name=(
                        f"{r['processes']} processes sharing Redis: zero 429s, every channel "
                        f"updated, aggregate POST rate within {TARGET_TOLERANCE:.0%} of 5/s"
                    ),
                    met=r["rate_limited"] == 0
                    and r["completed"] == r["channels"]
                    and abs(rate - POST_PER_SECOND) <= TARGET_TOLERANCE * POST_PER_SECOND,
                    detail=f"{r['rate_limited']} 429s, {rate:.2f} POSTs/s",
                )
            )
        elif r["mode"] == "outage":
            report.targets.append(
                Target(
                    name=(
                        f"{r['processes']} processes, Redis stopped halfway: every channel "
                        "updated, no 429 storm (fewer 429s than channels)"
                    ),
                    met=r["completed"] == r["channels"] and r["rate_limited"] < r["channels"],
                    detail=(
                        f"{r['completed']}/{r['channels']} updated, {r['rate_limited']} 429s, "
                        f"{r['degraded']} of {r['processes']} workers on the fallback at the end"
                    ),
                )
            )
    cost_table = markdown_table(
        ["acquire (never waits)", "wall us/call", "CPU us/call"],
        [
            [
                "`RedisRateLimiter` (one script call to a local Redis)",
                f"{cost['redis_wall'] * 1e6:.0f}",
                f"{cost['redis_cpu'] * 1e6:.0f}",
            ],
            [
                "`AdaptiveRateLimiter` (in-process)",
                f"{cost['in_process_wall'] * 1e6:.1f}",
                f"{cost['in_process_cpu'] * 1e6:.1f}",
            ],
        ],
        align="lrr",
    )
    report.notes.append("Per-request cost of the shared limiter:\n\n" + cost_table + "\n")
    report.notes.append(
        "- Every process uses the same API key, so the emulator's per-key limit is the shared "
        "budget (Knock's limit per environment). '429s' are those the emulator's limiter "
        "answered, retries included; 'POSTs sent' counts them too. The outage rows give each "
        "worker `fallback_share = 1/N`."
    )
    if quick:
        report.notes.append(
            "- Quick run: 4 processes, 16 channels in all per run; the full run has 2, 4 and 8 "
            "processes over 48 channels."
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shared_limit")
    roles = parser.add_subparsers(dest="role", required=True)
    emulator = roles.add_parser("emulator", help="serve the emulator; results on any line")
    emulator.add_argument("--channels", type=int, required=True)
    roles.add_parser("worker", help="one worker; its plan as one JSON line on stdin")
    cost = roles.add_parser("cost", help="per-request cost of acquire; one JSON line")
    cost.add_argument("redis_url")
    cost.add_argument("calls", type=int)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.role == "emulator":
        asyncio.run(asyncio.wait_for(_emulator(args.channels), REAL_TIMEOUT))
        return
    if args.role == "cost":
        result: dict[str, Any] = asyncio.run(_cost(args.redis_url, args.calls))
    else:
        plan = json.loads(sys.stdin.readline())
        result = asyncio.run(asyncio.wait_for(_worker(plan), REAL_TIMEOUT))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
