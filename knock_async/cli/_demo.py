"""``knock-async demo``: the whole flow against the embedded emulator, no Knock account needed.

Seeds several in-app feed channels with realistic messages, archives the read ones older than a
week on all of them at once (``update_many``) with live progress, then checks every channel
against the emulator's store: each message that matched is archived now, and no other changed.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from .._client import KnockClient
from .._fanout import Outcome
from .._follow import PollPolicy
from .._models import BulkActionValue
from ..testing import KnockEmulator
from ._args import PROG
from ._plan import DemoPlan, filters_json, start_header
from ._run import Redactor, Run

__all__ = ["demo"]

ACTION: BulkActionValue = "archive"
# Polls a little more often than the library's default (1 s, x1.5): the demo lasts seconds.
DEMO_POLL = PollPolicy(initial_delay=0.25, multiplier=1.25, max_delay=0.5)


async def demo(plan: DemoPlan, redactor: Redactor, *, debug: bool) -> int:
    """Seed the emulator, archive on every channel at once, check its store; the exit code."""
    key = f"sk_demo_{secrets.token_hex(16)}"  # generated, used here only, never printed
    redactor.secrets.add(key)
    rate, count = plan.rows_per_second, plan.channels
    # About ten progress steps a second.
    batch = max(1, round(rate / 10))
    emulator = KnockEmulator(
        api_keys=[key], rows_per_second=rate, batch_size=batch, queue_delay=0.2, seed=7
    )
    async with emulator as emu:
        channels = [emu.add_channel("in_app_feed") for _ in range(count)]
        # From ``messages / channels`` up to ``messages``: the channels finish one by one.
        sizes = [max(1, round(plan.messages * (n + 1) / count)) for n in range(count)]
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
        stamp = filters_json(filters)["older_than"]
        intro = [
            f"Knock emulator running in-process at {emu.base_url} (a generated sk_demo_ key).",
            f"Seeded {count} in-app feed channels with {sum(sizes):,} messages "
            f"({', '.join(f'{n:,}' for n in sizes)}).",
            f"Archiving the read messages older than {stamp} on every channel, as",
            f"  {PROG} bulk-update {ACTION} CHANNEL_ID... --engagement-status read "
            f"--archived exclude --older-than {stamp}",
            f"would (emulated processing: {rate:,.0f} rows/s per operation).",
        ]
        header = start_header("demo", ACTION, channels, filters, wait=True, base_url=emu.base_url)
        run = Run("demo", json=plan.json, debug=debug, redactor=redactor, base_url=emu.base_url)
        async with KnockClient(api_key=key, base_url=emu.base_url, poll=DEMO_POLL) as client:
            fanout = client.channels.bulk.update_many(channels, ACTION, timeout=120.0, **filters)
            summary = await run.follow(fanout, header, intro=intro, rows=channels)

        # The check: compare what the API reported with what the store holds now.
        values: dict[str, dict[str, Any]] = {}
        for result in summary.results:
            channel, op = str(result.channel_id), result.operation
            wanted = expected[channel]
            archived_now = {m.id for m in emu.messages(channel) if m.archived_at is not None}
            archived = len(wanted & archived_now)
            collateral = len(archived_now ^ (archived_before[channel] | wanted))
            ok = result.outcome is Outcome.COMPLETED and collateral == 0
            ok = ok and op is not None and op.success_count == len(wanted) == archived
            values[channel] = {
                "matched": len(wanted),
                "archived_in_store": archived,
                "other_changes": collateral,
                "check": "-" if run.interrupted else "ok" if ok else "MISMATCH",
            }

    verified = not run.interrupted and all(v["check"] == "ok" for v in values.values())
    matched = sum(len(ids) for ids in expected.values())
    notes = [
        f"Check against the emulator's store: OK. All {matched:,} matching messages are "
        "archived, and no other message changed.",
        f"Next: `{PROG} emulator` serves the emulator for you to try `{PROG} bulk-update` "
        "against it.",
    ]
    failed = None
    if run.interrupted:
        notes = ["Interrupted: the check against the emulator's store was not made."]
    elif not verified:  # a mismatch fails the demo (exit 1, or 3 for an error)
        failed = "error" if summary.outcome is Outcome.ERROR else "failed"
        notes = [
            "Check against the emulator's store: MISMATCH (see the check column, and "
            "other_changes in --json output); please report it with the output of `--debug`."
        ]
    return run.finish(
        ACTION,
        outcome=failed,
        # other_changes (0 when ok) is in the --json output only
        columns=(("matched", "matched"), ("archived_in_store", "in store"), ("check", "check")),
        values=values,
        notes=tuple(notes),
        verified=verified,
    )
