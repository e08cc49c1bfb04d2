"""``knock-async bulk``'s input: its ten operations, and the items of ``--file``, read lazily.

NDJSON (``.ndjson``, ``.jsonl``): one item per line, blank lines skipped; an object, or for an
id list a JSON string or a bare id (the trimmed line: ``123`` is the id ``"123"``; a line
starting with ``{``, ``[`` or ``"`` is JSON). CSV (``.csv``): a header row; an id list reads
its ``id`` column, any other operation makes each row an object of its non-empty cells, as
text (a cell starting with ``{`` or ``[`` is JSON: recipients, nested data). ``-`` is stdin.
Each item passes the library's own check (``_items``) as it is read: a bad one is a
``BadLineError`` (exit 2) naming its line, raised before any line after it is read.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, NoReturn, Unpack

import attrs

from .._bulk import FollowOptions
from .._endpoints import ENDPOINTS, Endpoint
from .._items import check_id
from ._args import UsageError

if TYPE_CHECKING:
    from .._client import KnockClient
    from .._fanout import FanOut

__all__ = ["FORMATS", "OPERATIONS", "BadLineError", "Operation", "check", "read_items"]

FORMATS = {".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}


@attrs.frozen
class Operation:
    """One ``OPERATION``: its endpoint's row, ``knock.<family>.bulk``, whether it takes
    ``--collection``, whether its items are ids, and the argument it needs besides."""

    row: Endpoint
    family: str
    collection: bool
    ids: bool
    extra: str | None

    def start(
        self, knock: KnockClient, items: Iterable[object], *, collection: str | None = None,
        extra: object = None, **options: Unpack[FollowOptions],
    ) -> FanOut:  # fmt: skip
        """The library's ``_all`` stream (``row.all_method``) over ``items``."""
        namespace = getattr(knock, self.family).bulk
        method: Callable[..., FanOut] = getattr(namespace, self.row.all_method)
        arguments = {self.row.items: items, **({self.extra: extra} if self.extra else {})}
        return method(*[collection][: self.collection], **arguments, **options)


# Knock's names (users.identify) are the library's rows without ".bulk"; the extra argument
# is a body field the endpoint table does not list (set_preferences_all's signature).
_EXTRA = {"users.bulk.set_preferences": "preferences"}
OPERATIONS = {
    row.name.replace(".bulk.", "."): Operation(
        row, row.name.partition(".")[0], "{collection}" in row.route, row.check is check_id,
        _EXTRA.get(row.name),
    )
    for row in ENDPOINTS.values()
}  # fmt: skip


class BadLineError(UsageError):
    """A line of the items file that cannot be sent: ``where, line N: what is wrong``."""

    def __init__(self, where: str, line: int, reason: str) -> None:
        super().__init__(f"{where}, line {line}: {reason}")
        self.where, self.line, self.reason = where, line, reason


def _refuse(constant: str) -> NoReturn:  # json.loads reads NaN; JSON (and Knock) has none
    raise ValueError(f"{constant} is not JSON")


def _json(where: str, number: int, text: str) -> object:
    try:
        return json.loads(text, parse_constant=_refuse)
    except json.JSONDecodeError as exc:
        raise BadLineError(where, number, f"invalid JSON ({exc.msg}, column {exc.colno})") from None
    except ValueError as exc:
        raise BadLineError(where, number, f"invalid JSON ({exc})") from None


def _lines(path: str, where: str) -> Iterator[str]:
    try:
        file = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot read --file {path}: {exc.strerror}") from None
    try:
        for number, raw in enumerate(file, start=1):
            try:  # a BOM (Excel's CSV) starts the file, not its first id
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise BadLineError(where, number, "not UTF-8 text") from None
    finally:
        if file is not sys.stdin.buffer:
            file.close()


def _ndjson(lines: Iterator[str], where: str, ids: bool) -> Iterator[tuple[int, object]]:
    for number, line in enumerate(lines, start=1):
        if text := line.strip():
            bare = ids and text[0] not in '{["'
            yield number, text if bare else _json(where, number, line)


def _csv(lines: Iterator[str], where: str, ids: bool) -> Iterator[tuple[int, object]]:
    reader, start, header = csv.reader(lines, strict=True), 1, None
    try:
        for row in reader:
            number, start = start, reader.line_num + 1  # a record's first line
            if not row:
                continue
            if header is None:
                if "" in row or len(set(row)) < len(row) or (ids and "id" not in row):
                    need = "an id column" if ids else "distinct, non-empty column names"
                    raise BadLineError(where, number, f"the header {row} needs {need}")
                header = row
            elif len(row) != len(header):
                raise BadLineError(where, number, f"{len(row)} cells, the header {len(header)}")
            elif ids:
                yield number, row[header.index("id")]
            else:
                cells = zip(header, row, strict=True)
                yield (
                    number,
                    {k: _json(where, number, v) if v[0] in "{[" else v for k, v in cells if v},
                )
    except csv.Error as exc:
        raise BadLineError(where, start, f"bad CSV ({exc})") from None


def read_items(path: str, operation: Operation, *, fmt: str | None = None) -> Iterator[object]:
    """The items of ``path`` (``-``: stdin) in ``fmt`` (default: from the extension), each
    checked as the library checks it; a line is read only when its item is asked for, so a
    ``BadLineError`` (or ``UsageError``: an unreadable file) comes when its line is reached."""
    fmt = fmt or FORMATS.get(os.path.splitext(path)[1].lower() if path != "-" else "")
    if fmt is None:
        raise UsageError(f"cannot tell the format of --file {path}: give --format ndjson or csv")
    where, row = ("stdin" if path == "-" else path), operation.row
    parsed = (_csv if fmt == "csv" else _ndjson)(_lines(path, where), where, operation.ids)
    return _checked(parsed, where, row)


def _checked(parsed: Iterator[tuple[int, object]], where: str, row: Endpoint) -> Iterator[object]:
    for index, (number, item) in enumerate(parsed):
        try:  # the message the library gives, and the line
            yield row.check(f"{row.items}[{index}]", item)
        except (TypeError, ValueError) as exc:
            raise BadLineError(where, number, str(exc)) from None


def check(path: str, operation: Operation, *, fmt: str | None = None) -> int:
    """Read a real file once, checking every line: its number of items, or the first
    ``BadLineError``. (The run reads it again to send; stdin cannot be read twice.)"""
    return sum(1 for _ in read_items(path, operation, fmt=fmt))
