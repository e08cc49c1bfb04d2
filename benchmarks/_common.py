"""What every benchmark shares: settings, the report it returns, Markdown tables, fixtures."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from typing import Any

import attrs

__all__ = [
    "API_KEY",
    "CHANNEL_ID",
    "Report",
    "Settings",
    "Target",
    "log",
    "machine_rows",
    "markdown_table",
    "median",
    "operation_wire",
    "ratio",
]

API_KEY = "sk_bench_not_a_real_key"
CHANNEL_ID = "7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c11"
OPERATION_ID = "123e4567-e89b-12d3-a456-426614174000"


@attrs.frozen(kw_only=True)
class Settings:
    """How hard to measure. ``quick`` trades precision for a run under a minute."""

    quick: bool = False

    def pick(self, quick: int, full: int) -> int:
        return quick if self.quick else full


@attrs.frozen(kw_only=True)
class Target:
    """A goal from the benchmarks issue and whether this run met it (``None``: not measured)."""

    name: str
    met: bool | None
    detail: str

    def line(self) -> str:
        mark = {True: "MET", False: "MISSED", None: "NOT MEASURED"}[self.met]
        return f"- **{mark}** {self.name}: {self.detail}"


@attrs.define(kw_only=True)
class Report:
    """What a benchmark prints: a title, its table, notes and targets; or why it was skipped."""

    name: str
    title: str
    table: str = ""
    notes: list[str] = attrs.Factory(list)
    targets: list[Target] = attrs.Factory(list)
    skipped: str | None = None
    seconds: float = 0.0

    def markdown(self) -> str:
        parts = [f"## {self.title}", ""]
        if self.skipped is not None:
            parts += [f"_Skipped: {self.skipped}_", ""]
            return "\n".join(parts)
        parts += [self.table, ""]
        if self.targets:
            parts += [*(t.line() for t in self.targets), ""]
        if self.notes:
            parts += [*(f"{n}" for n in self.notes), ""]
        parts += [f"_({self.name} took {self.seconds:.1f} s)_", ""]
        return "\n".join(parts)


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def ratio(value: float, reference: float) -> float:
    return value / reference if reference > 0 else float("inf")


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, align: str | None = None
) -> str:
    """A GitHub Markdown table; ``align`` is one of ``l``/``r`` per column (default: l, then r)."""
    spec = align or "l" + "r" * (len(headers) - 1)
    cells = [list(headers), *(list(r) for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: Sequence[str]) -> str:
        padded = (
            cell.ljust(w) if a == "l" else cell.rjust(w)
            for cell, w, a in zip(row, widths, spec, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    rule = (
        "| "
        + " | ".join(
            ("-" * w if a == "l" else "-" * (w - 1) + ":")
            for w, a in zip(widths, spec, strict=True)
        )
        + " |"
    )
    return "\n".join([fmt(cells[0]), rule, *(fmt(r) for r in cells[1:])])


def log(message: str) -> None:
    """Progress goes to stderr, so that stdout is the Markdown report alone."""
    print(message, file=sys.stderr, flush=True)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_rows() -> list[list[str]]:
    """The machine and the versions measured, for the report's header table."""
    packages = ["knock-async", "aiohttp", "attrs", "cattrs", "yarl"]
    packages += ["knockapi", "httpx", "httpx-aiohttp", "pydantic"]
    rows = [
        ["CPU", f"{_cpu_model()} ({os.cpu_count()} logical CPUs)"],
        [
            "nproc (usable)",
            str(
                len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            ),
        ],
        ["Python", f"{platform.python_implementation()} {platform.python_version()}"],
        ["OS", platform.platform(terse=True)],
    ]
    rows += [[p, _version(p)] for p in packages]
    return rows


def operation_wire(**changes: Any) -> dict[str, Any]:
    """A complete ``BulkOperation`` as the API sends it (every field present), with changes."""
    data: dict[str, Any] = {
        "__typename": "BulkOperation",
        "id": OPERATION_ID,
        "name": "bulk_update_messages_for_channel",
        "status": "processing",
        "estimated_total_rows": 1000,
        "processed_rows": 400,
        "success_count": 398,
        "error_count": 2,
        "error_items": [
            {"id": "msg_2bGkF0SYm3A2ZcuAonpCMzmvfVq", "collection": "messages"},
            {"id": "msg_2bGkF3ujgbZ2wqTyVyFJbIqq4Qw", "collection": None},
        ],
        "progress_path": f"/v1/bulk_operations/{OPERATION_ID}",
        "inserted_at": "2024-05-22T12:00:00.250000Z",
        "updated_at": "2024-05-22T12:00:04.123456Z",
        "started_at": "2024-05-22T12:00:01.500000Z",
        "completed_at": None,
        "failed_at": None,
    }
    data.update(changes)
    return data
