"""11. ``identify_all``: 100,000 users in chunks of 1,000 at tier 1 (1 request/s), and the
memory a generator input takes.

``knock.users.bulk.identify_all`` over N users against the emulator with Knock's limits on
(tier 1: one ``users/bulk/identify`` a second per environment, a bucket of one token). The
emulator runs in its own process, so the client's peak memory is the client's alone; both
run on a ``FastClock`` ``SPEED`` times faster than real time (each process anchors its own:
rates agree, origins do not matter). The floor is what tier 1 allows: N / 1,000 requests, the
first at once and one a second after, so the last goes (N / 1,000 - 1) s after the first (99 s
for 100,000 users). The span is read from the emulator's log (when each accepted request
arrived).

Memory: the client process's peak traced by ``tracemalloc`` (a separate run, since tracing
slows the client), with the users from a generator (read a chunk ahead at most) and, for
contrast, from a list built first (the whole input held).

Why two rates: tier 1 allows no burst (a bucket of one token), so a request that arrives even a
millisecond less than a second after the previous one is refused, and arrival times jitter
(here: the emulator applying the last chunk's 1,000 users between requests; on the internet:
the network). At exactly 1/s about one request in five gets a 429; it is resent after its wait
(nothing started), but each 429 also slows the client's tier down for a while (the adaptive
slow-down), and the span grows by half. The default, ``tier1_per_second=0.95`` (50 ms of slack
a request), draws none: its own floor is (N / 1,000 - 1) / 0.95 s, 1.053x tier 1's, and the
target is to stay within 2% of that. Why ``SPEED`` is 5: every real millisecond of that jitter
is ``SPEED`` emulated ones, and at 20x even 0.97/s drew a dozen 429s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from typing import Any

import knock_async as ka
from knock_async.testing import FastClock, KnockEmulator

from ._common import API_KEY, Report, Settings, Target, log, markdown_table

NAME = "bulk_all"
TITLE = "11. identify_all: 100,000 users at tier 1 (1 request/s), peak memory"

SPEED = 5.0
CHUNK = 1000
DEFAULT_RATE = ka.RateLimits().tier1_per_second  # a little under Knock's 1/s: see above
TARGET_RATIO = 1.02  # the requests span within 2% of the floor at the client's own rate
REAL_TIMEOUT = 300.0


def floor_seconds(users: int, rate: float = 1.0) -> float:
    """The least time from the first request to the last that ``rate`` requests a second
    allow (1/s: what tier 1 allows)."""
    return float(max(0, -(-users // CHUNK) - 1)) / rate


def _users(count: int) -> Iterator[dict[str, Any]]:
    for index in range(count):
        yield {"id": f"user-{index:07d}", "name": f"User {index}", "email": f"u{index}@example.com"}


# ---------------------------------------------------------------------------------------------
# The emulator process: prints its base URL, serves until stdin closes, prints its log's figures


async def _emulator(speed: float) -> None:
    fast = FastClock(speed=speed)
    emu = KnockEmulator(clock=fast, rows_per_second=100_000.0, request_log_size=None)
    async with emu:
        print(emu.base_url, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        posts = sorted(
            r.received_at for r in emu.requests if r.method == "POST" and r.status == 200
        )
        figures = {
            "posts": len(posts),
            "span": (posts[-1] - posts[0]).total_seconds() if posts else 0.0,
            "rate_limited": emu.stats.rate_limited,
            "users": len(emu.users()),
        }
    print(json.dumps(figures), flush=True)


# ---------------------------------------------------------------------------------------------
# The client process: one identify_all, prints one JSON line


async def _client(
    base_url: str, users: int, speed: float, source: str, trace: bool, tier1: float
) -> Any:
    fast = FastClock(speed=speed)
    if trace:
        tracemalloc.start()
    items: Any = _users(users) if source == "generator" else list(_users(users))
    async with ka.KnockClient(
        api_key=API_KEY,
        base_url=base_url,
        clock=fast.monotonic,
        sleep=fast.sleep,
        rate_limits=ka.RateLimits(tier1_per_second=tier1),
    ) as knock:
        started, real = fast.monotonic(), time.perf_counter()
        summary = await knock.users.bulk.identify_all(users=items)
        result = {
            "emulated": fast.monotonic() - started,
            "real": time.perf_counter() - real,
            "operations": len(summary.results),
            "completed": len(summary.by_status("completed")),
            "successes": sum(r.operation.success_count for r in summary.results if r.operation),
        }
    if trace:
        result["peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result


def _run_pair(
    users: int, speed: float, source: str, *, trace: bool, tier1: float
) -> dict[str, Any]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    with subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bulk_all", "emulator", "--speed", repr(speed)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as emulator:
        assert emulator.stdin is not None
        assert emulator.stdout is not None
        base_url = emulator.stdout.readline().strip()
        command = [sys.executable, "-m", "benchmarks.bulk_all", "client", base_url]
        command += ["--users", str(users), "--speed", repr(speed), "--source", source]
        command += ["--trace"] if trace else []
        command += ["--tier1", repr(tier1)]
        done = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            text=True,
            timeout=REAL_TIMEOUT + 60,
            check=True,
            env=env,
        )
        emulator.stdin.close()
        figures = json.loads(emulator.stdout.read().strip().splitlines()[-1])
        emulator.wait(timeout=60)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"source": source, "trace": trace, "speed": speed, "tier1": tier1, **result, **figures}


def run(settings: Settings) -> Report:
    users = settings.pick(10_000, 100_000)
    plan = [
        ("generator", False, DEFAULT_RATE),
        ("generator", False, 1.0),
        ("generator", True, DEFAULT_RATE),
        ("list", True, DEFAULT_RATE),
    ]
    results = []
    for source, trace, tier1 in plan:
        log(f"  bulk_all: {users:,} users from a {source} at {tier1:g}/s, traced: {trace}")
        results.append(_run_pair(users, SPEED, source, trace=trace, tier1=tier1))
    report = Report(name=NAME, title=TITLE)
    _tabulate(report, results, users, quick=settings.quick)
    return report


def _tabulate(report: Report, results: list[dict[str, Any]], users: int, *, quick: bool) -> None:
    floor = floor_seconds(users)
    rows = []
    for result in results:
        span = result["span"]
        peak = result.get("peak_bytes")
        rows.append(
            [
                f"{result['source']}, {result['tier1']:g}/s"
                + (" (the default)" if result["tier1"] == DEFAULT_RATE else "")
                + (" (tracemalloc on)" if result["trace"] else ""),
                f"{result['successes']:,} / {users:,}",
                f"{result['posts']:,}",
                f"{result['rate_limited']:,}",
                f"{span:.1f}",
                f"{floor:.0f}",
                f"{span / floor:.3f}x" if floor else "-",
                "-" if peak is None else f"{peak / 2**20:.1f}",
                f"{result['real']:.1f}",
            ]
        )
    report.table = markdown_table(
        [
            "input",
            "users identified",
            "requests",
            "429s",
            "first to last request, s",
            "tier-1 floor, s",
            "span / tier-1 floor",
            "client peak, MiB",
            "real s",
        ],
        rows,
        align="lrrrrrrrr",
    )
    for timed in (r for r in results if not r["trace"] and r["tier1"] == DEFAULT_RATE):
        own_floor = floor_seconds(users, timed["tier1"])
        ratio = timed["span"] / own_floor if own_floor else float("inf")
        report.targets.append(
            Target(
                name=(
                    f"identify_all over {users:,} users at tier1_per_second="
                    f"{timed['tier1']:g} (the default): every user identified, requests "
                    f"within {TARGET_RATIO:.2f}x of the floor at that rate"
                ),
                met=timed["successes"] == users and ratio <= TARGET_RATIO,
                detail=(
                    f"{timed['successes']:,}/{users:,} identified, {timed['span']:.1f} s vs "
                    f"{own_floor:.1f} s ({ratio:.3f}x; {timed['span'] / floor:.3f}x tier 1's "
                    f"{floor:.0f} s), {timed['rate_limited']} 429s (resent) at "
                    f"{timed['speed']:g}x"
                ),
            )
        )
    by_source = {r["source"]: r.get("peak_bytes") for r in results if r["trace"]}
    generator, listed = by_source.get("generator"), by_source.get("list")
    if generator and listed:
        report.targets.append(
            Target(
                name="a generator input is not held whole: the client's peak well under a list's",
                met=generator * 2 < listed,
                detail=(
                    f"{generator / 2**20:.1f} MiB from a generator, {listed / 2**20:.1f} MiB "
                    "from a list"
                ),
            )
        )
    size = f"{users:,} users" + (" (quick run; the full run uses 100,000)" if quick else "")
    report.notes.append(
        f"- {size} in chunks of {CHUNK:,}; the emulator in its own process with Knock's limits "
        f"(tier 1: a bucket of one token), both on a FastClock at {SPEED:g}x. A 429 (a "
        "request arriving a few ms under a second after the previous one) is resent after its "
        "wait, as nothing started, and the client's adaptive slow-down then lowers the tier's "
        "rate for a while: hence the default of 0.95/s, 50 ms of slack a request. The "
        "span counts accepted requests; the peaks are the client process's alone."
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bulk_all")
    roles = parser.add_subparsers(dest="role", required=True)
    emulator = roles.add_parser("emulator", help="serve the emulator until stdin closes")
    emulator.add_argument("--speed", type=float, default=SPEED)
    client = roles.add_parser("client", help="run one identify_all, print one JSON line")
    client.add_argument("base_url")
    client.add_argument("--users", type=int, required=True)
    client.add_argument("--speed", type=float, default=SPEED)
    client.add_argument("--source", choices=["generator", "list"], default="generator")
    client.add_argument("--trace", action="store_true")
    client.add_argument("--tier1", type=float, default=DEFAULT_RATE, help="tier1_per_second")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.role == "emulator":
        asyncio.run(_emulator(args.speed))
        return
    work = _client(args.base_url, args.users, args.speed, args.source, args.trace, args.tier1)
    result = asyncio.run(asyncio.wait_for(work, REAL_TIMEOUT))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
