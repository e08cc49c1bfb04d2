"""Serving the emulator standalone: ``serve()`` until cancelled, ``run()`` until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import uuid
from collections.abc import Callable, Collection
from typing import Any, TextIO

from ._emulator import KnockEmulator
from ._store import ChannelType

__all__ = ["banner", "describe", "run", "seeded_channel_id", "serve"]

EXAMPLE_KEY = "sk_test_emulator"


def seeded_channel_id(seed: int, index: int) -> str:
    """The id ``serve`` gives its ``index``-th channel: the same for the same ``seed``."""
    return str(uuid.UUID(int=random.Random(f"channel:{seed}:{index}").getrandbits(128), version=4))


def banner(
    emulator: KnockEmulator,
    *,
    api_keys: Collection[str] | None,
    command: str = "knock-async",
    out: TextIO | None = None,
) -> None:
    """Where the emulator listens, what it holds, exactly which keys it accepts, and what to
    try. The keys themselves are never printed."""
    out = sys.stdout if out is None else out
    base_url = emulator.base_url
    print(f"Knock emulator listening on {base_url}", file=out)
    channels = emulator.channels()
    for channel in channels:
        count = len(emulator.messages(channel.id))
        print(f"  channel {channel.id} ({channel.type}, {count} messages)", file=out)
    if api_keys is None:
        print("Accepts any secret key (sk_...); public pk_ keys are refused.", file=out)
        print("In another terminal, try:", file=out)
        print(f"  export KNOCK_BASE_URL={base_url} KNOCK_API_KEY={EXAMPLE_KEY}", file=out)
    else:
        count = len(set(api_keys))
        which = "the key" if count == 1 else f"the {count} keys"
        print(f"Accepts only {which} given with --api-key; any other key is refused.", file=out)
        print("In another terminal, set KNOCK_API_KEY to that key and try:", file=out)
        print(f"  export KNOCK_BASE_URL={base_url}", file=out)
    if channels:
        # Copyable at 80 columns: one channel id a line, continued with ` \`, never cut.
        *first, last = (c.id for c in channels[:3])
        lines = [f"  {command} bulk-update read \\", *(f"      {i} \\" for i in first)]
        print("\n".join([*lines, f"      {last} --engagement-status unread"]), file=out)
    print(f"  {command} bulk users.identify --file users.ndjson  # any bulk operation", file=out)
    print("Ctrl-C to stop.", file=out, flush=True)


def describe(
    emulator: KnockEmulator, out: TextIO | None = None, *, api_keys: Collection[str] | None = None
) -> None:
    """Print where the emulator listens, what it holds and which keys it accepts."""
    banner(emulator, api_keys=api_keys, out=out)


async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    seed_messages: int = 0,
    channels: int = 1,
    channel_type: ChannelType | str = ChannelType.IN_APP_FEED,
    seed: int = 0,
    on_ready: Callable[[KnockEmulator], object] | None = None,
    **settings: Any,
) -> None:
    """Serve an emulator on ``host``:``port`` until cancelled.

    Adds ``channels`` channels (ids from ``seeded_channel_id(seed, i)``) of ``channel_type``,
    each with ``seed_messages`` random messages, then calls ``on_ready(emulator)`` (e.g. to
    print ``emulator.base_url``). ``settings`` are further ``KnockEmulator`` keyword arguments.
    """
    if channels < 0 or seed_messages < 0:
        raise ValueError("channels and seed_messages must be >= 0")
    async with KnockEmulator(host=host, port=port, seed=seed, **settings) as emulator:
        for index in range(channels):
            channel_id = emulator.add_channel(
                channel_type, channel_id=seeded_channel_id(seed, index)
            )
            emulator.add_messages(channel_id, seed_messages, seed=seed + index)
        if on_ready is not None:
            on_ready(emulator)
        await asyncio.Event().wait()


def run(**kwargs: Any) -> None:
    """Block in ``serve(**kwargs)`` until Ctrl-C, then shut down cleanly.

    Prints where it listens (``describe``) unless ``on_ready`` is given.
    """
    api_keys = kwargs.get("api_keys")
    kwargs.setdefault("on_ready", lambda emulator: describe(emulator, api_keys=api_keys))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(**kwargs))
