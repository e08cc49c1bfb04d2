"""The commands ``bulk-update`` and ``status``, each a library stream (``update_many``'s,
``follow_many``'s) shown by a display; and ``emulator``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._errors import KnockError
from .._fanout import ChannelResult, FanOutEvent, FanOutEventKind, FanOutSummary, FanOutTotals
from ._args import PROG, ExitCode, UsageError
from ._plan import BulkPlan, StatusPlan, restricts
from ._run import Redactor, Run, make_client
from ._wrap import prose, terminal_width

__all__ = ["bulk_update", "confirm_delete", "emulator", "status"]


def confirm_delete(plan: BulkPlan) -> None:
    """``delete`` with no restricting filter deletes every message: ``--yes`` or a typed
    confirmation on a terminal, else a usage error."""
    if plan.action != "delete" or restricts(plan.filters) or plan.yes:
        return
    channels = plan.channels
    what = f"{len(channels)} channels" if len(channels) > 1 else f"channel {channels[0]}"
    warning = f"`delete` with no filter deletes EVERY message in {what}"
    interactive = sys.stdin.isatty() and sys.stderr.isatty() and not plan.stdin_is_data
    if not interactive or plan.json:
        raise UsageError(
            f"{warning}; nothing was sent. Pass --yes to confirm, or add a filter "
            "(e.g. --older-than 2024-01-01T00:00:00Z)"
        )
    # Wrapped between words: a terminal would cut the channel id at its edge.
    prompt = prose(f"{PROG}: {warning}. Type 'delete' to confirm:", terminal_width(sys.stderr))
    sys.stderr.write(prompt + " ")
    sys.stderr.flush()
    if sys.stdin.readline().strip() != "delete":
        raise UsageError("not confirmed; nothing was sent")


async def bulk_update(plan: BulkPlan, redactor: Redactor, *, debug: bool) -> int:
    """``update_many`` over one channel or many, followed to the end (or to submission), once
    ``confirm_delete`` has let it."""
    connection, run = plan.connection, _run("bulk-update", plan, redactor, debug=debug)
    async with make_client(connection, redactor) as client:
        fanout = client.channels.bulk.update_many(
            plan.channels, plan.action, concurrency=plan.concurrency, **plan.deadlines,
            **plan.filters,
        )  # fmt: skip
        # --no-wait: until every channel has its operation or its error.
        until = None if plan.wait else _all_submitted
        await run.follow(fanout, plan.header, rows=plan.channels, until=until)
    return run.finish(plan.action, stopped=None if plan.wait else "submitted")


async def status(plan: StatusPlan, redactor: Redactor, *, debug: bool) -> int:
    """One GET (a look: the operation as it stands, no wait, no deadline), or ``follow_many``
    to the end with ``--watch``."""
    operation_id, run = plan.operation_id, _run("status", plan, redactor, debug=debug)
    header = {"command": "status", "operation_id": operation_id, "watch": plan.watch}
    async with make_client(plan.connection, redactor) as client:
        operations = client.bulk_operations
        if plan.watch:
            await run.follow(operations.follow_many([operation_id], **plan.deadlines), header)
            return run.finish(None)
        try:
            operation = await operations.get(operation_id)
        except KnockError as exc:
            return _refused_look(run, header, operation_id, exc)
        # The one snapshot as the library's stream shows it: its first event needs no request.
        await run.follow(operations.follow_many([operation]), header, until=lambda _: True)
    # A look, not a wait: a running operation is fine (its status); a failed one is exit 1.
    return run.finish(None, stopped=operation.status.value)


def _run(command: str, plan: BulkPlan | StatusPlan, redactor: Redactor, *, debug: bool) -> Run:
    base_url = plan.connection.base_url
    return Run(command, json=plan.json, debug=debug, redactor=redactor, base_url=base_url)


def _all_submitted(event: FanOutEvent) -> bool:
    return event.totals.unsubmitted == 0


def _refused_look(run: Run, header: dict[str, Any], operation_id: str, error: KnockError) -> int:
    """A look whose GET was refused: the error, as a stream of one would end."""
    totals = FanOutTotals(
        channels=1, submitted=0, completed=0, failed=0, errored=1, processed_rows=0,
        estimated_total_rows=0, rows_per_second=None, eta=None,
    )  # fmt: skip
    result = ChannelResult(channel_id=None, operation=None, error=error, operation_id=operation_id)
    run.display.start(header, (), ())
    run.display.update(
        FanOutEvent(kind=FanOutEventKind.ERROR, channel_id=None, progress=None, error=error,
                    totals=totals, operation_id=operation_id)
    )  # fmt: skip
    run.summary = FanOutSummary(results=(result,), totals=totals)
    return run.finish(None)


def emulator(args: argparse.Namespace) -> int:
    """``knock-async emulator``: the emulator's front door, shared with ``python -m
    knock_async.testing``, serving until Ctrl-C."""
    from ..testing._frontdoor import serve_from_args  # aiohttp.web: only when it runs

    problem = serve_from_args(args)
    if problem is not None:
        raise UsageError(problem)
    return int(ExitCode.OK)
