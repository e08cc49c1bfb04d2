"""``knock-async bulk``'s input: its ten operations (the library's endpoint rows) and the items
of ``--file``, read lazily, each through the library's own check, so that a bad one raises
``BadLineError`` (exit 2) naming its line before any line after it is read. Formats: ``HELP``."""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import NoReturn, Unpack

import attrs

from .. import FanOut, FanOutSummary, KnockClient
from .._bulk import FollowOptions
from .._endpoints import ENDPOINTS, Endpoint
from .._items import check_id
from ._args import UsageError

__all__ = ["HELP", "OPERATIONS", "BadLineError", "CheckedFile", "Operation", "read_items"]

FORMATS = {".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}
_NO_FORMAT = "cannot tell the format of --file {}: give --format ndjson or csv"
HELP = """\
--file: NDJSON (.ndjson, .jsonl) or CSV (.csv), else --format; '-' is stdin (needs --format).
  NDJSON: an item a line (blank lines skipped): a JSON object, or for ids a JSON string or
  the bare id. CSV: a header row; ids are its 'id' column, otherwise each row is an object
  of its non-empty cells, as text (a cell starting with { or [ is JSON: recipients, ...).
"""


@attrs.frozen
class Operation:
    """An ``OPERATION``: its endpoint's row (``users.bulk.identify``: ``knock.users.bulk``),
    whether it takes ``--collection``, and the argument it needs besides."""

    row: Endpoint
    collection: bool
    extra: str | None

    def start(
        self, knock: KnockClient, items: Iterable[object], *, collection: str | None = None,
        extra: object = None, **options: Unpack[FollowOptions],
    ) -> FanOut:  # fmt: skip
        """The library's ``_all`` stream (``row.all_method``) over ``items``."""
        bulk = getattr(knock, self.row.name.partition(".")[0]).bulk
        method: Callable[..., FanOut] = getattr(bulk, self.row.all_method)
        arguments = {self.row.items: items, **({self.extra: extra} if self.extra else {})}
        return method(*[collection][: self.collection], **arguments, **options)


# Knock's names are the rows' without ".bulk"; the table does not list a body field besides.
_EXTRA = {"users.bulk.set_preferences": "preferences"}
OPERATIONS = {
    r.name.replace(".bulk.", "."): Operation(r, "{collection}" in r.route, _EXTRA.get(r.name))
    for r in ENDPOINTS.values()
}


class BadLineError(UsageError):
    """A line of the items file that cannot be sent: ``where, line N: what is wrong``."""

    def __init__(self, where: str, line: int, reason: str) -> None:
        super().__init__(f"{where}, line {line}: {reason}")
        self.where, self.line, self.reason = where, line, reason


def _refuse(constant: str) -> NoReturn:  # json.loads reads NaN; JSON (and Knock) has none
    raise ValueError(f"{constant} is not JSON")


def _json(where: str, number: int, text: str) -> object:
    try:  # as the line stands: a column counted from its start, not on a line 2 (the newline)
        return json.loads(text.rstrip("\r\n"), parse_constant=_refuse)
    except ValueError as exc:
        what = f"{exc.msg}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else exc
        raise BadLineError(where, number, f"invalid JSON ({what})") from None


def _ndjson(lines: Iterator[str], where: str, ids: bool) -> Iterator[tuple[int, object]]:
    for number, line in enumerate(lines, start=1):
        if text := line.strip():  # a bare id unless it looks like JSON ("123" is an id)
            yield number, text if ids and text[0] not in '{["' else _json(where, number, line)


def _csv(lines: Iterator[str], where: str, ids: bool) -> Iterator[tuple[int, object]]:
    reader, start, header = csv.reader(lines, strict=True), 1, list[str]()
    try:
        for row in reader:
            number, start = start, reader.line_num + 1  # a record's first line
            if row and not header:
                need = "an id column" if ids else "distinct, non-empty column names"
                if "" in row or len(set(row)) < len(row) or (ids and "id" not in row):
                    raise BadLineError(where, number, f"the header {row} needs {need}")
                header = row
            elif row and len(row) != len(header):
                raise BadLineError(where, number, f"{len(row)} cells, the header {len(header)}")
            elif row:
                cells = {k: v for k, v in zip(header, row, strict=True) if v}
                yield number, cells.get("id", "") if ids else {
                    k: _json(where, number, v) if v[0] in "{[" else v for k, v in cells.items()
                }  # fmt: skip
    except csv.Error as exc:
        raise BadLineError(where, start, f"bad CSV ({exc})") from None


def read_items(path: str, operation: Operation, *, fmt: str | None = None) -> Iterator[object]:
    """The items of ``path`` (``-``: stdin) in ``fmt`` (default: from the extension), each
    checked as the library checks it, a line read only when its item is asked for."""
    if (fmt := fmt or FORMATS.get(os.path.splitext(path)[1].lower())) is None and path == "-":
        raise UsageError(_NO_FORMAT.format(path))
    return (item for _, item in _read(path, fmt, operation))


def _read(path: str, fmt: str | None, op: Operation) -> Iterator[tuple[int, object]]:
    """Each item, checked, after the number of the line it starts on."""
    where, parse = ("stdin" if path == "-" else path), (_csv if fmt == "csv" else _ndjson)
    try:
        file = contextlib.nullcontext(sys.stdin.buffer) if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:  # missing, a directory, not readable: one line, exit 2
        raise UsageError(f"cannot read --file {path}: {exc.strerror}") from None
    read = itertools.count(1)  # lines read: the one that is not UTF-8 is the last
    with file as lines:  # a BOM (Excel's CSV) starts the file, not its first id
        if fmt is None:  # asked once the file is known to be there: a missing one is missing
            raise UsageError(_NO_FORMAT.format(path))
        text = (raw.decode("utf-8-sig" if next(read) == 1 else "utf-8") for raw in lines)
        try:
            for index, (number, item) in enumerate(parse(text, where, op.row.check is check_id)):
                try:  # the library's message, and the line
                    yield number, op.row.check(f"{op.row.items}[{index}]", item)
                except (TypeError, ValueError) as exc:
                    raise BadLineError(where, number, str(exc)) from None
        except UnicodeDecodeError:
            raise BadLineError(where, next(read) - 1, "not UTF-8 text") from None


def unsent(
    path: str, op: Operation, fmt: str | None, count: int | None, done: FanOutSummary, cut: bool
) -> str | None:
    """What of the input was not sent: none (no items), or after Ctrl-C (``cut``) from where."""
    if not (done.results or cut):
        return f"--file {path} held no items: nothing was sent"
    pending = [r.items.start for r in done.results if r.items and r.status == "pending"]  # read
    first = min(pending, default=max((r.items.stop for r in done.results if r.items), default=0))
    told = f"items from {first} on were not sent (or got no answer)"
    if not cut or first == count or path == "-":
        return told if cut and path == "-" else None
    fmt = fmt or FORMATS[os.path.splitext(path)[1].lower()]
    line, _ = next(itertools.islice(_read(path, fmt, op), first, None))
    rest = f"tail -n +{line} {shlex.quote(path)}"
    rest = f"(head -n 1 {shlex.quote(path)}; {rest})" if fmt == "csv" else rest
    return (
        f"{told}; to send them from line {line} of {path}, pipe `{rest}` into the same command "
        f"with --file - --format {fmt}"
    )


@attrs.frozen
class CheckedFile:
    """A real file's ``count`` items (checked whole): sized, so that the run's totals count
    the chunks not sent yet; each iteration ``read``s the file again, as stdin cannot be."""

    read: Callable[[], Iterator[object]]
    count: int

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[object]:
        return self.read()
