"""``python -m benchmarks``: run the benchmarks and print a Markdown report on stdout.

Progress goes to stderr, so ``python -m benchmarks > report.md`` keeps the report alone.
"""

from __future__ import annotations

import argparse
import importlib
import pstats
import sys
import time
from collections.abc import Callable
from types import ModuleType

from ._common import Report, Settings, log, machine_rows, markdown_table

# In the order of the benchmarks issue; each module has NAME, TITLE and run(settings).
MODULES = [
    "client_cost",
    "import_time",
    "many_pollers",
    "poll_efficiency",
    "fan_out",
    "conversion",
    "shared_limit",
    "emulator_speed",
    "cli_demo",
    "instructions",
    "bulk_all",
]


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.{name}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure knock_async side by side with raw aiohttp and knockapi, and "
        "print a Markdown table of ratios per benchmark.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(MODULES)}",
    )
    parser.add_argument("--quick", action="store_true", help="a run under a minute, less precise")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 if a target was missed"
    )
    parser.add_argument(
        "--instructions",
        choices=["all", "jobs", "import"],
        default="all",
        help="what the instructions benchmark counts: per job, per import, or both (default)",
    )
    parser.add_argument(
        "--profile",
        metavar="PEER",
        help="instead of benchmarking, cProfile one client of the client-cost benchmark "
        "(raw_aiohttp, knock_async, knock_async_paced, knockapi_httpx, knockapi_aiohttp)",
    )
    parser.add_argument(
        "--profile-out",
        metavar="FILE",
        help="where --profile writes its stats (default: PEER.prof)",
    )
    return parser


def _profile(settings: Settings, peer: str, path: str) -> None:
    from . import client_cost

    client_cost.profile(settings, peer, path)
    print(f"# cProfile of {peer} in the client-cost benchmark (timed batches only)\n")
    print(f"Stats saved to `{path}` (open with `python -m pstats {path}`).\n\n```")
    stats = pstats.Stats(path, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(30)
    print("```")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings(quick=args.quick)
    if args.list:
        for name in MODULES:
            module = _load(name)
            print(f"{name:16} {module.TITLE}")
        return 0
    if args.profile:
        _profile(settings, args.profile, args.profile_out or f"{args.profile}.prof")
        return 0
    unknown = [n for n in args.names if n not in MODULES]
    if unknown:
        _parser().error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {MODULES}")
    names = args.names or MODULES

    mode = "quick" if settings.quick else "full"
    print(f"# knock_async benchmarks ({mode} run)\n")
    print(markdown_table(["machine", ""], machine_rows(), align="ll"))
    print()
    started = time.perf_counter()
    reports: list[Report] = []
    for name in names:
        module = _load(name)
        log(f"{name}: {module.TITLE}")
        run: Callable[[Settings], Report] = module.run
        begun = time.perf_counter()
        report = (
            module.run(settings, mode=args.instructions)
            if name == "instructions"
            else run(settings)
        )
        report.seconds = time.perf_counter() - begun
        reports.append(report)
        print(report.markdown(), flush=True)

    targets = [t for r in reports for t in r.targets]
    if targets:
        print("## Targets\n")
        print("\n".join(t.line() for t in targets))
        print()
    print(f"_Total: {time.perf_counter() - started:.0f} s._")
    missed = any(t.met is False for t in targets)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
