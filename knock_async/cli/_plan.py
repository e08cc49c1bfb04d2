"""Arguments into a frozen plan: what a command will do, checked (``--channels-file`` read,
a ``--file`` read whole, the base URL checked) before anything is sent. No ``rich``."""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
from yarl import URL

from .._convert import format_datetime
from .._endpoints import endpoint_url
from .._fanout import FanOut, FanOutEvent, FanOutSummary
from .._follow import PollPolicy
from .._models import BulkFilters
from .._requests import DEFAULT_BASE_URL, parse_base_url, parse_operation_id
from ._args import PROG, UsageError, channel_id
from ._items_file import OPERATIONS, CheckedFile, read_items, unsent
from ._wrap import prose, terminal_width

__all__ = ["Connection", "Plan", "plan"]


def _setting(value: str | None, option: str, variable: str) -> tuple[str | None, str]:
    """``option``'s ``value``, else the environment ``variable``'s; and which of the two it is."""
    return (value, option) if value else (os.environ.get(variable) or None, variable)


@attrs.frozen(kw_only=True)
class Connection:
    """Where requests go and how the key is found."""

    api_key_file: str | None  # the key itself is read only when sending
    client: Mapping[str, Any]  # the KnockClient options but the key and the rate limits
    # The Redis every run on this environment paces on (None: alone), and which option gave it.
    redis_url: str | None = attrs.field(default=None, repr=False)  # may hold a password
    redis_source: str = "--redis-url"

    @property
    def base_url(self) -> str:
        return str(self.client["base_url"])

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Connection:
        """The connection the options (else the ``KNOCK_*`` variables) name, checked."""
        base_url, source = _setting(args.base_url, "--base-url", "KNOCK_BASE_URL")
        try:  # the library's checks; their messages never hold the key (there is none yet)
            checked = parse_base_url(base_url or DEFAULT_BASE_URL, allow_insecure_http=True)
        except ValueError as exc:
            raise UsageError(f"{source}: {exc}") from None
        try:  # the library's one loopback rule, said in the command line's terms
            parse_base_url(checked, allow_insecure_http=args.allow_insecure_http)
        except ValueError:
            raise UsageError(
                f"{source} {checked.origin()}: http:// is only allowed for loopback hosts "
                "(localhost, 127.0.0.1, ::1), since the API key would cross the network in "
                "clear text; use https://, or pass --allow-insecure-http if you really mean it"
            ) from None
        redis_url, redis_source = _setting(args.redis_url, "--redis-url", "KNOCK_REDIS_URL")
        if redis_url is not None:
            try:  # redis-py is an extra: imported only by runs that share a limit
                from ..redis import check_url

                check_url(redis_url)  # its messages show the scheme only, never a password
            except (ImportError, ValueError) as exc:
                raise UsageError(f"{redis_source}: {exc}") from None
        poll, interval, base = None, args.poll_interval, PollPolicy()
        if interval is not None:  # else the library's default policy
            longest = {f: max(getattr(base, f), interval) for f in ("max_delay", "max_eta_delay")}
            poll = attrs.evolve(base, initial_delay=interval, **longest)
        client = {
            "base_url": str(checked),  # the environment's one spelling, as the library's
            "branch": _setting(args.branch, "--branch", "KNOCK_BRANCH")[0],
            "allow_insecure_http": args.allow_insecure_http,
            "poll": poll,
        }
        return cls(api_key_file=args.api_key_file, client=client, redis_url=redis_url,
                   redis_source=redis_source)  # fmt: skip


@attrs.frozen(kw_only=True)
class Plan:
    """``bulk-update``, ``bulk`` or ``status``: a fan-out, ``start(client, **options)``, shown
    under ``header`` with ``rows``, to the end or to ``until`` (then ``early`` is the outcome)."""

    connection: Connection
    command: str
    action: str | None  # bulk-update's ACTION (a BulkAction value), bulk's OPERATION
    start: Callable[..., FanOut]
    options: Mapping[str, Any]  # the library's keywords: --concurrency, --timeout, filters
    header: Mapping[str, Any]
    json: bool
    rows: tuple[str, ...] = ()  # bulk-update's channels
    until: Callable[[FanOutEvent], bool] | None = None
    early: Callable[[FanOutSummary], str | None] | None = None
    unsent: Callable[[FanOutSummary, bool], str | None] | None = None  # bulk's (interrupted)


# A look: the stream's first event, from one GET sent at once, no error ridden out; the next
# poll is cancelled unsent. Not a wait: a running operation is fine (its status is the outcome).
_LOOK = PollPolicy(initial_delay=1e-9, error_budget=0)


def plan(args: argparse.Namespace) -> Plan:
    """The checked plan for ``bulk-update``, ``bulk`` or ``status`` (not the demo's)."""
    deadlines = {} if args.timeout is None else {"timeout": args.timeout}
    if args.command == "status":
        try:  # the rule the library's requests hold it to
            parse_operation_id(ident := args.operation_id)
        except ValueError:
            raise UsageError(f"{ident!r} is not a bulk operation id") from None
        return Plan(
            connection=Connection.from_args(args), command="status", action=None, json=args.json,
            start=lambda knock, **more: knock.bulk_operations.follow_many([ident], **more),
            options=deadlines if args.watch else {"policy": _LOOK},
            until=None if args.watch else lambda _: True,
            early=None if args.watch else lambda s: getattr(s.results[0].operation, "status", None),
            header={"command": "status", "operation_id": ident, "watch": args.watch},
        )  # fmt: skip
    options = {"concurrency": args.concurrency, **deadlines}
    for option in ("--channels-file", "--file"):  # stdin is the key's or the data's
        if getattr(args, option[2:].replace("-", "_"), None) == "-" == args.api_key_file:
            raise UsageError(f"--api-key-file and {option} cannot both read stdin")
    if args.command == "bulk":
        return _items_plan(args, options)
    channels = read_channels(args)  # first: the arguments' own mistakes come first
    given = ((f, getattr(args, f)) for f in BulkFilters.__annotations__)
    filters = {name: value for name, value in given if value is not None}
    connection = Connection.from_args(args)
    if args.action == "delete" and not restricts(filters) and not args.yes:
        _confirm_delete(channels, args)
    return Plan(
        connection=connection, command="bulk-update", action=args.action,
        start=lambda knock, **more: knock.channels.bulk.update_many(channels, args.action, **more),
        options={**options, **filters}, rows=tuple(channels), json=args.json,
        header=start_header("bulk-update", args.action, channels, filters, wait=not args.no_wait),
        until=(lambda event: event.totals.unsubmitted == 0) if args.no_wait else None,
        early=(lambda _: "submitted") if args.no_wait else None,
    )  # fmt: skip


def _items_plan(args: argparse.Namespace, options: dict[str, Any]) -> Plan:
    """``bulk``: its options checked, and a real file read whole, before anything is sent."""
    name, path, op = args.operation, args.file, OPERATIONS[args.operation]
    for option, needed in (("collection", op.collection), ("preferences", op.extra)):
        if (getattr(args, option) is None) == bool(needed):
            raise UsageError(f"{name} {'needs' if needed else 'takes no'} --{option}")
    connection = Connection.from_args(args)
    try:  # the library's check of a collection name (one path segment)
        op.collection and endpoint_url(op.row, URL(connection.base_url), args.collection)
    except ValueError as exc:
        raise UsageError(f"--collection: {exc}") from None
    header: dict[str, Any] = {"command": "bulk", "operation": name, "file": path, "items": None}
    header |= {"collection": args.collection} if op.collection else {}
    items: Iterable[object] = read_items(path, op, fmt=args.format)  # stdin's: as they come
    if path != "-":  # a real file: checked whole now, read again to send
        header["items"] = count = sum(1 for _ in read_items(path, op, fmt=args.format))
        items = CheckedFile(functools.partial(read_items, path, op, fmt=args.format), count)
    extra = json.loads(args.preferences) if op.extra else None
    return Plan(
        connection=connection, command="bulk", action=name, header=header, json=args.json,
        start=functools.partial(op.start, items=items, collection=args.collection, extra=extra),
        options=options, unsent=functools.partial(unsent, path, op, args.format, header["items"]),
    )  # fmt: skip


def _confirm_delete(channels: Sequence[str], args: argparse.Namespace) -> None:
    """``delete`` with no restricting filter deletes every message: ``--yes`` or a typed
    confirmation on a terminal (unless stdin holds channels or the key), else a usage error."""
    what = f"{len(channels)} channels" if len(channels) > 1 else f"channel {channels[0]}"
    warning = f"`delete` with no filter deletes EVERY message in {what}"
    stdin_is_data = "-" in (args.channels_file, args.api_key_file)
    if not (sys.stdin.isatty() and sys.stderr.isatty()) or stdin_is_data or args.json:
        raise UsageError(
            f"{warning}; nothing was sent. Pass --yes to confirm, or add a filter "
            "(e.g. --older-than 2024-01-01T00:00:00Z)"
        )
    # Wrapped between words: a terminal would cut the channel id at its edge.
    prompt = prose(f"{PROG}: {warning}. Type 'delete' to confirm:", terminal_width(sys.stderr))
    print(prompt, end=" ", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip() != "delete":
        raise UsageError("not confirmed; nothing was sent")


def start_header(
    command: str, action: str, channels: Sequence[str], filters: Mapping[str, Any], **more: Any
) -> dict[str, Any]:
    """The NDJSON ``start`` object's fields."""
    fields = {"command": command, "action": action, "channels": list(channels)}
    return {**fields, "filters": filters_json(filters), **more}


def filters_json(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The filters as JSON values: dates as Knock writes them (ISO 8601, UTC as ``Z``)."""
    return {k: format_datetime(v) if isinstance(v, datetime) else v for k, v in filters.items()}


def restricts(filters: Mapping[str, Any]) -> bool:
    """Whether the filters select fewer than every message of a channel: ``--archived include``
    and an empty ``--trigger-data`` (``'{}'``, however spaced) alone do not."""
    # trigger_data was checked as a JSON object when parsed (``--trigger-data``).
    return any(
        not (name == "archived" and value == "include")
        and not (name == "trigger_data" and json.loads(value) == {})
        for name, value in filters.items()
    )


def read_text(option: str, path: str, *, first_line: bool = False) -> str:
    """What ``option`` names: the file at ``path``, or stdin for ``-``."""
    try:
        if path == "-":
            return sys.stdin.readline() if first_line else sys.stdin.read()
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read {option} {path}: {reason}") from None


def read_channels(args: argparse.Namespace) -> list[str]:
    """Channel ids from the arguments, then ``--channels-file``; each once, in order."""
    channels: list[str] = list(args.channel_ids)
    path = args.channels_file
    lines = [] if path is None else read_text("--channels-file", path).splitlines()
    for number, line in enumerate(lines, start=1):
        for token in line.split("#", 1)[0].split():
            try:
                channels.append(channel_id(token))
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"--channels-file {path}, line {number}: {exc}") from None
    if not channels:
        raise UsageError("no channel: give CHANNEL_ID arguments or --channels-file PATH")
    if twice := [channel for channel, n in collections.Counter(channels).items() if n > 1]:
        raise UsageError(f"channel {twice[0]} is listed twice (it would be updated twice)")
    return channels
