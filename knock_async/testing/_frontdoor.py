"""The emulator's one front door: the banner and the serving shared by
``python -m knock_async.testing`` and ``knock-async emulator``; their options and defaults are
``knock_async._emulator_options`` (importable without the emulator).

The emulator itself is imported when serving starts.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, TextIO

from .._emulator_options import DESCRIPTION, add_arguments
from .._wrap import command_lines

if TYPE_CHECKING:
    from ._emulator import KnockEmulator

__all__ = ["banner", "main", "serve_from_args"]

EXAMPLE_KEY = "sk_test_emulator"
BANNER_WIDTH = 80


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
        ids = " ".join(c.id for c in channels[:3])
        # Copyable at 80 columns: continued between words, never cut inside an id.
        try_it = f"  {command} bulk-update read {ids} --engagement-status unread"
        print("\n".join(command_lines(try_it, BANNER_WIDTH)), file=out)
    print("Ctrl-C to stop.", file=out, flush=True)


def serve_from_args(args: argparse.Namespace) -> str | None:
    """Serve until Ctrl-C as ``args`` say; ``None``, or why it could not listen."""
    from ._serve import run

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
            api_keys=args.api_keys,
        )
    except OSError as exc:
        return (
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; "
            "choose another --port or --host"
        )
    return None


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m knock_async.testing") -> int:
    """``python -m knock_async.testing``: serve until Ctrl-C (exit 0); 2 if it cannot listen."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        allow_abbrev=False,
    )
    add_arguments(parser)
    problem = serve_from_args(parser.parse_args(argv))
    if problem is not None:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return 2
    return 0
