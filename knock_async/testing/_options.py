"""The emulator's command-line options and defaults, for both of its entry points
(``knock-async emulator`` and ``python -m knock_async.testing``), and the argparse value types
the command line shares.

Stdlib only: ``knock-async --help`` and the commands that do not serve the emulator import this
module, and must not pay for aiohttp.web (the package's ``__init__`` imports nothing until a
name is asked for). The front door itself is ``_frontdoor``; the banner, ``_serve``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["CHANNEL_TYPES", "DESCRIPTION", "add_arguments", "int_range", "positive"]

# The values of ``knock_async.testing.ChannelType`` (a test keeps the two equal).
CHANNEL_TYPES = ("in_app_feed", "email", "sms", "push", "chat")
DESCRIPTION = (
    "Serve the Knock emulator (its eleven bulk endpoints: channel updates, users, objects, "
    "subscriptions, tenants, schedules; bulk operations; no Knock account needed) "
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
        default=CHANNEL_TYPES[0],
        choices=CHANNEL_TYPES,
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
