"""The emulator's one front door, shared by ``python -m knock_async.testing`` and
``knock-async emulator``: options (``_options``, stdlib only), then serving until Ctrl-C with
the banner (``_serve``, which imports the emulator only when serving starts).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from ._options import DESCRIPTION, add_arguments

__all__ = ["main", "serve_from_args"]


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
