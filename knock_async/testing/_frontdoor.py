"""The emulator's one front door: the options, defaults and banner shared by
``python -m knock_async.testing`` and ``knock-async emulator``.

Stdlib ``argparse`` only; the emulator itself is imported when serving starts.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, TextIO

from ._store import ChannelType

if TYPE_CHECKING:
    from ._emulator import KnockEmulator

__all__ = [
    "DESCRIPTION",
    "add_arguments",
    "banner",
    "int_range",
    "main",
    "positive",
    "serve_from_args",
]

EXAMPLE_KEY = "sk_test_emulator"
DESCRIPTION = (
    "Serve the Knock emulator (channel bulk updates, bulk operations; no Knock account needed) "
    "and print its base URL, its seeded channel ids and which keys it accepts. Ctrl-C stops it "
    "(exit 0)."
)


def int_range(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number within ``[minimum, maximum]``."""

    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            upper = "" if maximum is None else f" and <= {maximum}"
            raise argparse.ArgumentTypeError(f"must be >= {minimum}{upper}, got {value}")
        return value

    return integer


def positive(unit: str) -> Callable[[str], float]:
    """An argparse type: a finite number > 0 (``unit`` names it in errors)."""

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {unit}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be a {unit} > 0, got {text}")
        return value

    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The emulator's options and their defaults, for both entry points."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int_range(0, 65535), default=0, help="port (default: 0, a free one)"
    )
    parser.add_argument(
        "--channels",
        type=int_range(0, 1000),
        default=3,
        metavar="N",
        help="channels to create (default: %(default)s)",
    )
    parser.add_argument(
        "--seed-messages",
        type=int_range(0),
        default=1000,
        metavar="N",
        help="random messages per channel (default: %(default)s)",
    )
    parser.add_argument(
        "--channel-type",
        default=ChannelType.IN_APP_FEED.value,
        choices=[t.value for t in ChannelType],
        help="type of the channels created (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for the channel ids and messages (default: 0)"
    )
    parser.add_argument(
        "--rows-per-second",
        type=positive("number"),
        default=10_000.0,
        metavar="R",
        help="processing speed per operation (default: 10000)",
    )
    parser.add_argument(
        "--batch-size",
        type=int_range(1),
        default=500,
        metavar="N",
        help="rows processed per step (default: %(default)s)",
    )
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="turn Knock's rate limits off"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accept only this key (repeatable); default: any secret sk_... key",
    )


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
        print(f"  {command} bulk-update read {ids} --engagement-status unread", file=out)
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
