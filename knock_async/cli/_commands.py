"""The commands: ``bulk-update``, ``bulk`` and ``status``, each a library stream
(``update_many``'s, an ``_all`` method's, ``follow_many``'s) shown by a display; and ``demo``,
the same against the embedded emulator (which imports ``aiohttp.web``, only then)."""

from __future__ import annotations

import argparse
import secrets
from datetime import timedelta
from typing import Any

from .._client import KnockClient
from .._fanout import Outcome
from .._follow import PollPolicy
from ._args import PROG
from ._items_file import BadLineError
from ._plan import Plan, filters_json, start_header
from ._run import Redactor, Run, make_client

__all__ = ["demo", "fan_out"]


async def fan_out(plan: Plan, redactor: Redactor, *, debug: bool) -> int:
    """The plan's fan-out followed to its end (or ``until``); a bad line on stdin stops it."""
    run = Run(plan.command, plan.json, redactor, debug=debug, base_url=plan.connection.base_url)
    async with make_client(plan.connection, redactor) as client:
        stream = plan.start(client, **plan.options)
        try:
            summary = await run.follow(stream, plan.header, rows=plan.rows, until=plan.until)
        except BadLineError as exc:  # what was sent before it goes on: the summary says
            return run.finish(plan.action, outcome="bad_line", stopped=str(exc))
    unsent = plan.unsent and plan.unsent(summary, run.interrupted)  # bulk: its input's rest
    return run.finish(plan.action, outcome=plan.early and plan.early(summary), unsent=unsent)


# Polls a little more often than the library's default: the demo lasts seconds.
DEMO_POLL = PollPolicy(initial_delay=0.25, multiplier=1.25, max_delay=0.5)
_CHECK = (("matched", "matched"), ("archived_in_store", "in store"), ("check", "check"))


async def demo(args: argparse.Namespace, redactor: Redactor, *, debug: bool) -> int:
    """``knock-async demo``: seeds the emulator, archives read messages older than a week on all
    channels (``update_many``), then checks the store: each match archived, nothing else."""
    from ..testing import KnockEmulator

    key = f"sk_demo_{secrets.token_hex(16)}"  # generated, used here only, never printed
    redactor.secrets.add(key)
    rate, count = args.rows_per_second, args.channels
    batch = max(1, round(rate / 10))  # about ten progress steps a second
    async with KnockEmulator(
        api_keys=[key], rows_per_second=rate, batch_size=batch, queue_delay=0.2, seed=7
    ) as emu:
        channels = [emu.add_channel("in_app_feed") for _ in range(count)]
        # From ``messages / channels`` up to ``messages``: the channels finish one by one.
        sizes = [max(1, round(args.messages * (n + 1) / count)) for n in range(count)]
        for index, (channel, size) in enumerate(zip(channels, sizes, strict=True)):
            emu.add_messages(channel, size, seed=index)
        cutoff = (emu.clock.now() - timedelta(days=7)).replace(microsecond=0)
        filters: dict[str, Any] = {"engagement_status": "read", "archived": "exclude"}
        filters["older_than"] = cutoff
        # What the store says before: the messages the update should archive, and the rest.
        expected, archived_before = {}, {}
        for channel in channels:
            messages = emu.messages(channel)
            archived_before[channel] = {m.id for m in messages if m.archived_at is not None}
            read = {m.id for m in messages if m.read_at is not None and m.inserted_at < cutoff}
            expected[channel] = read - archived_before[channel]
        stamp = filters_json(filters)["older_than"]
        intro = [
            f"Knock emulator running in-process at {emu.base_url} (a generated sk_demo_ key).",
            f"Seeded {count} in-app feed channels with {sum(sizes):,} messages "
            f"({', '.join(f'{n:,}' for n in sizes)}).",
            f"Archiving the read messages older than {stamp} on every channel, as",
            f"  {PROG} bulk-update archive CHANNEL_ID... --engagement-status read "
            f"--archived exclude --older-than {stamp}",
            f"would (emulated processing: {rate:,.0f} rows/s per operation).",
        ]
        header = start_header(
            "demo", "archive", channels, filters, wait=True, base_url=emu.base_url
        )
        run = Run("demo", args.json, redactor, debug=debug, base_url=emu.base_url)
        async with KnockClient(api_key=key, base_url=emu.base_url, poll=DEMO_POLL) as client:
            fanout = client.channels.bulk.update_many(channels, "archive", timeout=120.0, **filters)
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
                "other_changes": collateral,  # 0 when ok: in the --json output only
                "check": "-" if run.interrupted else "ok" if ok else "MISMATCH",
            }

    verified = not run.interrupted and all(v["check"] == "ok" for v in values.values())
    matched, failed = sum(len(ids) for ids in expected.values()), None
    notes: tuple[str, ...] = (
        f"Check against the emulator's store: OK. All {matched:,} matching messages are "
        "archived, and no other message changed.",
        f"Next: `{PROG} emulator` serves the emulator for you to try `{PROG} bulk-update` "
        f"and `{PROG} bulk` against it.",
    )
    if run.interrupted:
        notes = ("Interrupted: the check against the emulator's store was not made.",)
    elif not verified:  # a mismatch fails the demo (exit 1, unless its run ended worse)
        failed = "failed"
        notes = (
            "Check against the emulator's store: MISMATCH (see the check column, and "
            "other_changes in --json output); please report it with the output of `--debug`.",
        )
    return run.finish(
        "archive", outcome=failed, columns=_CHECK, values=values, notes=notes, verified=verified
    )
