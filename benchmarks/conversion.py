"""6. Model conversion: ``BulkOperation`` to and from its wire form, per object.

``knock_async`` converts with its one cattrs converter (what the client runs on every
response); ``knockapi`` with pydantic: ``BulkOperation.model_validate`` and ``model_dump``, plus
``construct_type``, what the SDK runs on a response by default (it skips validation unless the
client is built with ``_strict_response_validation=True``). The object is a realistic
operation: every field present, two error items, three timestamps. Each timing is the median
over repetitions of a loop of calls, divided by the loop's length.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from typing import Any

from ._common import Report, Settings, log, markdown_table, median, operation_wire, ratio

NAME = "conversion"
TITLE = "6. Model conversion: BulkOperation, per object"


def _time_loop(function: Callable[[], object], loops: int) -> float:
    started = time.perf_counter()
    for _ in range(loops):
        function()
    return (time.perf_counter() - started) / loops


def _cases() -> tuple[list[tuple[str, str, Callable[[], object]]], str | None]:
    """``(operation, implementation, call)``; the first of each operation is knock_async's."""
    from knock_async import BulkOperation
    from knock_async._convert import converter, loads_operation, structure_operation

    wire = operation_wire()
    body = json.dumps(wire).encode()
    ours = structure_operation(wire)
    assert converter.unstructure(ours) == wire, "the benchmark's object must round-trip"
    cases: list[tuple[str, str, Callable[[], object]]] = [
        ("dict -> model", "knock_async (cattrs)", lambda: structure_operation(wire)),
        ("model -> dict", "knock_async (cattrs)", lambda: converter.unstructure(ours)),
        ("JSON bytes -> model", "knock_async (json + cattrs)", lambda: loads_operation(body)),
    ]
    # The assertion above relies on the dict's types; keep mypy aware of the model type.
    assert isinstance(ours, BulkOperation)
    try:
        from knockapi._models import construct_type
        from knockapi.types import BulkOperation as PydanticOperation
    except ImportError as exc:
        return cases, f"knockapi is not installed ({exc})"
    theirs = PydanticOperation.model_validate(wire)

    def construct() -> object:
        return construct_type(value=wire, type_=PydanticOperation)

    def dump() -> dict[str, Any]:
        return theirs.model_dump(mode="json", by_alias=True)

    cases += [
        (
            "dict -> model",
            "knockapi model_validate (pydantic)",
            lambda: PydanticOperation.model_validate(wire),
        ),
        ("dict -> model", "knockapi construct_type (its response default, unvalidated)", construct),
        ("model -> dict", "knockapi model_dump(mode='json', by_alias=True)", dump),
        (
            "JSON bytes -> model",
            "knockapi model_validate_json",
            lambda: PydanticOperation.model_validate_json(body),
        ),
    ]
    return cases, None


def run(settings: Settings) -> Report:
    report = Report(name=NAME, title=TITLE)
    loops = settings.pick(1_000, 2_000)
    repetitions = settings.pick(7, 25)
    cases, missing = _cases()
    if missing is not None:
        report.notes.append(f"- knockapi rows skipped: {missing}.")
    # Interleaved: every repetition times each case once, so a slow moment of the machine
    # weighs on all of them alike. Objects from earlier benchmarks and imports are frozen out
    # of the garbage collector's way; the cases' own allocations are still collected.
    gc.collect()
    gc.freeze()
    try:
        for _, _, call in cases:  # warm-up
            _time_loop(call, max(1, loops // 10))
        timings: list[list[float]] = [[] for _ in cases]
        for repetition in range(repetitions):
            log(f"  conversion: repetition {repetition + 1}/{repetitions}")
            for index, (_, _, call) in enumerate(cases):
                timings[index].append(_time_loop(call, loops))
    finally:
        gc.unfreeze()
    order = {operation: i for i, (operation, _, _) in enumerate(cases[:3])}
    reference: dict[str, float] = {}
    rows = []
    for (operation, implementation, _), results in sorted(
        zip(cases, timings, strict=True), key=lambda item: order[item[0][0]]
    ):
        seconds = median(results)
        reference.setdefault(operation, seconds)
        rows.append(
            [
                operation,
                implementation,
                f"{seconds * 1e6:.2f}",
                f"{ratio(seconds, reference[operation]):.2f}x",
            ]
        )
    report.table = markdown_table(
        ["conversion", "implementation", "us/object", "vs knock_async"], rows, align="llrr"
    )
    report.notes.append(
        f"- Median of {repetitions} loops of {loops:,} calls each, the cases interleaved, after "
        "a warm-up. "
        "The ratio is to knock_async doing the same conversion; above 1 means slower than it."
    )
    return report
