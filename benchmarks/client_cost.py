"""1. Client cost per request: CPU time of the client process per HTTP request.

Each client does the same jobs (a bulk POST, then a GET of the operation it returned) with 50
in flight against the canned server in its own process, which is several times cheaper per
request than any client, so the client is the bottleneck. Each client runs in a worker process
of its own that measures its own CPU time (``time.process_time``: user + system, all threads)
over a batch, after a warm-up that opens the connections. A round runs every client once, in a
rotating order, in fresh processes that share the round's hash seed; the first round only
sizes the batches. The table shows medians over the rounds and ratios of medians to raw
aiohttp, the floor for this stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import IO, Any

import attrs

from ._common import Report, Settings, Target, log, markdown_table, median, ratio
from ._peers import PEERS
from ._server import CannedServer

NAME = "client_cost"
TITLE = "1. Client cost per request (CPU time of the client process)"
CONCURRENCY = 50
REFERENCE = "raw_aiohttp"
TARGET_VS_FLOOR = 1.25
TARGET_VS_KNOCKAPI = 4.0
MIN_JOBS = 2 * CONCURRENCY
MAX_JOBS = 20_000


class _Process:
    """One worker process: ``python -m benchmarks._peers PEER BASE_URL``."""

    def __init__(self, name: str, base_url: str, *, hash_seed: int, profile: str | None = None):
        command = [sys.executable, "-m", "benchmarks._peers", name, base_url]
        if profile:
            command += ["--profile", profile]
        env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
        self.name = name
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def ask(self, command: dict[str, Any] | None) -> dict[str, Any]:
        """Send ``command`` (``None``: nothing) and read the worker's one-line JSON answer."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None
        assert stdout is not None
        if command is not None:
            stdin.write(json.dumps(command) + "\n")
            stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} exited (code {self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

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


@attrs.define
class _Peer:
    """One client under test and its results."""

    name: str
    label: str
    unavailable: str | None = None
    failed: str | None = None
    calibration: float = 0.0
    cpu_per_request: list[float] = attrs.Factory(list)
    wall_per_request: list[float] = attrs.Factory(list)
    server_busy: list[float] = attrs.Factory(list)
    jobs: int = 0

    def jobs_for(self, budget: float) -> int:
        """Jobs for a batch of about ``budget`` CPU seconds, from the calibration."""
        if not self.calibration:
            return MIN_JOBS
        return max(MIN_JOBS, min(MAX_JOBS, int(budget / (2 * self.calibration))))


def run(settings: Settings, *, peers: list[str] | None = None) -> Report:
    budget = settings.pick(25, 80) / 100  # CPU seconds per batch
    rounds = settings.pick(5, 11)
    report = Report(name=NAME, title=TITLE)
    clients = [_Peer(name, PEERS[name][0]) for name in peers or list(PEERS)]
    with CannedServer() as server:
        # Round 0 calibrates (not counted): it sizes the batches so that each takes about
        # `budget` CPU seconds, cheap clients running more jobs and expensive ones not hogging
        # the run.
        for round_ in range(rounds + 1):
            log(f"  client_cost: round {round_ + 1}/{rounds + 1}")
            live = [c for c in clients if c.unavailable is None and c.failed is None]
            # Fresh worker processes every round, all with the round's hash seed: a process's
            # seed shifts its speed for good by up to ~10% (dict layouts), as much as the
            # differences measured here, so every round samples another seed.
            processes = {c.name: _Process(c.name, server.base_url, hash_seed=round_) for c in live}
            try:
                for client in live:
                    try:
                        hello = processes[client.name].ask(None)
                    except RuntimeError as exc:
                        client.failed = str(exc)
                        continue
                    client.unavailable = hello.get("unavailable")
                ready = [c for c in live if c.unavailable is None and c.failed is None]
                shift = round_ % max(1, len(ready))
                for client in ready[shift:] + ready[:shift]:
                    _batch(server, client, processes[client.name], round_, budget=budget)
            finally:
                for process in processes.values():
                    process.close()
    _tabulate(report, clients, rounds=rounds, budget=budget)
    return report


def _batch(
    server: CannedServer, client: _Peer, process: _Process, round_: int, *, budget: float
) -> None:
    calibrating = round_ == 0
    jobs = MIN_JOBS if calibrating else client.jobs_for(budget)
    # The warm-up opens the connections and runs every code path often enough for the
    # interpreter's specialisation and the libraries' caches to settle in the fresh process.
    warmup = max(CONCURRENCY, jobs // 4)
    command = {"jobs": jobs, "concurrency": CONCURRENCY, "warmup": warmup}
    server_cpu = server.cpu_seconds()
    try:
        result = process.ask(command)
    except RuntimeError as exc:
        client.failed = str(exc)
        return
    server_cpu = server.cpu_seconds() - server_cpu
    requests = result["requests"]
    if calibrating:
        client.calibration = result["cpu"] / requests
        return
    client.jobs = jobs
    client.cpu_per_request.append(result["cpu"] / requests)
    client.wall_per_request.append(result["wall"] / requests)
    client.server_busy.append(server_cpu / result["wall"])


def _tabulate(report: Report, workers: list[_Peer], *, rounds: int, budget: float) -> None:
    by_name = {w.name: w for w in workers}
    reference = by_name.get(REFERENCE)
    floor = median(reference.cpu_per_request) if reference and reference.cpu_per_request else 0.0
    rows: list[list[str]] = []
    cpu_median: dict[str, float] = {}
    for worker in workers:
        if worker.unavailable is not None or worker.failed is not None:
            why = worker.unavailable or f"failed: {worker.failed}"
            rows.append([worker.label, "-", "-", "-", "-", "-"])
            report.notes.append(f"- {worker.label}: skipped ({why}).")
            continue
        cpu = median(worker.cpu_per_request)
        cpu_median[worker.name] = cpu
        paired: list[float] = []
        if reference is not None:
            pairs = zip(worker.cpu_per_request, reference.cpu_per_request, strict=False)
            paired = [c / r for c, r in pairs]
        spread = f"{min(paired):.2f}-{max(paired):.2f}" if paired else "-"
        rows.append(
            [
                worker.label,
                f"{cpu * 1e6:.0f}",
                f"**{ratio(cpu, floor):.2f}x**" if floor else "-",
                spread,
                f"{1 / median(worker.wall_per_request):,.0f}",
                f"{median(worker.server_busy):.0%}",
            ]
        )
    report.table = markdown_table(
        [
            "client",
            "CPU us/request",
            "vs raw aiohttp",
            "per-round range",
            "requests/s (wall)",
            "server CPU busy",
        ],
        rows,
    )
    sizes = ", ".join(f"{w.name} {w.jobs}" for w in workers if w.jobs)
    report.notes.append(
        f"- A job is a bulk POST then a GET of its operation; {CONCURRENCY} jobs in flight. "
        f"Each batch runs about {budget:g} CPU s of jobs after a warm-up of a quarter as many "
        f"(at least {CONCURRENCY}) "
        f"(jobs per batch: {sizes}); median of {rounds} rounds after a calibration round. "
        "Every round starts fresh worker processes, all with the round's PYTHONHASHSEED (1, "
        f"2, ... {rounds}). Ratios are of medians; the range is of the per-round ratios to raw "
        "aiohttp."
    )
    report.notes.append(
        "- 'server CPU busy' is the canned server's CPU time over the batch's wall time: well "
        "under 100% means the client, not the server, set the pace."
    )
    ours = cpu_median.get("knock_async")
    if ours is not None and floor:
        r = ratio(ours, floor)
        report.targets.append(
            Target(
                name=f"knock_async within {TARGET_VS_FLOOR}x of raw aiohttp",
                met=r <= TARGET_VS_FLOOR,
                detail=f"{r:.2f}x ({ours * 1e6:.0f} vs {floor * 1e6:.0f} us/request)",
            )
        )
    for name in ("knockapi_httpx", "knockapi_aiohttp"):
        label = PEERS[name][0]
        theirs = cpu_median.get(name)
        if ours is None or theirs is None:
            if name in by_name:
                report.targets.append(
                    Target(
                        name=f"at least {TARGET_VS_KNOCKAPI}x cheaper than {label}",
                        met=None,
                        detail="peer not measured",
                    )
                )
            continue
        r = ratio(theirs, ours)
        report.targets.append(
            Target(
                name=f"at least {TARGET_VS_KNOCKAPI}x cheaper than {label}",
                met=r >= TARGET_VS_KNOCKAPI,
                detail=f"{r:.2f}x ({theirs * 1e6:.0f} vs {ours * 1e6:.0f} us/request)",
            )
        )


def profile(settings: Settings, peer: str, path: str) -> None:
    """Run ``peer``'s batches under cProfile into ``path`` (stats of the timed batches only)."""
    jobs = settings.pick(1000, 4000)
    with CannedServer() as server:
        process = _Process(peer, server.base_url, hash_seed=1, profile=path)
        try:
            hello = process.ask(None)
            if "unavailable" in hello:
                raise SystemExit(f"{peer} is unavailable: {hello['unavailable']}")
            started = time.perf_counter()
            for _ in range(settings.pick(3, 5)):
                process.ask({"jobs": jobs, "concurrency": CONCURRENCY, "warmup": CONCURRENCY})
            log(f"  profiled {peer} in {time.perf_counter() - started:.1f} s")
        finally:
            process.close()
