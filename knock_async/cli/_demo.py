"""``knock-async demo``: the whole flow against the embedded emulator, no Knock account needed.

Seeds several in-app feed channels with realistic messages, archives the read ones older than a
week on all of them at once (``update_many``) with live progress, then checks every channel
against the emulator's store: each message that matched is archived now, and no other changed.
"""

from __future__ import annotations

import argparse
import secrets
from datetime import timedelta
from typing import Any

from .._client import KnockClient
from .._models import BulkActionValue
from .._polling import PollPolicy
from ..testing import KnockEmulator
from ._args import PROG, ExitCode
from ._display import make_display
from ._outcome import Outcome, Row, Tracker, worst
from ._run import Redactor, fanout_updates, finish, follow, sigint_cancels

__all__ = ["demo"]

ACTION: BulkActionValue = "archive"
# Polls a little more often than the library's default (1 s, x1.5): the demo lasts seconds.
DEMO_POLL = PollPolicy(initial_delay=0.25, multiplier=1.25, max_delay=0.5)


def _sizes(channels: int, largest: int) -> list[int]:
    """Channel sizes from ``largest / channels`` up to ``largest``: they finish one by one."""
    return [max(1, round(largest * (index + 1) / channels)) for index in range(channels)]


async def demo(args: argparse.Namespace, redactor: Redactor) -> int:
    key = f"sk_demo_{secrets.token_hex(16)}"  # generated, used here only, never printed
    redactor.add(key)
    rate: float = args.rows_per_second
    display = make_display(json_lines=args.json)
    emulator = KnockEmulator(
        api_keys=[key],
        rows_per_second=rate,
        batch_size=max(1, round(rate / 10)),  # about ten progress steps a second
        queue_delay=0.2,
        seed=7,
    )
    async with emulator as emu:
        channels = [emu.add_channel("in_app_feed") for _ in range(args.channels)]
        sizes = _sizes(args.channels, args.messages)
        for index, (channel, size) in enumerate(zip(channels, sizes, strict=True)):
            emu.add_messages(channel, size, seed=index)
        cutoff = (emu.clock.now() - timedelta(days=7)).replace(microsecond=0)
        filters: dict[str, Any] = {
            "engagement_status": "read",
            "archived": "exclude",
            "older_than": cutoff,
        }

        # What the store says before: the messages the update should archive, and the rest.
        expected: dict[str, set[str]] = {}
        archived_before: dict[str, set[str]] = {}
        for channel in channels:
            messages = emu.messages(channel)
            expected[channel] = {
                m.id
                for m in messages
                if m.read_at is not None and m.archived_at is None and m.inserted_at < cutoff
            }
            archived_before[channel] = {m.id for m in messages if m.archived_at is not None}

        stamp = cutoff.isoformat().replace("+00:00", "Z")
        intro = [
            f"Knock emulator running in-process at {emu.base_url} (a generated sk_demo_ key).",
            f"Seeded {len(channels)} in-app feed channels with {sum(sizes):,} messages "
            f"({', '.join(f'{n:,}' for n in sizes)}).",
            f"Archiving the read messages older than {stamp} on every channel, as",
            f"  {PROG} bulk-update {ACTION} CHANNEL_ID... --engagement-status read "
            f"--archived exclude --older-than {stamp}",
            f"would (emulated processing: {rate:,.0f} rows/s per operation).",
        ]
        header = {
            "command": "demo",
            "action": ACTION,
            "channels": channels,
            "filters": {**filters, "older_than": stamp},
            "wait": True,
            "base_url": emu.base_url,
        }
        tracker = Tracker(Row(key=c, channel_id=c) for c in channels)
        async with KnockClient(api_key=key, base_url=emu.base_url, poll=DEMO_POLL) as client:
            fanout = client.channels.bulk.update_many(channels, ACTION, timeout=120.0, **filters)
            display.start(list(tracker.rows.values()), header, intro)
            with sigint_cancels() as interrupt:
                try:
                    interrupted = await follow(fanout_updates(fanout), tracker, display, interrupt)
                finally:
                    display.stop()
                    await fanout.aclose()

        # The check: compare what the API reported with what the store holds now.
        values: dict[str, dict[str, Any]] = {}
        all_ok = not interrupted
        for channel in channels:
            row = tracker.rows[channel]
            messages = emu.messages(channel)
            archived_now = {m.id for m in messages if m.archived_at is not None}
            wanted = expected[channel]
            archived = len(wanted & archived_now)
            collateral = len(archived_now ^ (archived_before[channel] | wanted))
            ok = (
                row.outcome == Outcome.COMPLETED
                and row.success_count == len(wanted)
                and archived == len(wanted)
                and collateral == 0
            )
            all_ok = all_ok and ok
            values[channel] = {
                "matched": len(wanted),
                "archived_in_store": archived,
                "other_changes": collateral,
                "check": "-" if interrupted else "ok" if ok else "MISMATCH",
            }

    total_matched = sum(len(ids) for ids in expected.values())
    if interrupted:
        notes = ["Interrupted: the check against the emulator's store was not made."]
    elif all_ok:
        notes = [
            f"Check against the emulator's store: OK. All {total_matched:,} matching messages are "
            "archived, and no other message changed.",
            f"Next: `{PROG} emulator` serves the emulator for you to try `{PROG} bulk-update` "
            "against it.",
        ]
    else:
        notes = [
            "Check against the emulator's store: MISMATCH (see the check column, and "
            "other_changes in --json output); please report it with the output of `--debug`."
        ]
    code = None
    if not interrupted:
        code = ExitCode.OK if all_ok else worst([tracker.exit_code(), ExitCode.FAILED])
    return finish(
        command="demo",
        action=ACTION,
        tracker=tracker,
        display=display,
        interrupted=interrupted,
        debug=args.debug,
        redactor=redactor,
        code=code,
        resumable=False,
        summary_extra={
            "columns": [
                ("matched", "matched"),
                ("archived_in_store", "in store"),
                ("check", "check"),  # other_changes (0 when ok) is in the --json output
            ],
            "values": values,
            "notes": notes,
            "extra": {"verified": all_ok},
        },
    )
