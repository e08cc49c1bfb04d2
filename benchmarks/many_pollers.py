"""3. Many pollers: thousands of operations followed at once through one client.

Two ways to follow N operations through one ``KnockClient``, against the embedded emulator:

* **pollers**: N operations started up front (bulk POSTs through a separate client), then
  ``asyncio.gather`` over N ``knock.bulk_operations.poll(op)``: one task, one coroutine stack,
  one sleep and one pacing waiter per operation;
* **update_many**: one ``knock.channels.bulk.update_many`` over N channels, which submits the
  updates and follows every operation from one scheduler with at most ``concurrency`` (10)
  requests in flight: a heap of small records instead of N sleeping coroutines. Its measured
  phase includes its N POSTs.

Each run is a fresh *client* worker process (``python -m benchmarks.many_pollers client``) that
measures only itself over the measured phase: CPU time (``time.process_time``), the rise of its
peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs`` just before) and, in separate runs
(full run only: tracing slows the client three to four times), the ``tracemalloc`` peak, what
stays allocated afterwards and the allocation sites at the peak. The emulator runs in a process
of its own (``... emulator``), so its work and memory are not charged to the client.

Time: both processes read one clock, emulated seconds since a ``CLOCK_MONOTONIC`` instant they
agree on (the same in every process of the machine), ``speed`` times faster than real time. The
client paces itself at Knock's GET limit (200/s, with a burst of 10 so that asyncio's 1 ms timer
granularity, 10 emulated ms at 10x, does not slow it below that; POSTs are not paced here, fan-out
pacing is benchmark 5), so the schedule and the GET count are set by the limit rather than by how
fast this machine is, as long as both processes keep up with ``speed`` x 200 GETs per real
second (the table shows real and emulated seconds). The emulator's own rate limits are off: a
0.1 s pause of its process is a whole emulated second, and requests queued meanwhile would get
429s that a real-time client would not. Operations are started over the real time their POSTs
take, not at one instant: the emulator applies every operation's due steps inside whichever
request comes next, and 10,000 operations on one schedule stall it for half a second at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import attrs

import knock_async as ka

from ._common import API_KEY, Report, Settings, log, markdown_table

NAME = "many_pollers"
TITLE = "3. Many pollers (10,000 operations through one client)"

GET_PER_SECOND = 200.0  # Knock's tier 4, enforced by the emulator and paced by the client
UNLIMITED = 1_000_000.0  # requests per second: "not limited" for the POST tier here
GET_BURST = 10  # absorbs asyncio's 1 ms timer granularity (10 emulated ms at 10x), see notes
MESSAGES = 4  # per channel; an operation processes them one row (one batch) at a time
CONCURRENCY = 10  # update_many's default
SUBMIT_CONCURRENCY = 64  # POSTs in flight while starting the operations of a pollers run
REAL_TIMEOUT = 600.0  # real seconds: a runaway run must not hang the benchmarks
MODES = ("pollers", "update_many")

_CHANNEL_BASE = 0xB0B5 << 64


def channel_id(index: int) -> str:
    """The ``index``-th channel's id: both processes derive it, nothing is sent across."""
    return str(uuid.UUID(int=_CHANNEL_BASE | index, version=4))


@attrs.frozen(kw_only=True)
class Scenario:
    """One configuration measured (a timed run, and in the full run a traced one)."""

    key: str
    mode: str
    operations: int
    duration: float  # emulated seconds each operation takes once started
    speed: float  # emulated seconds per real second
    traced_operations: int  # size of the tracemalloc run (0: none)

    def label(self) -> str:
        ops = f"{self.operations:,}"
        if self.mode == "pollers":
            what = f"{ops} x `bulk_operations.poll`, gathered"
        else:
            what = f"`update_many` over {ops} channels (concurrency {CONCURRENCY})"
        return f"{what}; operations of {self.duration:g} s"


def scenarios(settings: Settings) -> list[Scenario]:
    if settings.quick:
        n = 1_000
        return [
            Scenario(key="pollers", mode="pollers", operations=n, duration=3.0, speed=10.0,
                     traced_operations=0),
            Scenario(key="update_many", mode="update_many", operations=n, duration=3.0,
                     speed=10.0, traced_operations=0),
        ]  # fmt: skip
    n = 10_000
    return [
        Scenario(key="pollers", mode="pollers", operations=n, duration=3.0, speed=10.0,
                 traced_operations=2_000),
        Scenario(key="update_many", mode="update_many", operations=n, duration=3.0, speed=10.0,
                 traced_operations=2_000),
        # Few operations polled many times each: anything kept per poll would pile up here.
        Scenario(key="long", mode="pollers", operations=200, duration=120.0, speed=100.0,
                 traced_operations=200),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The clock both processes share


class SharedClock:
    """Emulated seconds since ``anchor`` (a ``time.monotonic()`` reading, which is the same
    ``CLOCK_MONOTONIC`` in every process on the machine) times ``speed``; 0.0 before it starts.

    It satisfies ``knock_async.testing.Clock`` for the emulator and gives the client its
    ``clock``/``sleep`` pair.
    """

    EPOCH = datetime(2025, 1, 1, tzinfo=UTC)

    def __init__(self) -> None:
        self.anchor: float | None = None
        self.speed = 1.0

    def start(self, anchor: float, speed: float) -> None:
        self.anchor, self.speed = anchor, speed

    def monotonic(self) -> float:
        if self.anchor is None:
            return 0.0
        return max(0.0, (time.monotonic() - self.anchor) * self.speed)

    def to_datetime(self, monotonic: float) -> datetime:
        return self.EPOCH + timedelta(seconds=monotonic)

    def now(self) -> datetime:
        return self.to_datetime(self.monotonic())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


# ---------------------------------------------------------------------------------------------
# Memory readings


def _status_kb(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); 0 where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            found = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE)
    except OSError:
        return 0
    return int(found.group(1)) if found else 0


def _reset_peak_rss() -> bool:
    """Make ``VmHWM`` start again from the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _answer(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# The emulator process: python -m benchmarks.many_pollers emulator ...
# It answers one JSON line on start ({"base_url": ...}) and one per command on stdin:
# "go ANCHOR SPEED" starts the shared clock, "stats" reports its counters; EOF stops it.


def _emulator_main(args: argparse.Namespace) -> None:
    if args.trace:
        tracemalloc.start()
    asyncio.run(_serve_emulator(args))


async def _serve_emulator(args: argparse.Namespace) -> None:
    from knock_async.testing import KnockEmulator

    clock = SharedClock()
    emu = KnockEmulator(
        clock=clock,
        # Off: the client's pacing sets the schedule. On a sped-up clock a pause of the emulator
        # process (a garbage collection, a batch of operations' steps) of 0.1 s real is a whole
        # second of emulated time, more than Knock's one-second bucket holds, and the requests
        # that queued meanwhile would get 429s no real-time client would see.
        rate_limits=False,
        rows_per_second=args.messages / args.duration,
        batch_size=1,
        queue_delay=0.0,
        retention=None,
    )
    for index in range(args.channels):
        emu.add_messages(emu.add_channel(channel_id=channel_id(index)), args.messages, seed=index)
    gc.collect()
    gc.freeze()  # the seeded store: fewer and shorter collections pausing the emulator
    lines: asyncio.Queue[str] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, "")

    threading.Thread(target=read_stdin, daemon=True).start()
    async with emu:
        _answer({"base_url": emu.base_url})
        while line := await asyncio.wait_for(lines.get(), timeout=REAL_TIMEOUT):
            command, *rest = line.split()
            if command == "go":
                clock.start(float(rest[0]), float(rest[1]))
                _answer({"started": True})
            elif command == "stats":
                _answer(_emulator_stats(emu))


def _emulator_stats(emu: Any) -> dict[str, Any]:
    stats = emu.stats
    answer: dict[str, Any] = {
        "requests": stats.requests,
        "rate_limited": stats.rate_limited,
        "log_entries": len(emu.requests),
        "cpu": time.process_time(),
    }
    if tracemalloc.is_tracing():
        # What the request log holds: traced memory before and after forgetting it.
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        emu.clear_requests()
        gc.collect()
        answer["log_bytes"] = before - tracemalloc.get_traced_memory()[0]
    return answer


class _Emulator:
    """The emulator process, seen from the client: ask a question, read the one-line answer."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.hello = self.read()

    def read(self) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator process exited (code {self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, command: str) -> dict[str, Any]:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()
        return self.read()

    def close(self) -> None:
        _close(self.process.stdin)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        _close(self.process.stdout)


def _close(stream: IO[str] | None) -> None:
    if stream is not None:
        stream.close()


# ---------------------------------------------------------------------------------------------
# The client process: python -m benchmarks.many_pollers client ...


class _PeakSampler:
    """While tracing: keep the allocation sites of the largest traced heap seen (sampled)."""

    def __init__(self, interval: float = 0.2) -> None:
        self._interval = interval
        self._best = 0
        self.sites: list[list[Any]] = []

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            current = tracemalloc.get_traced_memory()[0]
            if current > self._best * 1.2:
                self._best = current
                self._capture()

    def _capture(self) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        self.sites = [
            [_short(stat.traceback[0].filename, stat.traceback[0].lineno), stat.size, stat.count]
            for stat in snapshot.statistics("lineno")[:12]
        ]


def _short(filename: str, lineno: int) -> str:
    parts = filename.replace("\\", "/").split("/")
    for root in ("knock_async", "aiohttp", "yarl", "multidict", "asyncio", "benchmarks", "json"):
        if root in parts:
            return "/".join(parts[parts.index(root) :]) + f":{lineno}"
    return "/".join(parts[-2:]) + f":{lineno}"


def _by_package(snapshot: tracemalloc.Snapshot) -> dict[str, int]:
    """Traced bytes by the package of the line that allocated them."""
    totals: dict[str, int] = {}
    for stat in snapshot.statistics("filename"):
        site = _short(stat.traceback[0].filename, 0)
        package = site.split("/")[0] if "/" in site else "other"
        totals[package] = totals.get(package, 0) + stat.size
    return totals


def _client_main(args: argparse.Namespace) -> None:
    emulator_command = [sys.executable, "-m", "benchmarks.many_pollers", "emulator"]
    emulator_command += ["--channels", str(args.operations), "--duration", str(args.duration)]
    if args.trace_emulator:
        emulator_command.append("--trace")
    emulator = _Emulator(emulator_command)
    try:
        result = asyncio.run(asyncio.wait_for(_measure(args, emulator), REAL_TIMEOUT))
    finally:
        emulator.close()
    _answer(result)


async def _measure(args: argparse.Namespace, emulator: _Emulator) -> dict[str, Any]:
    n = args.operations
    base_url = emulator.hello["base_url"]
    ids = [channel_id(i) for i in range(n)]
    result: dict[str, Any] = {"mode": args.mode, "operations": n, "trace": args.trace}
    clock = SharedClock()
    anchor = time.monotonic()
    emulator.ask(f"go {anchor!r} {args.speed!r}")
    clock.start(anchor, args.speed)

    operations: list[ka.BulkOperation] = []
    if args.mode == "pollers":
        # Start every operation first, with a client of its own so that nothing of it is left
        # in the measured one.
        async with ka.KnockClient(api_key=API_KEY, base_url=base_url, rate_limits=None) as starter:
            slots = asyncio.Semaphore(SUBMIT_CONCURRENCY)

            async def start(channel: str) -> ka.BulkOperation:
                async with slots:
                    return await starter.channels.bulk.update_message_status(channel, "read")

            operations = await asyncio.gather(*(start(c) for c in ids))
        del starter, start, slots

    knock = ka.KnockClient(
        api_key=API_KEY,
        base_url=base_url,
        clock=clock.monotonic,
        sleep=clock.sleep,
        rate_limits=ka.RateLimits(
            post_per_second=UNLIMITED, get_per_second=GET_PER_SECOND, get_burst=GET_BURST
        ),
    )
    before = emulator.ask("stats")
    gc.collect()
    sampler = _PeakSampler()
    sampling: asyncio.Task[None] | None = None
    if args.trace:
        tracemalloc.start()
        sampling = asyncio.ensure_future(sampler.run())
    result["rss_reset"] = _reset_peak_rss()
    rss_before = _status_kb("VmRSS")
    emulated = clock.monotonic()
    cpu = time.process_time()
    wall = time.perf_counter()

    kept: object
    if args.mode == "pollers":
        finals = await asyncio.gather(
            *(knock.bulk_operations.poll(op, timeout=None) for op in operations),
            return_exceptions=True,
        )
        result["failures"] = sum(
            not (isinstance(f, ka.BulkOperation) and f.status == ka.BulkOperationStatus.COMPLETED)
            for f in finals
        )
        kept = finals
    else:
        summary = await knock.channels.bulk.update_many(
            ids, "read", concurrency=CONCURRENCY, timeout=None
        )
        result["failures"] = n - len(summary.by_status("completed"))
        kept = summary

    result["cpu"] = time.process_time() - cpu
    result["wall"] = time.perf_counter() - wall
    result["emulated"] = clock.monotonic() - emulated
    result["rss_peak_kb"] = _status_kb("VmHWM") - rss_before
    if sampling is not None:
        sampling.cancel()
        result["traced_peak"] = tracemalloc.get_traced_memory()[1]
        # Right after `await gather(...)` the finished gather is still referenced from the C
        # call that resumed this coroutine; one trip through the loop lets it go.
        await asyncio.sleep(0)
        gc.collect()
        result["held_with_results"] = tracemalloc.get_traced_memory()[0]
        del kept, operations
        if args.mode == "pollers":
            del finals
        else:
            del summary
        await asyncio.sleep(0)
        gc.collect()
        result["left_after_release"] = tracemalloc.get_traced_memory()[0]
        left = tracemalloc.take_snapshot()
        result["left_by_package"] = _by_package(left)
        result["left_in_knock_async"] = [
            [_short(stat.traceback[0].filename, stat.traceback[0].lineno), stat.size, stat.count]
            for stat in left.filter_traces(
                [tracemalloc.Filter(True, "*/knock_async/*")]
            ).statistics("lineno")[:5]
        ]
        del left
        await knock.aclose()
        await asyncio.sleep(0)
        gc.collect()
        result["left_after_close"] = tracemalloc.get_traced_memory()[0]
        result["peak_sites"] = sampler.sites
        tracemalloc.stop()
    else:
        await knock.aclose()
    after = emulator.ask("stats")
    result["requests"] = after["requests"] - before["requests"]
    result["posts"] = n if args.mode == "update_many" else 0
    result["gets"] = result["requests"] - result["posts"]
    result["rate_limited"] = after["rate_limited"] - before["rate_limited"]
    result["emulator_cpu"] = after["cpu"] - before["cpu"]
    result["log_entries"] = after["log_entries"]
    if "log_bytes" in after:
        result["log_bytes"] = after["log_bytes"]
    return result


# ---------------------------------------------------------------------------------------------
# The benchmark, run from python -m benchmarks


def _worker(scenario: Scenario, *, trace: bool) -> dict[str, Any]:
    operations = scenario.traced_operations if trace else scenario.operations
    command = [sys.executable, "-m", "benchmarks.many_pollers", "client", scenario.mode]
    command += ["--operations", str(operations), "--duration", repr(scenario.duration)]
    command += ["--speed", repr(scenario.speed)]
    if trace:
        command.append("--trace")
        if scenario.key == "pollers":
            command.append("--trace-emulator")  # to weigh its request log
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
    report = Report(name=NAME, title=TITLE)
    plan = scenarios(settings)
    timed: dict[str, dict[str, Any]] = {}
    traced: dict[str, dict[str, Any]] = {}
    for scenario in plan:
        log(f"  many_pollers: {scenario.label()}")
        timed[scenario.key] = _worker(scenario, trace=False)
        if scenario.traced_operations:
            log(f"  many_pollers: the same with tracemalloc, {scenario.traced_operations:,} ops")
            traced[scenario.key] = _worker(scenario, trace=True)
    _tabulate(report, plan, timed, traced, quick=settings.quick)
    return report


def _kib(value: float) -> str:
    return f"{value / 1024:.2f}"


def _tabulate(
    report: Report,
    plan: list[Scenario],
    timed: dict[str, dict[str, Any]],
    traced: dict[str, dict[str, Any]],
    *,
    quick: bool,
) -> None:
    rows = []
    for scenario in plan:
        r = timed[scenario.key]
        n, gets, posts = r["operations"], r["gets"], r["posts"]
        requests = f"{gets:,} GET ({gets / n:.2f}/op)" + (f" + {posts:,} POST" if posts else "")
        rows.append(
            [
                scenario.label(),
                requests,
                f"{r['emulated']:.0f} / {r['wall']:.1f}",
                f"{r['cpu'] * 1e6 / (gets + posts):.0f}",
                f"{r['rss_peak_kb'] / n:.2f}" if r["rss_reset"] else "-",
                str(r["failures"]),
            ]
        )
    tables = [
        markdown_table(
            [
                "how",
                "requests in the phase",
                "emulated s / real s",
                "client CPU us/request",
                "peak RSS rise KiB/op",
                "not completed",
            ],
            rows,
            align="lrrrrr",
        )
    ]
    if traced:
        traced_rows = []
        for scenario in plan:
            t = traced.get(scenario.key)
            if t is None:
                continue
            n = t["operations"]
            traced_rows.append(
                [
                    scenario.label().replace(f"{scenario.operations:,}", f"{n:,}"),
                    f"{t['gets']:,} ({t['gets'] / n:.2f}/op)",
                    _kib(t["traced_peak"] / n),
                    _kib(t["held_with_results"] / n),
                    f"{_kib(t['left_after_release'])} "
                    f"({_kib(t['left_by_package'].get('knock_async', 0))})",
                    _kib(t["left_after_close"]),
                ]
            )
        tables.append(
            markdown_table(
                [
                    "tracemalloc run",
                    "GETs",
                    "peak KiB/op",
                    "held at the end, results included, KiB/op",
                    "left after results released, KiB (in knock_async code)",
                    "left after client closed, KiB",
                ],
                traced_rows,
                align="lrrrrr",
            )
        )
    report.table = "\n\n".join(tables)
    _notes(report, plan, timed, traced, quick=quick)


def _notes(
    report: Report,
    plan: list[Scenario],
    timed: dict[str, dict[str, Any]],
    traced: dict[str, dict[str, Any]],
    *,
    quick: bool,
) -> None:
    n = plan[0].operations
    size = f"{n:,} operations" + (" (quick run; the full run uses 10,000)" if quick else "")
    speeds = ", ".join(f"{s.key} {s.speed:g}x" for s in plan)
    report.notes.append(
        f"- {size}; one client, paced at 200 GET/s (burst 10), POSTs unpaced; the emulator (its "
        f"rate limits off) in a process of its own; emulated clock vs real time: {speeds}. "
        "'client CPU "
        "us/request' is the client process's CPU time over the phase over the requests the "
        "emulator received in it (update_many's include its POSTs). 'peak RSS rise' is VmHWM "
        "over VmRSS at the start of the phase, per operation, results included. Single runs: "
        "CPU per request moves by 10-20% from run to run on this machine."
    )
    pollers, fan = timed.get("pollers"), timed.get("update_many")
    if pollers and fan:
        rss_a = pollers["rss_peak_kb"] / pollers["operations"]
        rss_b = fan["rss_peak_kb"] / fan["operations"]
        traced_part = ""
        ta, tb = traced.get("pollers"), traced.get("update_many")
        if ta and tb:
            traced_part = (
                f" (tracemalloc: {_kib(ta['traced_peak'] / ta['operations'])} vs "
                f"{_kib(tb['traced_peak'] / tb['operations'])} KiB, of which the results held at "
                f"the end are {_kib(ta['held_with_results'] / ta['operations'])} and "
                f"{_kib(tb['held_with_results'] / tb['operations'])} KiB)"
            )
        report.notes.append(
            f"- Per-operation pollers vs the shared budget: peak memory {rss_a:.2f} vs "
            f"{rss_b:.2f} KiB per operation by RSS ({rss_a / rss_b:.1f}x){traced_part}; CPU "
            f"{pollers['cpu'] * 1e6 / pollers['requests']:.0f} vs "
            f"{fan['cpu'] * 1e6 / fan['requests']:.0f} us per request. The pollers' operations "
            "all exist before the phase and are done by the time their first GETs get a turn "
            "at 200/s (one GET each); update_many starts its operations during the phase and "
            "polls each on its own schedule (1 s, 2.5 s, ...), so it makes more GETs and lasts "
            "longer."
        )
    for key in ("pollers", "update_many"):
        t = traced.get(key)
        if not t or not t.get("peak_sites"):
            continue
        ops = t["operations"]
        sites = "; ".join(
            f"`{site}` {size / ops:.0f} B ({count / ops:.1f} blocks)"
            for site, size, count in t["peak_sites"][:8]
        )
        report.notes.append(
            f"- Largest allocation sites at the {key} peak (tracemalloc, sampled every 0.2 s), "
            f"per operation: {sites}."
        )
    left = [
        f"{traced[s.key]['left_by_package'].get('knock_async', 0) / 1024:.1f} KiB after "
        f"{traced[s.key]['gets']:,} GETs over {traced[s.key]['operations']:,} operations"
        for s in plan
        if s.key in traced
    ]
    if left:
        t = traced.get("long") or next(iter(traced.values()))
        sites = "; ".join(
            f"`{site}` {size / 1024:.1f} KiB ({count} blocks)"
            for site, size, count in t["left_in_knock_async"][:3]
        )
        report.notes.append(
            "- What stays once the results are released, allocated by knock_async's own code: "
            f"{'; '.join(left)}: it follows neither the GETs nor the operations. In the "
            f"{t['operations']:,}-operation run it sits at {sites}. The rest of 'left after "
            "results released' is aiohttp's connection pool and asyncio's bookkeeping, which "
            "closing the client frees."
        )
    t = traced.get("pollers")
    if t and "log_bytes" in t and t["log_entries"]:
        per_entry = t["log_bytes"] / t["log_entries"]
        report.notes.append(
            f"- The emulator's request log held {t['log_entries']:,} entries in "
            f"{t['log_bytes'] / 2**20:.1f} MiB ({per_entry:.0f} B each, measured in the emulator "
            f"process): the default `request_log_size=10_000` caps it near "
            f"{per_entry * 10_000 / 2**20:.0f} MiB; `request_log_size=None` grows by that much "
            "per request for as long as the emulator runs."
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.many_pollers")
    roles = parser.add_subparsers(dest="role", required=True)
    emulator = roles.add_parser("emulator", help="serve the emulator (stdin: go, stats)")
    emulator.add_argument("--channels", type=int, required=True)
    emulator.add_argument("--messages", type=int, default=MESSAGES)
    emulator.add_argument("--duration", type=float, required=True, help="emulated s per op")
    emulator.add_argument("--trace", action="store_true", help="tracemalloc (weighs the log)")
    client = roles.add_parser("client", help="run one scenario, print one JSON line")
    client.add_argument("mode", choices=MODES)
    client.add_argument("--operations", type=int, required=True)
    client.add_argument("--duration", type=float, required=True, help="emulated s per op")
    client.add_argument("--speed", type=float, required=True)
    client.add_argument("--trace", action="store_true", help="tracemalloc in the client")
    client.add_argument("--trace-emulator", action="store_true", help="tracemalloc there too")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.role == "emulator":
        _emulator_main(args)
    else:
        _client_main(args)


if __name__ == "__main__":
    main()
