"""The command line's grammar: ``argparse`` parsers, value types and the exit codes.

Nothing here imports ``rich`` or touches the network, so ``--help`` and usage errors work even
without the ``cli`` extra installed. The ``emulator`` command's options are the emulator's own
(``knock_async._emulator_options``), shared with ``python -m knock_async.testing``; nor does it
import the emulator (``aiohttp.web``), which only ``emulator`` and ``demo`` start.
"""

from __future__ import annotations

import argparse
import enum
import re
import textwrap
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

from .._emulator_options import DESCRIPTION, add_arguments, int_range, positive
from .._models import (
    ArchivedFilter,
    BulkAction,
    BulkUpdateMessagesForChannelRequest,
    DeliveryStatus,
    EngagementStatus,
)
from .._version import __version__

__all__ = ["ExitCode", "UsageError", "build_parser", "parse_args"]

PROG = "knock-async"


class ExitCode(enum.IntEnum):
    """What the process exit status means (documented in the README)."""

    OK = 0  # every operation completed (or was submitted, with --no-wait)
    FAILED = 1  # an operation ended ``failed`` (or the demo's check did not hold)
    USAGE = 2  # bad arguments, missing key, refused confirmation: nothing was sent
    API_ERROR = 3  # Knock refused a request (401, 403, 404, 422, ...) or could not be reached
    TIMEOUT = 4  # the --timeout deadline passed before an operation finished
    INTERRUPTED = 130  # Ctrl-C: polling stopped, operations go on server-side


class UsageError(Exception):
    """A mistake in the arguments or the environment, found before anything is sent."""


class _Parser(argparse.ArgumentParser):
    """``argparse`` whose usage errors are one line."""

    def error(self, message: str) -> NoReturn:
        """One line, not the whole usage block: what is wrong, and where to look."""
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class _RefuseKeyOnCommandLine(argparse.Action):
    """``--api-key``: refused without echoing the value, which ``ps`` would have shown."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parser.error(
            "--api-key is not accepted: a key on the command line is visible to every user "
            "through `ps`; set KNOCK_API_KEY or pass --api-key-file PATH"
        )


# -- value types (argparse reports their ValueError/ArgumentTypeError naming the option) --------


def aware_datetime(text: str) -> datetime:
    """ISO 8601 with an offset (``Z`` or ``+02:00``); a naive date-time is refused."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date-time (e.g. 2024-01-31T00:00:00Z)"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset; add one, e.g. {value.isoformat()}Z or "
            f"{value.isoformat()}+02:00 (a guessed timezone could update the wrong messages)"
        )
    return value


def json_object(text: str) -> str:
    """A JSON object the library accepts as ``trigger_data``, kept as its text."""
    try:
        BulkUpdateMessagesForChannelRequest(trigger_data=text)
    except ValueError as exc:  # "trigger_data must be ...": argparse names the option
        raise argparse.ArgumentTypeError(str(exc).removeprefix("trigger_data ")) from None
    return text


def channel_id(text: str) -> str:
    """A channel id in canonical UUID form (it becomes part of a URL path)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a channel id (a UUID)") from None


def _choices(enum_type: type[enum.StrEnum]) -> list[str]:
    return [member.value for member in enum_type]


# -- the parsers ----------------------------------------------------------------------------

# Every option as ``--help`` shows it: its flags and METAVAR, two spaces, its help (continued on
# indented lines). An option with neither a METAVAR nor choices is an on/off switch.
_OPTIONS = """
--debug                  show tracebacks and the request log (the API key is never shown)
--json                   print one JSON object per line (NDJSON): each progress snapshot, then a
                         summary
--api-key-file PATH      read the API key from this file ('-': stdin); default: $KNOCK_API_KEY
--base-url URL           Knock's API origin; default: $KNOCK_BASE_URL or https://api.knock.app
--branch NAME            Knock branch (X-Knock-Branch); default: $KNOCK_BRANCH
--allow-insecure-http    allow an http:// --base-url on a non-loopback host (the key crosses in
                         clear)
--redis-url URL          share Knock's rate limit with every run using this Redis (redis://,
                         rediss:// or unix://; needs the 'redis' extra); default:
                         $KNOCK_REDIS_URL, which keeps a password out of the process list
--channels-file PATH     read more channel ids from this file ('-': stdin), whitespace-separated,
                         # comments
--archived               how archived messages are treated
--delivery-status
--engagement-status
--has-tenant             only messages with a tenant
--no-tenant              only messages without a tenant
--newer-than DATETIME    inserted after (ISO 8601 with offset)
--older-than DATETIME    inserted before (ISO 8601 with offset)
--recipient-id ID        repeatable
--tenant TENANT          repeatable
--workflow KEY           repeatable
--trigger-data JSON      JSON object matched against the trigger data's scalar keys
--no-wait                submit, print the operation ids and exit
--timeout SECONDS        give up following after this long (default: 3600)
--poll-interval SECONDS  first and shortest wait between polls (default: 1; the waits then follow
                         the operation's predicted end)
--concurrency N          requests in flight with many channels (default: 10)
-y --yes                 confirm `delete` with no filter (deletes every message)
-w --watch               follow until completed or failed
--channels N             channels (default: 4)
--messages N             messages on the largest channel (default: 5000)
--rows-per-second R      emulated processing speed per operation (default: 200)
"""
_SECONDS = positive("number of seconds")
# What else argparse needs, by long flag.
_KEYWORDS: dict[str, dict[str, Any]] = {
    "--debug": {"default": argparse.SUPPRESS},  # absent after the command: the top level's stands
    "--archived": {"choices": _choices(ArchivedFilter)},
    "--delivery-status": {"choices": _choices(DeliveryStatus)},
    "--engagement-status": {"choices": _choices(EngagementStatus)},
    "--has-tenant": {"dest": "has_tenant", "action": "store_const", "const": True},
    "--no-tenant": {"dest": "has_tenant", "action": "store_const", "const": False},
    "--newer-than": {"type": aware_datetime},
    "--older-than": {"type": aware_datetime},
    "--recipient-id": {"dest": "recipient_ids", "action": "append"},
    "--tenant": {"dest": "tenants", "action": "append"},
    "--workflow": {"dest": "workflows", "action": "append"},
    "--trigger-data": {"type": json_object},
    "--no-wait": {"dest": "wait", "action": "store_false"},
    "--timeout": {"type": _SECONDS, "default": 3600.0},
    "--poll-interval": {"type": _SECONDS},
    "--concurrency": {"type": int_range(1, 100), "default": 10},
    "--channels": {"type": int_range(1, 50), "default": 4},
    "--messages": {"type": int_range(1, 200_000), "default": 5000},
    "--rows-per-second": {"type": positive("number"), "default": 200.0},
}


def _table(text: str) -> dict[str, tuple[list[str], str | None, str]]:
    """The options of ``text`` by long flag: their flags, METAVAR (or None) and help."""
    table = {}
    for entry in re.split(r"\n(?=-)", text.strip()):
        spec, _, about = entry.partition("  ")
        flags = spec.split()
        metavar = None if flags[-1].startswith("-") else flags.pop()
        table[flags[-1]] = (flags, metavar, " ".join(about.split()))
    return table


_TABLE = _table(_OPTIONS)


def _add(group: argparse._ActionsContainer, names: str) -> None:
    """The options ``names`` lists, as ``_OPTIONS`` and ``_KEYWORDS`` describe them."""
    for name in names.split():
        flags, metavar, about = _TABLE[name]
        options: dict[str, Any] = {"help": about or None, **_KEYWORDS.get(name, {})}
        if metavar is not None:
            options["metavar"] = metavar
        elif "choices" not in options:
            options.setdefault("action", "store_true")
        group.add_argument(*flags, **options)


_EXIT_CODES = """\
exit codes:
  0    every operation completed (also with error_count > 0: see the summary)
  1    an operation ended failed
  2    usage error (nothing was sent)
  3    API or authentication error (401, 403, 404 channel, 422, network)
  4    --timeout passed before an operation finished (it goes on server-side)
  130  interrupted (Ctrl-C): polling stopped, operations go on server-side
With many channels the worst outcome decides, in this order: 3, 1, 4, 0.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``knock-async`` parser and its four commands."""
    documented: dict[str, Any] = {
        "epilog": _EXIT_CODES,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }
    # No prefix matching anywhere: ``--api-key`` must never mean ``--api-key-file``.
    parser = _Parser(
        prog=PROG,
        description="Bulk-update the status of Knock channel messages and follow the operations.",
        allow_abbrev=False,
        **documented,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, about: str, *, connects: bool, output: bool = True, **more: Any
    ) -> argparse.ArgumentParser:
        """A command's parser, with the options every command takes after its name too."""
        sub = commands.add_parser(name, help=about, allow_abbrev=False, **more)
        _add(sub, "--debug --json" if output else "--debug")
        if connects:
            group = sub.add_argument_group("connection")
            _add(group, "--api-key-file --base-url --branch --allow-insecure-http --redis-url")
            group.add_argument(
                "--api-key", nargs="?", action=_RefuseKeyOnCommandLine, help=argparse.SUPPRESS
            )
        return sub

    bulk = command(
        "bulk-update",
        "update the status of a channel's messages (many channels at once)",
        connects=True,
        description=textwrap.fill(
            "Start a bulk status update on each channel, then follow the operations to the end "
            "with a live progress display. Filters combine with AND. Ctrl-C stops following "
            "(the operations go on server-side) and prints how to resume."
        ),
        **documented,
    )
    actions = _choices(BulkAction)
    bulk.add_argument("action", metavar="ACTION", choices=actions, help=", ".join(actions))
    bulk.add_argument(
        "channel_ids", metavar="CHANNEL_ID", nargs="*", type=channel_id, help="channel ids (UUIDs)"
    )
    _add(bulk, "--channels-file")
    filters = bulk.add_argument_group("filters (all optional; combined with AND)")
    _add(filters, "--archived --delivery-status --engagement-status")
    _add(filters.add_mutually_exclusive_group(), "--has-tenant --no-tenant")
    _add(filters, "--newer-than --older-than --recipient-id --tenant --workflow --trigger-data")
    running = bulk.add_argument_group("running")
    _add(running, "--no-wait --timeout --poll-interval --concurrency --yes")

    status = command(
        "status",
        "show a bulk operation, or follow it with --watch",
        connects=True,
        description="Show a bulk operation as it stands now, or follow it to the end with --watch.",
        **documented,
    )
    status.add_argument("operation_id", metavar="OPERATION_ID")
    _add(status, "--watch")
    _add(status.add_argument_group("with --watch"), "--timeout --poll-interval")

    emulator = command(
        "emulator",
        "serve the embedded Knock emulator on loopback until Ctrl-C",
        connects=False,
        output=False,
        description=DESCRIPTION,
    )
    add_arguments(emulator)

    demo = command(
        "demo",
        "run a bulk update over several channels against the embedded emulator",
        connects=False,
        description=(
            "Start the Knock emulator in-process, seed realistic messages on several channels, "
            "archive the read ones older than a week on all of them with live progress, and "
            "check the result against the emulator's store. Needs no Knock account."
        ),
    )
    _add(demo, "--channels --messages --rows-per-second")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed arguments; ``SystemExit`` (argparse's) on a usage error or ``--help``."""
    return build_parser().parse_args(argv)
