"""``python -m knock_async.testing --port 8080``: serve the emulator until Ctrl-C.

The same as ``knock-async emulator`` without the ``cli`` extra; both call ``_serve.run``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ._serve import run
from ._store import ChannelType

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m knock_async.testing",
        description="Serve the Knock emulator (channel bulk updates, bulk operations).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: pick a free one)")
    parser.add_argument("--channels", type=int, default=1, help="channels to create")
    parser.add_argument(
        "--channel-type", default="in_app_feed", choices=[t.value for t in ChannelType]
    )
    parser.add_argument("--seed-messages", type=int, default=0, help="random messages per channel")
    parser.add_argument("--seed", type=int, default=0, help="seed for ids and messages")
    parser.add_argument("--rows-per-second", type=float, default=10_000.0)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="turn Knock's rate limits off"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        help="accept only this key (repeatable; default: any sk_... key)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
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


if __name__ == "__main__":
    main()
