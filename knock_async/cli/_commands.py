"""The commands ``bulk-update`` and ``status``: each a stream of the library's events
(``update_many``'s, or the poller's as ``FanOutEvent``) shown by a display."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from .._client import KnockClient
from .._errors import KnockError
from .._fanout import FanOutEvent, FanOutEventKind, FanOutTotals
from .._models import BulkOperationStatus
from .._progress import Progress, observe
from ._args import PROG, ExitCode, UsageError
from ._display import make_display
from ._plan import BulkPlan, StatusPlan, restricts
from ._run import Redactor, Run, finish, load_api_key, make_client

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
    sys.stderr.write(f"{PROG}: {warning}. Type 'delete' to confirm: ")
    sys.stderr.flush()
    if sys.stdin.readline().strip() != "delete":
        raise UsageError("not confirmed; nothing was sent")


async def bulk_update(plan: BulkPlan, redactor: Redactor, *, debug: bool) -> int:
    """``update_many`` over one channel or many, followed to the end (or to submission)."""
    confirm_delete(plan)
    key = load_api_key(plan.connection)
    redactor.add(key)
    keys = list(plan.channels)
    display = make_display(json_lines=plan.json, channels=True, clock=time.monotonic)
    run = Run(keys, display)
    async with make_client(plan.connection, key) as client:
        fanout = client.channels.bulk.update_many(
            keys,
            plan.action,
            concurrency=plan.concurrency,
            timeout=plan.timeout,
            **plan.filters,
        )
        display.start(keys, plan.header)
        async with fanout:
            await run.follow(fanout, until_submitted=not plan.wait)
    outcome = None
    if not plan.wait and not run.interrupted:
        # Not followed to the end: every update submitted is a success; a refusal is not.
        outcome = "error" if any(e.kind is Kind.ERROR for e in run.latest.values()) else "submitted"
    report = run.report("bulk-update", plan.action, outcome=outcome)
    return finish(
        report, display, redactor=redactor, debug=debug, base_url=plan.connection.base_url
    )


async def status(plan: StatusPlan, redactor: Redactor, *, debug: bool) -> int:
    """One ``get`` (a look), or the poller to the end with ``--watch``."""
    key = load_api_key(plan.connection)
    redactor.add(key)
    operation_id = plan.operation_id
    display = make_display(json_lines=plan.json, channels=False, clock=time.monotonic)
    run = Run([operation_id], display, channels=False)
    header = {"command": "status", "operation_id": operation_id, "watch": plan.watch}
    async with make_client(plan.connection, key) as client:
        display.start([operation_id], header)
        events = _watch(client, plan) if plan.watch else _look(client, operation_id)
        await run.follow(events, until_submitted=False)
    name = None
    event = run.latest.get(operation_id)
    if not plan.watch and event is not None and event.progress is not None:
        # A look, not a wait: a running operation is fine; a failed one is still exit 1.
        name = event.progress.status.value
    report = run.report("status", None, outcome=name)
    return finish(
        report, display, redactor=redactor, debug=debug, base_url=plan.connection.base_url
    )


def _event(
    operation_id: str, progress: Progress | None, error: KnockError | None = None
) -> FanOutEvent:
    """One operation's news as a ``FanOutEvent`` (of a fan-out of one)."""
    op = None if progress is None else progress.operation
    if error is not None:
        kind = Kind.ERROR
    elif op is not None and op.status == BulkOperationStatus.COMPLETED:
        kind = Kind.COMPLETED
    elif op is not None and op.status == BulkOperationStatus.FAILED:
        kind = Kind.FAILED
    else:
        kind = Kind.PROGRESS
    ended = kind is not Kind.PROGRESS
    totals = FanOutTotals(
        channels=1,
        submitted=int(op is not None),
        completed=int(kind is Kind.COMPLETED),
        failed=int(kind is Kind.FAILED),
        errored=int(kind is Kind.ERROR),
        processed_rows=0 if op is None else op.processed_rows,
        estimated_total_rows=0
        if op is None
        else op.processed_rows
        if ended or op.is_terminal
        else max(op.estimated_total_rows, op.processed_rows),
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


# -- emulator --------------------------------------------------------------------------------


def emulator(args: argparse.Namespace) -> int:
    """Serve the emulator until Ctrl-C (exit 0), printing how to use it."""
    from ..testing import KnockEmulator, run

    def ready(emu: KnockEmulator) -> None:
        out = sys.stdout
        print(f"Knock emulator listening on {emu.base_url}", file=out)
        channels = emu.channels()
        for channel in channels:
            count = len(emu.messages(channel.id))
            print(f"  channel {channel.id} ({channel.type}, {count} messages)", file=out)
        print("Any sk_... key is accepted. In another terminal, try:", file=out)
        print(f"  export KNOCK_BASE_URL={emu.base_url} KNOCK_API_KEY=sk_test_emulator", file=out)
        if channels:
            ids = " ".join(c.id for c in channels[:3])
            print(f"  {PROG} bulk-update read {ids} --engagement-status unread", file=out)
        print("Ctrl-C to stop.", file=out, flush=True)

    # Ctrl-C must reach asyncio.run even if this process was started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run(
            host=args.host,
            port=args.port,
            channels=args.channels,
            channel_type=args.channel_type,
            seed_messages=args.seed_messages,
            seed=args.seed,
            rows_per_second=args.rows_per_second,
            batch_size=args.batch_size,
            rate_limits=not args.no_rate_limits,
            on_ready=ready,
        )
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; "
            "choose another --port or --host"
        ) from None
    return int(ExitCode.OK)
