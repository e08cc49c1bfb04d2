"""The commands: ``bulk-update``, ``status`` and ``emulator``."""

from __future__ import annotations

import argparse
import signal
import sys
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

from .._client import KnockClient
from .._errors import KnockError
from .._fanout import FanOut, FanOutEventKind
from .._models import BulkActionValue, BulkOperationStatus, BulkUpdateMessagesForChannelRequest
from .._progress import Progress
from ._args import PROG, ExitCode, UsageError
from ._display import make_display
from ._outcome import Row, Tracker
from ._run import (
    Redactor,
    Update,
    fanout_updates,
    finish,
    follow,
    load_api_key,
    make_client,
    sigint_cancels,
)

__all__ = ["bulk_update", "emulator", "filters_from_args", "status"]

Kind = FanOutEventKind

_FILTERS = (
    "archived",
    "delivery_status",
    "engagement_status",
    "has_tenant",
    "newer_than",
    "older_than",
    "recipient_ids",
    "tenants",
    "trigger_data",
    "workflows",
)


def filters_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The filters given on the command line, as ``update_message_status`` keywords."""
    return {name: getattr(args, name) for name in _FILTERS if getattr(args, name) is not None}


def filters_json(filters: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value
        for name, value in filters.items()
    }


def restricts(filters: dict[str, Any]) -> bool:
    """Whether the filters select fewer than every message of a channel.

    ``--archived include`` and ``--trigger-data '{}'`` match everything, so alone they do not
    count: ``delete`` with only those still deletes every message.
    """
    for name, value in filters.items():
        if name == "archived" and value == "include":
            continue
        if name == "trigger_data" and value.strip() in ("{}", ""):
            continue
        return True
    return False


def read_channels(args: argparse.Namespace) -> list[str]:
    """Channel ids from the arguments, then ``--channels-file``; each once, in order."""
    channels: list[str] = list(args.channel_ids)
    source = args.channels_file
    if source is not None:
        try:
            if source == "-":
                text = sys.stdin.read()
            else:
                with open(source, encoding="utf-8") as file:
                    text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"cannot read --channels-file {source}: {reason}") from None
        for number, line in enumerate(text.splitlines(), start=1):
            for token in line.split("#", 1)[0].split():
                try:
                    channels.append(str(uuid.UUID(token)))
                except ValueError:
                    raise UsageError(
                        f"--channels-file {source}, line {number}: {token!r} is not a channel "
                        "id (a UUID)"
                    ) from None
    if not channels:
        raise UsageError("no channel: give CHANNEL_ID arguments or --channels-file PATH")
    seen: set[str] = set()
    for channel in channels:
        if channel in seen:
            raise UsageError(f"channel {channel} is listed twice (it would be updated twice)")
        seen.add(channel)
    return channels


def confirm_delete(args: argparse.Namespace, channels: list[str], filters: dict[str, Any]) -> None:
    """``delete`` with no restricting filter deletes every message: ``--yes`` or a typed
    confirmation on a terminal, else a usage error."""
    if args.action != "delete" or restricts(filters) or args.yes:
        return
    what = f"{len(channels)} channels" if len(channels) > 1 else f"channel {channels[0]}"
    warning = f"`delete` with no filter deletes EVERY message in {what}"
    interactive = sys.stdin.isatty() and sys.stderr.isatty() and args.channels_file != "-"
    interactive = interactive and args.api_key_file != "-"
    if not interactive or args.json:
        raise UsageError(
            f"{warning}; nothing was sent. Pass --yes to confirm, or add a filter "
            "(e.g. --older-than 2024-01-01T00:00:00Z)"
        )
    sys.stderr.write(f"{PROG}: {warning}. Type 'delete' to confirm: ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip()
    if answer != "delete":
        raise UsageError("not confirmed; nothing was sent")


# -- bulk-update -----------------------------------------------------------------------------


async def _single(
    client: KnockClient,
    channel: str,
    action: BulkActionValue,
    filters: dict[str, Any],
    *,
    timeout: float,
    wait: bool,
) -> AsyncGenerator[Update, None]:
    """One channel: ``update_message_status`` then ``bulk_operations.poll``."""
    try:
        operation = await client.channels.bulk.update_message_status(channel, action, **filters)
    except KnockError as exc:
        yield Update(Kind.ERROR, channel, error=exc)
        return
    async for update in _poll_updates(
        client, channel, operation, timeout=timeout, wait=wait, first=Kind.SUBMITTED
    ):
        yield update


async def _poll_updates(
    client: KnockClient,
    key: str,
    target: Any,
    *,
    timeout: float,
    wait: bool = True,
    first: FanOutEventKind = Kind.PROGRESS,
) -> AsyncGenerator[Update, None]:
    poller = client.bulk_operations.poll(target, timeout=timeout)
    kind = first
    last: Progress | None = None
    try:
        async for progress in poller:
            last = progress
            if progress.is_terminal:
                if kind is Kind.SUBMITTED:
                    yield Update(Kind.SUBMITTED, key, progress)
                done = (
                    Kind.FAILED if progress.status == BulkOperationStatus.FAILED else Kind.COMPLETED
                )
                yield Update(done, key, progress)
                return
            yield Update(kind, key, progress)
            kind = Kind.PROGRESS
            if not wait:
                return
    except KnockError as exc:  # the poll's end: an API error, the network, the deadline
        yield Update(Kind.ERROR, key, last if last is not None else poller.last_progress, exc)


async def bulk_update(args: argparse.Namespace, redactor: Redactor) -> int:
    channels = read_channels(args)
    filters = filters_from_args(args)
    try:  # every filter checked before anything is sent
        BulkUpdateMessagesForChannelRequest(**filters)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    confirm_delete(args, channels, filters)
    key = load_api_key(args)
    redactor.add(key)
    display = make_display(json_lines=args.json)
    tracker = Tracker(Row(key=c, channel_id=c) for c in channels)
    header = {
        "command": "bulk-update",
        "action": args.action,
        "channels": channels,
        "filters": filters_json(filters),
        "wait": not args.no_wait,
    }
    fanout: FanOut | None = None
    async with make_client(args, key) as client:
        if len(channels) == 1:
            updates = _single(
                client,
                channels[0],
                args.action,
                filters,
                timeout=args.timeout,
                wait=not args.no_wait,
            )
        else:
            fanout = client.channels.bulk.update_many(
                channels,
                args.action,
                concurrency=args.concurrency,
                timeout=args.timeout,
                **filters,
            )
            updates = fanout_updates(fanout)
        display.start(list(tracker.rows.values()), header)
        with sigint_cancels() as interrupt:
            try:
                interrupted = await follow(
                    updates, tracker, display, interrupt, stop_when_submitted=args.no_wait
                )
            finally:
                display.stop()
                if fanout is not None:
                    await fanout.aclose()
    code: ExitCode | None = None
    outcome: str | None = None
    if args.no_wait and not interrupted:
        # Not followed to the end: exit 0 once every update is submitted, 3 if one was refused.
        code = tracker.exit_code()
        outcome = "submitted" if code == ExitCode.OK else None
    return finish(
        command="bulk-update",
        action=args.action,
        tracker=tracker,
        display=display,
        interrupted=interrupted,
        debug=args.debug,
        redactor=redactor,
        code=code,
        outcome=outcome,
    )


# -- status ----------------------------------------------------------------------------------


async def status(args: argparse.Namespace, redactor: Redactor) -> int:
    operation_id: str = args.operation_id
    if not operation_id or "/" in operation_id or operation_id in (".", ".."):
        raise UsageError(f"{operation_id!r} is not a bulk operation id")
    key = load_api_key(args)
    redactor.add(key)
    display = make_display(json_lines=args.json)
    tracker = Tracker([Row(key=operation_id, channel_id=None, operation_id=operation_id)])
    header = {"command": "status", "operation_id": operation_id, "watch": args.watch}
    interrupted = False
    async with make_client(args, key) as client:
        display.start(list(tracker.rows.values()), header)
        with sigint_cancels() as interrupt:
            try:
                if args.watch:
                    updates = _poll_updates(
                        client, operation_id, operation_id, timeout=args.timeout
                    )
                else:
                    updates = _get_once(client, operation_id)
                interrupted = await follow(updates, tracker, display, interrupt)
            finally:
                display.stop()
    row = tracker.rows[operation_id]
    code: ExitCode | None = None
    outcome: str | None = None
    if not args.watch and not interrupted and row.error is None:
        # A look, not a wait: a running operation is fine; a failed one is still exit 1.
        code = ExitCode.FAILED if row.status == "failed" else ExitCode.OK
        outcome = row.status
    return finish(
        command="status",
        action=None,
        tracker=tracker,
        display=display,
        interrupted=interrupted,
        debug=args.debug,
        redactor=redactor,
        code=code,
        outcome=outcome,
        what="operation",
    )


async def _get_once(client: KnockClient, operation_id: str) -> AsyncGenerator[Update, None]:
    try:
        operation = await client.bulk_operations.get(operation_id)
    except KnockError as exc:
        yield Update(Kind.ERROR, operation_id, error=exc)
        return
    if operation.status == BulkOperationStatus.COMPLETED:
        kind = Kind.COMPLETED
    elif operation.status == BulkOperationStatus.FAILED:
        kind = Kind.FAILED
    else:
        kind = Kind.PROGRESS
    yield Update(kind, operation_id, operation=operation)


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
