"""``knock-async`` (``pip install 'knock-async[cli]'``): ``main(argv)`` runs one command and
returns the exit code. ``rich`` (the ``cli`` extra) is imported only once a command runs, so a
missing extra gives a one-line hint, and ``import knock_async`` never loads it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence

from ._args import PROG, ExitCode, UsageError, parse_args
from ._wrap import prose, terminal_width

__all__ = ["ExitCode", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``knock-async`` with ``argv`` (default: ``sys.argv[1:]``); the exit code."""
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has printed
        return exc.code if isinstance(exc.code, int) else int(ExitCode.USAGE)
    try:
        from . import _commands, _plan, _run  # the first modules that need rich
    except ImportError as exc:
        if not (exc.name or "").split(".")[0] == "rich":
            raise
        _say(f"{PROG}: the command line needs the 'cli' extra: pip install 'knock-async[cli]'")
        return int(ExitCode.USAGE)
    redactor, debug = _run.Redactor(), args.debug
    try:
        with _run.logging_to_stderr(debug=debug, redactor=redactor):
            if args.command == "emulator":  # python -m knock_async.testing's front door
                from ..testing._frontdoor import serve_from_args

                if problem := serve_from_args(args):  # e.g. a port that cannot be bound
                    _say(f"{PROG}: error: {problem}")
                return int(ExitCode.USAGE if problem else ExitCode.OK)
            if args.command == "demo":
                return asyncio.run(_commands.demo(args, redactor, debug=debug))
            # Planned (a delete confirmed) outside the loop: a Ctrl-C at the question ends it.
            return asyncio.run(_commands.fan_out(_plan.plan(args), redactor, debug=debug))
    except UsageError as exc:
        _say(redactor.text(f"{PROG}: error: {exc}"))
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        _say(f"{PROG}: interrupted")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more can be shown; exit quietly.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitCode.FAILED)
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, not a traceback
        if debug:
            redactor.traceback(exc)
        message = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        _say(redactor.text(f"{PROG}: internal error: {message}; rerun with --debug and report it"))
        return int(ExitCode.FAILED)


def _say(message: str) -> None:
    """One message on stderr: one line, wrapped between words if stderr is a terminal."""
    print(prose(message, terminal_width(sys.stderr)), file=sys.stderr)
