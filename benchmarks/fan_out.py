"""5. Fan-out: one bulk update over many channels, against the emulator with Knock's limits.

``knock.channels.bulk.update_many`` over N channels against the embedded emulator with
Knock's rate limits on (5 POST/s, 200 GET/s per key; excess gets a 429). The emulator and the
client share one ``FastClock``, ``SPEED`` times faster than real time, so the 5 POST/s limit is
enforced and paced for real over loopback while N / 5 emulated seconds pass in N / (5 x
``SPEED``) real ones. The floor is what the POST limit allows: the first POST at once, then one
every 0.2 s, so the last one goes out (N - 1) / 5 s after the first. The span is read from the
emulator's request log (when each POST arrived), so it measures the submissions themselves.

For contrast, the naive way: ``asyncio.gather`` of N ``update_message_status`` calls with the
client's pacing off (``rate_limits=None``), retries off (``RetryPolicy(attempts=1)``), and in
the full run also with the default retries (429s are retried after at least 1 s). The naive
runs go at real time (speed 1): a burst takes a fixed real time (about 0.5 ms a request here),
and at a speed factor S that burst would last S times longer in emulated time, letting the
emulator's token bucket refill S times more and hiding most of the 429s.

Why ``SPEED`` is 50: with the emulator in the same process, real-time costs (about a
millisecond of CPU per request, event-loop latency, timer granularity) become S times larger in
emulated time, and a slot the limiter could not use on time is never made up (strict spacing by
design), so every real millisecond a POST is late costs S emulated milliseconds. Measured here
with 1,000 channels: the span is about 1.01x the floor at 50x and 1.02-1.03x at 100x once timer
granularity is dealt with (``FastClock.sleep`` waits out its last 1.5 ms by yielding to the
loop rather than on a millisecond-granular timer). 50x keeps the full run to about 4 s of real
time. The notes give the real-time lateness behind the gap, which is what the gap would be
at speed 1.
Each scenario runs in a fresh worker process (``python -m benchmarks.fan_out worker ...``)
with the emulator's seeded store frozen out of the garbage collector (``gc.freeze``), so that
its collections do not add pauses a real client process would not have.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import knock_async as ka
from knock_async.testing import FastClock, KnockEmulator

from ._common import API_KEY, Report, Settings, Target, log, markdown_table

NAME = "fan_out"
TITLE = "5. Fan-out over many channels (Knock's limits: 5 POST/s, 200 GET/s)"

SPEED = 50.0  # emulated seconds per real second for update_many
POST_PER_SECOND = 5.0
MESSAGES = 20  # per channel: an operation takes about 0.05 s (queue) + 20 rows at 10,000/s
CONCURRENCY = 10  # update_many's default
TARGET_RATIO = 1.10  # the fan-out's POSTs span within 10% of the floor, with no 429
REAL_TIMEOUT = 300.0  # real seconds: a runaway run must not hang the benchmarks
SCENARIOS = ("update_many", "naive", "naive_retries")


Sleep = Callable[[float], Awaitable[None]]


def floor_seconds(channels: int) -> float:
    """The least time from the first POST to the last that the POST limit allows."""
    return (channels - 1) / POST_PER_SECOND


# ---------------------------------------------------------------------------------------------
# The worker: python -m benchmarks.fan_out worker SCENARIO --channels N --speed S


async def _worker(scenario: str, channels: int, speed: float) -> dict[str, Any]:
    fast = FastClock(speed=speed)
    sleep = fast.sleep
    # The log keeps every request (the POSTs' arrival times are the measurement).
    emu = KnockEmulator(clock=fast, request_log_size=None)
    ids = [emu.add_channel() for _ in range(channels)]
    for index, channel in enumerate(ids):
        emu.add_messages(channel, MESSAGES, seed=index)
    gc.collect()
    gc.freeze()  # the emulator's seeded store is not the client's garbage
    result: dict[str, Any] = {"scenario": scenario, "channels": channels, "speed": speed}
    async with emu:
        if scenario.startswith("update_many"):
            result.update(await _fan_out(emu, fast, sleep, ids))
        else:
            retry = ka.RetryPolicy() if scenario == "naive_retries" else ka.RetryPolicy(attempts=1)
            result.update(await _naive(emu, fast, sleep, ids, retry))
    posts = sorted(r.received_at for r in emu.requests if r.method == "POST")
    result["posts"] = len(posts)
    result["post_span"] = (posts[-1] - posts[0]).total_seconds() if posts else 0.0
    result["gets"] = sum(r.method == "GET" for r in emu.requests)
    result["rate_limited"] = emu.stats.rate_limited
    return result


async def _fan_out(
    emu: KnockEmulator, fast: FastClock, sleep: Sleep, ids: list[str]
) -> dict[str, Any]:
    async with ka.KnockClient(
        api_key=API_KEY, base_url=emu.base_url, clock=fast.monotonic, sleep=sleep
    ) as knock:
        started, real, cpu = fast.monotonic(), time.perf_counter(), time.process_time()
        fan = knock.channels.bulk.update_many(ids, "read", concurrency=CONCURRENCY)
        last_submitted = 0.0
        async for event in fan:
            if event.kind is ka.FanOutEventKind.SUBMITTED:
                last_submitted = fast.monotonic() - started
        summary = await fan
        return {
            "emulated": fast.monotonic() - started,
            "real": time.perf_counter() - real,
            "cpu": time.process_time() - cpu,
            "last_submitted": last_submitted,
            "completed": len(summary.by_status("completed")),
            "errors": dict(
                Counter(type(r.error).__name__ for r in summary.results if r.error is not None)
            ),
        }


async def _naive(
    emu: KnockEmulator, fast: FastClock, sleep: Sleep, ids: list[str], retry: ka.RetryPolicy
) -> dict[str, Any]:
    async with ka.KnockClient(
        api_key=API_KEY,
        base_url=emu.base_url,
        clock=fast.monotonic,
        sleep=sleep,
        rate_limits=None,
        retry=retry,
    ) as knock:
        started, real = fast.monotonic(), time.perf_counter()
        outcomes = await asyncio.gather(
            *(knock.channels.bulk.update_message_status(c, "read") for c in ids),
            return_exceptions=True,
        )
        return {
            "emulated": fast.monotonic() - started,
            "real": time.perf_counter() - real,
            "completed": sum(isinstance(o, ka.BulkOperation) for o in outcomes),
            "rate_limit_errors": sum(isinstance(o, ka.RateLimitError) for o in outcomes),
            "other_errors": sum(
                isinstance(o, BaseException) and not isinstance(o, ka.RateLimitError)
                for o in outcomes
            ),
        }


# ---------------------------------------------------------------------------------------------
# The benchmark, run from python -m benchmarks


def _run_worker(scenario: str, channels: int, speed: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.fan_out", "worker", scenario]
    command += ["--channels", str(channels), "--speed", repr(speed)]
    done = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        text=True,
        timeout=REAL_TIMEOUT + 60,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def run(settings: Settings) -> Report:
    channels = settings.pick(200, 1_000)
    plan = [("update_many", SPEED)]
    plan.append(("naive", 1.0))
    if not settings.quick:
        plan.append(("naive_retries", 1.0))
    results = []
    for scenario, speed in plan:
        log(f"  fan_out: {scenario}, {channels:,} channels at {speed:g}x")
        results.append(_run_worker(scenario, channels, speed))
    report = Report(name=NAME, title=TITLE)
    _tabulate(report, results, channels, quick=settings.quick)
    return report


def _tabulate(report: Report, results: list[dict[str, Any]], channels: int, *, quick: bool) -> None:
    floor = floor_seconds(channels)
    labels = {
        "update_many": f"`update_many` (paced, concurrency {CONCURRENCY})",
        "naive": "`gather` of `update_message_status`, pacing off, retries off",
        "naive_retries": "`gather` of `update_message_status`, pacing off, default retries",
    }
    rows = []
    for result in results:
        scenario = result["scenario"]
        span = result["post_span"]
        speed = result["speed"]
        completed = result["completed"]
        if scenario.startswith("update_many"):
            late_ms = max(0.0, span - floor) / speed * 1000
            gap = f"{span / floor:.3f}x (+{late_ms:.0f} ms real)" if floor else "-"
        else:
            gap = "-"
        rows.append(
            [
                labels[scenario],
                f"{speed:g}x",
                f"{completed:,} / {channels:,}",
                f"{result['rate_limited']:,}",
                f"{result['posts']:,}",
                f"{span:.1f}",
                f"{floor:.1f}",
                gap,
                f"{result['emulated']:.1f}",
                f"{result['real']:.1f}",
            ]
        )
    report.table = markdown_table(
        [
            "how",
            "speed",
            "channels updated",
            "429s",
            "POSTs sent",
            "first to last POST, s",
            "floor (N-1)/5, s",
            "span / floor",
            "all done, emulated s",
            "real s",
        ],
        rows,
        align="llrrrrrrrr",
    )
    fan = next(r for r in results if r["scenario"] == "update_many")
    ratio = fan["post_span"] / floor if floor else float("inf")
    met = fan["rate_limited"] == 0 and fan["completed"] == channels and ratio <= TARGET_RATIO
    report.targets.append(
        Target(
            name=(
                f"update_many over {channels:,} channels: no 429, every channel updated, POSTs "
                f"within {TARGET_RATIO:.2f}x of the floor"
            ),
            met=met,
            detail=(
                f"{fan['rate_limited']} 429s, {fan['completed']}/{channels} updated, "
                f"{fan['post_span']:.1f} s vs {floor:.1f} s ({ratio:.3f}x) at {fan['speed']:g}x"
            ),
        )
    )
    size = f"{channels:,} channels" + (" (quick run; the full run uses 1,000)" if quick else "")
    late = max(0.0, fan["post_span"] - floor) / fan["speed"]
    report.notes.append(
        f"- {size}, {MESSAGES} messages each; Knock's limits enforced by the emulator. "
        f"update_many at {fan['speed']:g}x: emulator and client share one FastClock, the client "
        "sleeping on the same clock (`FastClock.sleep`, precise to microseconds); the POST span "
        "is read from the emulator's request log. The gap to the floor is "
        f"{late * 1000:.0f} ms of real time over {channels - 1:,} intervals (about "
        f"{late / max(1, channels - 1) * 1e6:.0f} us each: event-loop latency with the emulator "
        "in the same process); the limiter never books a late slot early, so at speed 1 the "
        f"same lateness would put the span at {(floor + late) / floor:.4f}x the floor."
    )
    report.notes.append(
        "- The naive rows run at real time (1x): a burst of N requests lasts about the same "
        "real time at any speed factor, so a sped-up clock would refill the emulator's token "
        "bucket faster in emulated terms and hide 429s. '429s' counts the 429s the emulator's "
        "rate limiter answered (retries included); 'channels updated' counts POSTs that "
        "started an operation."
    )
    errors = fan.get("errors") or {}
    if errors:
        report.notes.append(f"- update_many errors: {errors}")
    if quick:
        report.notes.append("- The naive run with the default retries is in the full run only.")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fan_out")
    roles = parser.add_subparsers(dest="role", required=True)
    worker = roles.add_parser("worker", help="run one scenario, print one JSON line")
    worker.add_argument("scenario", choices=SCENARIOS)
    worker.add_argument("--channels", type=int, required=True)
    worker.add_argument("--speed", type=float, default=SPEED)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    result = asyncio.run(
        asyncio.wait_for(_worker(args.scenario, args.channels, args.speed), REAL_TIMEOUT)
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
