"""10. Instructions per job and per import, counted by valgrind's callgrind.

Timed on a shared 2-core machine a client's cost wanders by 30% between runs; counted in CPU
instructions it is stable to a fraction of a percent, so this is the figure the per-request
targets are judged on.

**Per job.** Each client runs in its own process under ``valgrind --tool=callgrind
--instr-atstart=no``; the canned server (``_server.py``) runs in another process, not under
valgrind. The client process warms up uninstrumented, then switches callgrind's
instrumentation on around the measured jobs alone (``_callgrind.py``), so start-up, imports
and connecting are not counted. A fixed ``PYTHONHASHSEED`` makes runs repeatable. Each client
is measured one job at a time and with 50 in flight.

**Per import.** ``python -c "import X"`` under callgrind, with bytecode cached (as from a
wheel), minus ``python -c "pass"``: the instructions of the import alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ._callgrind import PEERS
from ._common import Report, Settings, Target, log, markdown_table, ratio
from ._server import CannedServer

NAME = "instructions"
TITLE = "10. Instructions per job and per import (callgrind)"
REFERENCE = "raw_aiohttp"
HASH_SEED = "0"
CONCURRENCIES = (1, 50)
TARGET_PACING_OFF = 1.15
TARGET_PACING_ON = 1.20
TARGET_IMPORT = 1.15
TARGET_VS_KNOCKAPI = 5.0

_TOGGLE_C = """
#include <valgrind/callgrind.h>
void bench_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void bench_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""

_IMPORTS = [
    ("aiohttp + attrs + cattrs + yarl (the dependencies)", "import aiohttp, attrs, cattrs, yarl"),
    ("knock_async (stdlib JSON)", "import sys; sys.modules['orjson'] = None; import knock_async"),
    ("knock_async (as installed)", "import knock_async"),
]


def missing_tools() -> str | None:
    """Why this benchmark cannot run here, or ``None``."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (apt-get install valgrind)"
    if shutil.which("cc") is None:
        return "no C compiler (cc) to build the callgrind toggle"
    if not Path("/usr/include/valgrind/callgrind.h").exists():
        return "valgrind/callgrind.h is missing (apt-get install valgrind)"
    return None


def _build_toggle(directory: Path) -> Path:
    source, library = directory / "toggle.c", directory / "libtoggle.so"
    source.write_text(_TOGGLE_C)
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O1", "-o", str(library), str(source)],
        check=True,
        capture_output=True,
    )
    return library


def _instructions(out_file: Path) -> int:
    """The total instructions (Ir) in a callgrind output file."""
    summary = None
    for line in out_file.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
        if line.startswith("summary:"):
            summary = int(line.split()[1])
    if summary is None:
        raise RuntimeError(f"no totals in {out_file}")
    return summary


def _callgrind(out_file: Path, *args: str, instr_at_start: bool, env: dict[str, str]) -> str:
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--instr-atstart={'yes' if instr_at_start else 'no'}",
        f"--callgrind-out-file={out_file}",
        "--quiet",
        sys.executable,
        *args,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed under callgrind: {done.stderr[-2000:]}")
    return done.stdout


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONHASHSEED"] = HASH_SEED
    env.update(extra)
    return env


def per_job(
    settings: Settings, work: Path, toggle: Path, peers: list[str] | None = None
) -> dict[tuple[str, int], float | str]:
    """Instructions per job by (peer, concurrency); a string says why a peer has none."""
    results: dict[tuple[str, int], float | str] = {}
    with CannedServer() as server:
        for name in peers or list(PEERS):
            jobs = settings.pick(100, 400) if name != "knockapi" else settings.pick(40, 100)
            for concurrency in CONCURRENCIES:
                log(f"  instructions: {name}, {concurrency} in flight, {jobs} jobs")
                out = work / f"{name}-{concurrency}.out"
                said = _callgrind(
                    out,
                    "-m",
                    "benchmarks._callgrind",
                    name,
                    server.base_url,
                    f"--jobs={jobs}",
                    f"--concurrency={concurrency}",
                    f"--warmup={max(2 * concurrency, jobs // 2)}",
                    f"--toggle={toggle}",
                    instr_at_start=False,
                    env=_env(),
                )
                if said.startswith("UNAVAILABLE"):
                    results[(name, concurrency)] = said.split(" ", 1)[1].strip()
                    break
                results[(name, concurrency)] = _instructions(out) / jobs
    return results


def per_import(work: Path) -> dict[str, float]:
    """Instructions of each import statement, interpreter start-up subtracted."""
    env = _env(PYTHONPYCACHEPREFIX=str(work / "pycache"))
    for _, statement in _IMPORTS:  # writes the bytecode caches, as a wheel's install does
        subprocess.run([sys.executable, "-c", statement], env=env, check=True, timeout=120)
    log("  instructions: interpreter start-up")
    empty = work / "import-empty.out"
    _callgrind(empty, "-c", "pass", instr_at_start=True, env=env)
    start_up = _instructions(empty)
    counts: dict[str, float] = {}
    for index, (label, statement) in enumerate(_IMPORTS):
        log(f"  instructions: {label}")
        out = work / f"import-{index}.out"
        _callgrind(out, "-c", statement, instr_at_start=True, env=env)
        counts[label] = _instructions(out) - start_up
    return counts


def _job_report(report: Report, results: dict[tuple[str, int], float | str]) -> None:
    rows = []
    for name, (label, _) in PEERS.items():
        row = [label]
        for concurrency in CONCURRENCIES:
            value = results.get((name, concurrency))
            floor = results.get((REFERENCE, concurrency))
            if isinstance(value, float) and isinstance(floor, float):
                row += [f"{value / 1000:,.1f}k", f"{ratio(value, floor):.2f}x"]
            else:
                row += ["-", "-"]
                if isinstance(value, str):
                    report.notes.append(f"- {label}: skipped ({value}).")
        rows.append(row)
    report.table = markdown_table(["client", "1 at a time", "ratio", "50 in flight", "ratio"], rows)

    def worst(name: str) -> float | None:
        ratios = []
        for concurrency in CONCURRENCIES:
            value, floor = results.get((name, concurrency)), results.get((REFERENCE, concurrency))
            if not (isinstance(value, float) and isinstance(floor, float)):
                return None
            ratios.append(ratio(value, floor))
        return max(ratios)

    for name, target in (
        ("knock_async", TARGET_PACING_OFF),
        ("knock_async_paced", TARGET_PACING_ON),
    ):
        got = worst(name)
        report.targets.append(
            Target(
                name=f"{PEERS[name][0]} within {target:.2f}x of raw aiohttp in instructions",
                met=None if got is None else got <= target,
                detail="not measured" if got is None else f"{got:.2f}x (the worse concurrency)",
            )
        )
    theirs, ours = results.get(("knockapi", 50)), results.get(("knock_async", 50))
    if isinstance(theirs, float) and isinstance(ours, float):
        report.targets.append(
            Target(
                name=f"knockapi at least {TARGET_VS_KNOCKAPI:.0f}x knock_async in instructions",
                met=theirs / ours >= TARGET_VS_KNOCKAPI,
                detail=f"{theirs / ours:.1f}x (50 in flight)",
            )
        )


def _import_report(report: Report, counts: dict[str, float]) -> None:
    deps = counts[_IMPORTS[0][0]]
    rows = [
        [label, f"{value / 1e6:,.0f}M", f"{ratio(value, deps):.3f}x"]
        for label, value in counts.items()
    ]
    report.notes.append(
        "\nInstructions of `import X` (bytecode cached, interpreter start-up subtracted):\n\n"
        + markdown_table(["import", "instructions", "vs the dependencies"], rows)
        + "\n"
    )
    ours = counts[_IMPORTS[1][0]]
    report.targets.append(
        Target(
            name=f"`import knock_async` within {TARGET_IMPORT:.2f}x of its four dependencies",
            met=ours / deps <= TARGET_IMPORT,
            detail=f"{ours / deps:.3f}x (stdlib JSON)",
        )
    )


def run(settings: Settings, *, mode: str = "all", peers: list[str] | None = None) -> Report:
    report = Report(name=NAME, title=TITLE)
    why_not = missing_tools()
    if why_not is not None:
        report.skipped = why_not
        return report
    work = Path(tempfile.mkdtemp(prefix="knock-bench-callgrind-"))
    try:
        if mode in ("all", "jobs"):
            toggle = _build_toggle(work)
            _job_report(report, per_job(settings, work, toggle, peers))
        if mode in ("all", "import"):
            _import_report(report, per_import(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.notes.append(
        f"- Instructions per job (one bulk POST and one GET) counted by callgrind in the client "
        f"process only, PYTHONHASHSEED={HASH_SEED}; filters differ at every call."
    )
    return report
