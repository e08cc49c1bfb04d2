"""The commands ``bulk-update`` and ``status``, each a stream of the library's events
(``update_many``'s, or the poller's as ``FanOutEvent``) shown by a display; and ``emulator``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from .._client import KnockClient
from .._errors import KnockError
from .._fanout import FanOutEvent, FanOutEventKind, FanOutTotals
from .._progress import Progress, observe
from ._args import PROG, ExitCode, UsageError
from ._outcome import outcome as ended
from ._outcome import overall
from ._plan import BulkPlan, StatusPlan, restricts
from ._run import Redactor, Run, make_client
from ._wrap import prose, terminal_width

__all__ = ["bulk_update", "confirm_delete", "emulator", "status"]

Kind = FanOutEventKind


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
    keys, connection = list(plan.channels), plan.connection
    run = Run(
        "bulk-update",
        keys,
        json=plan.json,
        debug=debug,
        redactor=redactor,
        base_url=connection.base_url,
    )
    async with make_client(connection, redactor) as client:
        fanout = client.channels.bulk.update_many(
            keys, plan.action, concurrency=plan.concurrency, timeout=plan.timeout, **plan.filters
        )
        async with fanout:
            await run.follow(fanout, plan.header, until_submitted=not plan.wait)
    outcome = None
    if not plan.wait and not run.interrupted:
        # Not followed to the end: every update submitted is a success; a refusal is not.
        worst = overall(ended(event) for event in run.latest.values())
        outcome = "submitted" if worst == "completed" else worst
    return run.finish(plan.action, outcome=outcome)


async def status(plan: StatusPlan, redactor: Redactor, *, debug: bool) -> int:
    """One ``get`` (a look), or the poller to the end with ``--watch``."""
    operation_id, connection = plan.operation_id, plan.connection
    run = Run(
        "status",
        [operation_id],
        json=plan.json,
        debug=debug,
        redactor=redactor,
        base_url=connection.base_url,
    )
    header = {"command": "status", "operation_id": operation_id, "watch": plan.watch}
    async with make_client(connection, redactor) as client:
        events = _watch(client, plan) if plan.watch else _look(client, operation_id)
        await run.follow(events, header)
    event = run.latest.get(operation_id)
    if plan.watch or event is None or event.progress is None:
        return run.finish(None)
    # A look, not a wait: a running operation is fine; a failed one is still exit 1.
    return run.finish(None, outcome=event.progress.status.value)


def emulator(args: argparse.Namespace) -> int:
    """``knock-async emulator``: the emulator's front door, shared with ``python -m
    knock_async.testing``, serving until Ctrl-C."""
    from ..testing._frontdoor import serve_from_args  # aiohttp.web: only when it runs

    problem = serve_from_args(args)
    if problem is not None:
        raise UsageError(problem)
    return int(ExitCode.OK)


def _event(
    operation_id: str, progress: Progress | None, error: KnockError | None = None
) -> FanOutEvent:
    """One operation's news as a ``FanOutEvent`` (of a fan-out of one)."""
    op = None if progress is None else progress.operation
    kind = Kind.PROGRESS
    if error is not None:
        kind = Kind.ERROR
    elif op is not None and op.is_terminal:
        kind = Kind(op.status.value)  # completed or failed
    ended = kind is not Kind.PROGRESS
    rows = 0 if op is None else op.processed_rows
    totals = FanOutTotals(
        channels=1,
        submitted=int(op is not None),
        completed=int(kind is Kind.COMPLETED),
        failed=int(kind is Kind.FAILED),
        errored=int(kind is Kind.ERROR),
        processed_rows=rows,
        # Over (even by an error): no more rows are coming, as in the library's own totals.
        estimated_total_rows=rows if op is None or ended else max(op.estimated_total_rows, rows),
        rows_per_second=None if progress is None else progress.rows_per_second,
        eta=None if progress is None or ended else progress.eta,
    )
    return FanOutEvent(
        kind=kind, channel_id=operation_id, progress=progress, error=error, totals=totals
    )


async def _look(client: KnockClient, operation_id: str) -> AsyncIterator[FanOutEvent]:
    try:
        operation = await client.bulk_operations.get(operation_id)
    except KnockError as exc:
        yield _event(operation_id, None, exc)
        return
    yield _event(operation_id, observe(operation, datetime.now(UTC)))


async def _watch(client: KnockClient, plan: StatusPlan) -> AsyncIterator[FanOutEvent]:
    poller = client.bulk_operations.poll(plan.operation_id, timeout=plan.timeout)
    try:
        async for progress in poller:
            yield _event(plan.operation_id, progress)
    except KnockError as exc:  # the poll's end: an API error, the network, the deadline
        yield _event(plan.operation_id, poller.last_progress, exc)
