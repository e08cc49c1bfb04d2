"""The command line's grammar: ``argparse`` parsers, value types and the exit codes. No
``rich``, network or emulator: ``--help`` and usage errors work without the ``cli`` extra. The
``emulator`` command's options are the emulator's own, as ``python -m knock_async.testing``'s."""

from __future__ import annotations

import argparse
import enum
import textwrap
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

from .. import _models as models
from .._follow import DEFAULT_STALL_TIMEOUT, PollPolicy
from .._requests import DEFAULT_BASE_URL, parse_channel_id
from .._version import __version__
from ..testing._options import DESCRIPTION, add_arguments, int_range, positive

__all__ = ["ExitCode", "UsageError", "build_parser", "parse_args"]

PROG = "knock-async"


class ExitCode(enum.IntEnum):
    """What the process exit status means (documented in the README)."""

    OK = 0  # every operation completed (or was submitted, with --no-wait)
    FAILED = 1  # an operation ended ``failed`` (or the demo's check did not hold)
    USAGE = 2  # bad arguments or file, no key, not confirmed: nothing was sent (see bulk's -)
    API_ERROR = 3  # Knock refused a request (401, 403, 404, 422, ...) or could not be reached
    TIMEOUT = 4  # --timeout passed before an operation finished, or it stood still too long
    INTERRUPTED = 130  # Ctrl-C: polling stopped, operations go on server-side


class UsageError(Exception):
    """A mistake in the arguments or the environment, found before anything is sent."""


class _Parser(argparse.ArgumentParser):
    """``argparse`` saying a usage error in one line. (Each parser is made without prefix
    matching: ``--api-key`` must never mean ``--api-key-file``.)"""

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


# Value types: argparse reports their ValueError/ArgumentTypeError naming the option.
def aware_datetime(text: str) -> datetime:
    """ISO 8601 with an offset (``Z`` or ``+02:00``); a naive date-time is refused."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        message = f"{text!r} is not an ISO 8601 date-time (e.g. 2024-01-31T00:00:00Z)"
        raise argparse.ArgumentTypeError(message) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset; add one, e.g. {value.isoformat()}Z or "
            f"{value.isoformat()}+02:00 (a guessed timezone could update the wrong messages)"
        )
    return value


def json_object(text: str) -> str:
    """A JSON object the library accepts as ``trigger_data``, kept as its text."""
    try:
        models.BulkUpdateMessagesForChannelRequest(trigger_data=text)
    except ValueError as exc:  # "trigger_data must be ...": argparse names the option
        raise argparse.ArgumentTypeError(str(exc).removeprefix("trigger_data ")) from None
    return text


def channel_id(text: str) -> str:
    """A channel id as the library takes it (a UUID, in canonical form)."""
    try:
        return parse_channel_id(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a channel id (a UUID)") from None


def _common(*, connects: bool, output: bool = True) -> _Parser:
    """Options every command takes (after its name, too: ``bulk-update ... --debug``)."""
    parent = _Parser(add_help=False)
    add = parent.add_argument
    debug = "show tracebacks and the request log (the API key is never shown)"
    add("--debug", action="store_true", default=argparse.SUPPRESS, help=debug)
    if output:
        what = "print one JSON object per line (NDJSON): each progress snapshot, then a summary"
        add("--json", action="store_true", help=what)
    if not connects:
        return parent
    # Where requests go and with which key: every connection option is here.
    add = parent.add_argument_group("connection").add_argument
    add("--api-key-file", metavar="PATH", help="read the API key from this file ('-': stdin); "
        "default: $KNOCK_API_KEY")  # fmt: skip
    add("--api-key", nargs="?", action=_RefuseKeyOnCommandLine, help=argparse.SUPPRESS)
    add("--base-url", metavar="URL", help="Knock's API origin; default: $KNOCK_BASE_URL or "
        f"{DEFAULT_BASE_URL}")  # fmt: skip
    add("--branch", metavar="NAME", help="Knock branch (X-Knock-Branch); default: $KNOCK_BRANCH")
    add("--allow-insecure-http", action="store_true", help="allow an http:// --base-url on a "
        "non-loopback host (the key crosses in clear)")  # fmt: skip
    add("--redis-url", metavar="URL", help="share Knock's rate limit with every run using this "
        "Redis (redis://, rediss:// or unix://; needs the 'redis' extra); default: "
        "$KNOCK_REDIS_URL, which keeps a password out of the process list")  # fmt: skip
    return parent


def _following(group: argparse._ArgumentGroup, *, concurrency: bool = False) -> None:
    """--timeout, --poll-interval and (``concurrency``) --concurrency; the library's defaults."""
    seconds = positive("number of seconds")
    group.add_argument("--timeout", type=seconds, metavar="SECONDS", help="give up on an "
        "operation not finished this long after following starts (default: none; one that "
        f"does not change for {DEFAULT_STALL_TIMEOUT:g}s is given up)")  # fmt: skip
    group.add_argument("--poll-interval", type=seconds, metavar="SECONDS", help="first and "
        f"shortest wait between polls (default: {PollPolicy().initial_delay:g}; the waits then "
        "follow the operation's predicted end)")  # fmt: skip
    if concurrency:
        group.add_argument("--concurrency", type=int_range(1, 100), default=10, metavar="N",
                           help="requests in flight at once (default: 10)")  # fmt: skip


_EXIT_CODES = """\
exit codes:
  0    every operation completed (also with error_count > 0: see the summary)
  1    an operation ended failed
  2    usage error: nothing was sent (bulk --file -: a bad line stops the run there)
  3    API or authentication error (401, 403, 404 channel, 422, network)
  4    --timeout passed before an operation finished, or it stood still (it goes on)
  130  interrupted (Ctrl-C): polling stopped, operations go on server-side
With many operations the worst outcome decides, in this order: 3, 1, 4, 0.
"""
_MIGRATION = """\
example: a migration, end to end (a file is checked whole before anything is sent)
  knock-async bulk users.identify --file users.csv       # header: id,name,email
  knock-async bulk objects.set --collection projects --file projects.ndjson
  knock-async bulk objects.add_subscriptions --collection projects --file subs.ndjson
      # subs.ndjson: {"id": "p1", "recipients": ["u1", "u2"]}
  cut -d, -f1 leavers.csv | knock-async bulk users.delete --file - --format csv --json
Ctrl-C stops following (operations go on): `knock-async status ID --watch` resumes each.
"""
_RAW = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    about = "Run Knock's bulk operations and follow them to the end."
    plain: dict[str, Any] = {"allow_abbrev": False, "formatter_class": _RAW}  # tables as written
    parser = _Parser(prog=PROG, description=about, epilog=_EXIT_CODES, **plain)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    connected = _common(connects=True)

    def command(name: str, about: str, text: str, **more: Any) -> argparse.ArgumentParser:
        """``about`` in the list, ``text`` atop its --help; the connection options, exit codes."""
        more = {"parents": [connected], "epilog": _EXIT_CODES, **plain, **more}
        return commands.add_parser(name, help=about, description=textwrap.fill(text), **more)

    bulk = command(
        "bulk-update",
        "update the status of a channel's messages (many channels at once)",
        "Start a bulk status update on each channel, then follow the operations to the end "
        "with a live progress display. Filters combine with AND. Ctrl-C stops following "
        "(the operations go on server-side) and prints how to resume.",
    )
    actions = [action.value for action in models.BulkAction]
    bulk.add_argument("action", metavar="ACTION", choices=actions, help=", ".join(actions))
    ids = "channel ids (UUIDs)"
    bulk.add_argument("channel_ids", metavar="CHANNEL_ID", nargs="*", type=channel_id, help=ids)
    bulk.add_argument("--channels-file", metavar="PATH", help="read more channel ids from this "
        "file ('-': stdin), whitespace-separated, # comments")  # fmt: skip
    filters = bulk.add_argument_group("filters (all optional; combined with AND)")
    for flag, kind, what in (
        ("--archived", models.ArchivedFilter, "how archived messages are treated"),
        ("--delivery-status", models.DeliveryStatus, None),
        ("--engagement-status", models.EngagementStatus, None),
    ):
        filters.add_argument(flag, choices=[member.value for member in kind], help=what)
    tenant = filters.add_mutually_exclusive_group()
    for flag, value, what in (("--has-tenant", True, "with"), ("--no-tenant", False, "without")):
        tenant.add_argument(flag, dest="has_tenant", action="store_const", const=value,
                            help=f"only messages {what} a tenant")  # fmt: skip
    for flag, when in (("--newer-than", "after"), ("--older-than", "before")):
        filters.add_argument(flag, type=aware_datetime, metavar="DATETIME",
                             help=f"inserted {when} (ISO 8601 with offset)")  # fmt: skip
    for flag, dest, metavar in (
        ("--recipient-id", "recipient_ids", "ID"),
        ("--tenant", "tenants", "TENANT"),
        ("--workflow", "workflows", "KEY"),
    ):
        filters.add_argument(flag, dest=dest, action="append", metavar=metavar, help="repeatable")
    matched = "JSON object matched against the trigger data's scalar keys"
    filters.add_argument("--trigger-data", type=json_object, metavar="JSON", help=matched)
    run = bulk.add_argument_group("running")
    no_wait = "submit, print the operation ids and exit"
    run.add_argument("--no-wait", action="store_true", help=no_wait)
    _following(run, concurrency=True)
    delete = "confirm `delete` with no filter (deletes every message)"
    run.add_argument("-y", "--yes", action="store_true", help=delete)

    from ._items_file import HELP, OPERATIONS  # its errors are UsageErrors, defined above

    items = command(
        "bulk",
        "run another Knock bulk operation (users, objects, tenants, ...) over a file",
        "Send the items of --file to OPERATION in requests of up to 1,000, paced at Knock's "
        "rate limit for it, and follow every operation to the end with a live progress "
        "display. A file is checked whole before anything is sent; from stdin, a bad line "
        "stops the run there. Ctrl-C stops following (operations go on server-side).",
        epilog=f"{HELP}\n{_MIGRATION}\n{_EXIT_CODES}",
    )
    items.add_argument("operation", metavar="OPERATION", choices=list(OPERATIONS),
                       help=", ".join(OPERATIONS))  # fmt: skip
    items.add_argument("--file", required=True, metavar="PATH", help="NDJSON or CSV ('-': stdin)")
    items.add_argument("--format", choices=["csv", "ndjson"], help="default: from the extension")
    items.add_argument("--collection", metavar="NAME", help="the objects' collection (objects.*)")
    items.add_argument("--preferences", type=json_object, metavar="JSON",
                       help="the preference set to write (users.set_preferences)")  # fmt: skip
    _following(items.add_argument_group("running"), concurrency=True)

    status = command(
        "status",
        "show a bulk operation, or follow it with --watch",
        "Show a bulk operation as it stands now, or follow it to the end with --watch.",
    )
    status.add_argument("operation_id", metavar="OPERATION_ID")
    watch = "follow until completed or failed"
    status.add_argument("-w", "--watch", action="store_true", help=watch)
    _following(status.add_argument_group("with --watch"))

    serve = "serve the embedded Knock emulator on loopback until Ctrl-C"
    local = _common(connects=False, output=False)
    add_arguments(command("emulator", serve, DESCRIPTION, parents=[local], epilog=None))
    demo = command(
        "demo",
        "run a bulk update over several channels against the embedded emulator",
        "Start the Knock emulator in-process, seed realistic messages on several channels, "
        "archive the read ones older than a week on all of them with live progress, and "
        "check the result against the emulator's store. Needs no Knock account.",
        parents=[_common(connects=False)],
        epilog=None,
    )
    speed = "emulated processing speed per operation"
    for flag, parse, default, metavar, what in (
        ("--channels", int_range(1, 50), 4, "N", "channels"),
        ("--messages", int_range(1, 200_000), 5000, "N", "messages on the largest channel"),
        ("--rows-per-second", positive("number"), 200.0, "R", speed),
    ):
        demo.add_argument(flag, type=parse, default=default, metavar=metavar,
                          help=f"{what} (default: {default:g})")  # fmt: skip
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed arguments; ``SystemExit`` (argparse's) on a usage error or ``--help``."""
    return build_parser().parse_args(argv)
