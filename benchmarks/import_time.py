"""2. Import time: ``knock_async`` vs ``knockapi`` vs the four dependencies alone.

Each import runs in a fresh interpreter that times the ``import`` statement alone (interpreter
start-up excluded), median of several runs. Bytecode caches are warm for every candidate: the
children write theirs under a temporary ``PYTHONPYCACHEPREFIX`` during a warm-up run, so an
environment with ``PYTHONDONTWRITEBYTECODE`` (or an editable install without ``__pycache__``)
does not charge compilation to one candidate only. One more run with ``-X importtime`` splits
``knock_async``'s own modules from what its dependencies cost.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

from ._common import Report, Settings, log, markdown_table, median, ratio

NAME = "import_time"
TITLE = "2. Import time (fresh interpreter, warm bytecode caches)"

_TIMER = "import time as _t\n_s = _t.perf_counter()\n{statement}\nprint(_t.perf_counter() - _s)\n"
_DEPENDENCIES = "import aiohttp, attrs, cattrs, yarl"
_NO_AIOHTTP_EXTRA = "import sys; sys.modules['httpx_aiohttp'] = None; import knockapi"


def _candidates() -> list[tuple[str, str, str | None]]:
    """``(label, statement, why it cannot run)`` in table order."""
    has_knockapi = importlib.util.find_spec("knockapi") is not None
    has_extra = importlib.util.find_spec("httpx_aiohttp") is not None
    missing = None if has_knockapi else "knockapi is not installed"
    rows: list[tuple[str, str, str | None]] = [
        ("aiohttp + attrs + cattrs + yarl (the dependencies)", _DEPENDENCIES, None),
        ("knock_async", "import knock_async", None),
    ]
    if has_extra:
        rows.append(("knockapi (as installed: imports httpx-aiohttp)", "import knockapi", missing))
        rows.append(("knockapi without the aiohttp extra", _NO_AIOHTTP_EXTRA, missing))
    else:
        rows.append(("knockapi", "import knockapi", missing))
    return rows


def _run(statement: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *extra, "-c", _TIMER.format(statement=statement)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def _own_modules_ms(env: dict[str, str]) -> float:
    """Self time of ``knock_async``'s own modules, from ``-X importtime``."""
    stderr = _run("import knock_async", env, "-X", "importtime").stderr
    total_us = 0
    for line in stderr.splitlines():
        # "import time:  self [us] | cumulative | imported package"
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip().startswith("knock_async"):
            total_us += int(parts[0].split(":")[1])
    return total_us / 1000


def run(settings: Settings) -> Report:
    report = Report(name=NAME, title=TITLE)
    repetitions = settings.pick(5, 15)
    candidates = _candidates()
    cache = tempfile.mkdtemp(prefix="knock-bench-pycache-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    times: dict[str, list[float]] = {label: [] for label, _, _ in candidates}
    try:
        runnable = [(label, statement) for label, statement, why in candidates if why is None]
        for _, statement in runnable:  # warm-up: writes the bytecode caches
            _run(statement, env)
        for repetition in range(repetitions):
            log(f"  import_time: repetition {repetition + 1}/{repetitions}")
            for label, statement in runnable:
                times[label].append(float(_run(statement, env).stdout.split()[-1]))
        own = _own_modules_ms(env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    ours = median(times["knock_async"])
    rows = []
    for label, _, why in candidates:
        if why is not None:
            rows.append([label, "-", "-"])
            report.notes.append(f"- {label}: skipped ({why}).")
            continue
        value = median(times[label])
        rows.append([label, f"{value * 1000:.0f}", f"{ratio(value, ours):.2f}x"])
    report.table = markdown_table(["import", "ms (median)", "vs knock_async"], rows)
    deps = median(times[candidates[0][0]])
    report.notes.append(
        f"- knock_async minus its four dependencies alone: {(ours - deps) * 1000:+.0f} ms "
        "(the difference of two medians, so within the noise when small); `-X importtime` puts "
        f"the self time of its own modules at {own:.0f} ms (that includes building the cattrs "
        "converter; `-X importtime` inflates small modules)."
    )
    report.notes.append(
        f"- Median of {repetitions} runs per import, each in a fresh `python -c`; "
        "the import statement alone is timed."
    )
    return report
