"""9. Wall time of ``knock-async demo`` with its defaults, from start to exit.

Each run is a fresh ``python -m knock_async demo`` (no key, output to a pipe, so no live
display), timed from spawning the process to its exit: interpreter start-up, imports, the
embedded emulator, seeding, the archive over its channels and the store check. The issue asks
for "well under 30 s"; the tests check what the demo prints, never how long it takes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ._common import Report, Settings, Target, log, markdown_table, median

NAME = "cli_demo"
TITLE = "9. `knock-async demo` wall time (defaults, fresh process)"
_LIMIT = 30.0


def _env() -> dict[str, str]:
    # The same scrub as the CLI tests: no key, no base URL, no forced terminal or colour.
    drop = ("KNOCK_API_KEY", "KNOCK_BASE_URL", "KNOCK_BRANCH", "FORCE_COLOR", "COLUMNS")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _once() -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "knock_async", "demo"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or "Check against the emulator's store: OK." not in result.stdout:
        raise RuntimeError(f"the demo failed (exit {result.returncode}): {result.stderr[-2000:]}")
    return elapsed


def run(settings: Settings) -> Report:
    report = Report(name=NAME, title=TITLE)
    repetitions = settings.pick(1, 5)
    times = []
    for repetition in range(repetitions):
        log(f"  cli_demo: run {repetition + 1}/{repetitions}")
        times.append(_once())
    value = median(times)
    report.table = markdown_table(
        ["runs", "median s", "min s", "max s"],
        [[str(repetitions), f"{value:.1f}", f"{min(times):.1f}", f"{max(times):.1f}"]],
    )
    report.targets.append(
        Target(
            name="`knock-async demo` runs in well under 30 s",
            met=max(times) < _LIMIT / 2,
            detail=f"slowest of {repetitions} run(s) {max(times):.1f} s (target: under 15 s)",
        )
    )
    report.notes.append(
        "- Each run is a fresh `python -m knock_async demo`, timed from spawn to exit "
        "(start-up and imports included); the demo must end with its store check OK."
    )
    return report
