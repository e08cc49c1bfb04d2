"""``knock-async bulk``'s input (``knock_async.cli._items_file``): the ten operations mapped
onto the library's ``_all`` methods, and the items of an NDJSON or CSV file or stdin, read
lazily, each checked by the library's own item check, a bad line named by its number."""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knock_async._items import check_id, check_user
from knock_async.cli._args import UsageError
from knock_async.cli._items_file import OPERATIONS, BadLineError, read_items
from knock_async.testing import FastClock, KnockEmulator
from tests._paced import client, emu, fast

TEN = [
    "users.identify", "users.delete", "users.set_preferences", "objects.set", "objects.delete",
    "objects.add_subscriptions", "objects.delete_subscriptions", "tenants.set",
    "tenants.delete", "schedules.create",
]  # fmt: skip
__all__ = ["emu", "fast"]  # fixtures: the paced emulator of the _all tests
IDENTIFY, DELETE = OPERATIONS["users.identify"], OPERATIONS["users.delete"]
# Hypothesis writes many files; the tmp_path of one example is reused by the next.
FILES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


def check(path: str, operation: Any, **options: Any) -> int:
    """A real file read whole, every line checked (as ``bulk`` does first): its items."""
    return sum(1 for _ in read_items(path, operation, **options))


def refusal(path: str, operation: Any = IDENTIFY, **options: Any) -> BadLineError:
    with pytest.raises(BadLineError) as caught:
        list(read_items(path, operation, **options))
    return caught.value


def test_the_ten_operations_and_how_each_is_called() -> None:
    """The table holds exactly issue 25's ten names; each names its library row (the family's
    ``knock.<family>.bulk``), takes ``--collection`` exactly for objects, has id items exactly
    when the argument is a list of ids (``*_ids``), and only ``users.set_preferences`` needs an
    extra argument."""
    assert sorted(OPERATIONS) == sorted(TEN)
    for name, operation in OPERATIONS.items():
        family, _, verb = name.partition(".")
        assert operation.row.name == f"{family}.bulk.{verb}"
        assert operation.collection == (family == "objects")
        assert (operation.row.check is check_id) == operation.row.items.endswith("_ids")
        assert operation.extra == ("preferences" if name == "users.set_preferences" else None)


# One small file per operation: both formats, ids bare, as JSON strings and in a CSV column.
RUNS = {
    "users.identify": ("users.ndjson", '{"id": "u1", "name": "Ann"}\n'),
    "users.delete": ("ids.csv", "id\nu1\n"),
    "users.set_preferences": ("ids.jsonl", "u1\n"),
    "objects.set": ("objects.csv", "id,name\np1,Project\n"),
    "objects.delete": ("ids.ndjson", '"p1"\n'),
    "objects.add_subscriptions": ("subs.csv", 'id,recipients\np1,"[""u1""]"\n'),
    "objects.delete_subscriptions": ("subs.ndjson", '{"id": "p1", "recipients": ["u1"]}\n'),
    "tenants.set": ("tenants.csv", "id,name\nacme,Acme\n"),
    "tenants.delete": ("tenants.ndjson", "acme\n"),
    "schedules.create": ("schedules.csv", "workflow,recipient\ndigest,u1\n"),
}


@pytest.mark.parametrize("name", TEN)
async def test_each_operation_runs_from_its_file(
    emu: KnockEmulator, fast: FastClock, tmp_path: Path, name: str
) -> None:
    """Each operation's file, read lazily and handed to ``Operation.start``, reaches the right
    ``_all`` method (collection and preferences passed): the operation completes under
    Knock's name with the one item."""
    emu.add_users("u1")
    emu.add_objects("projects", "p1")
    operation = OPERATIONS[name]
    path = write(tmp_path, *RUNS[name])
    async with client(emu, fast) as knock:
        fan = operation.start(
            knock, read_items(path, operation), collection="projects", extra={"id": "default"}
        )
        summary = await fan
    assert summary.ok, summary.results
    (result,) = summary.results
    assert result.operation is not None
    assert result.operation.name == operation.row.operation.replace("{collection}", "projects")
    assert (result.items, result.operation.success_count) == (range(1), 1)


async def test_stdin_run_stops_at_the_bad_line_with_what_was_sent(
    emu: KnockEmulator, fast: FastClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From stdin, a bad line 1,502 (after a blank line) ends the run there: the first chunk
    of 1,000 users went (its operation goes on), nothing from the bad line's chunk was sent,
    and the error names the line and says what was sent."""
    lines = [json.dumps({"id": f"u{i}"}) for i in range(1500)] + ["", '{"name": "no id"}']
    stdin = io.TextIOWrapper(io.BytesIO("\n".join(lines).encode()))
    monkeypatch.setattr("sys.stdin", stdin)
    async with client(emu, fast) as knock:
        fan = IDENTIFY.start(knock, read_items("-", IDENTIFY, fmt="ndjson"))
        with pytest.raises(BadLineError) as caught:
            await fan
    assert str(caught.value) == "stdin, line 1502: users[1500] has no id"
    assert "1,000 items before it went in 1 operation(s)" in " ".join(caught.value.__notes__)
    posts = [r for r in emu.requests if r.method == "POST" and r.status == 200]
    assert len(posts) == 1


def test_ndjson_objects_blank_lines_skipped(tmp_path: Path) -> None:
    """NDJSON objects: one per line, blank and whitespace-only lines skipped, values kept
    with their JSON types."""
    path = write(tmp_path, "u.ndjson", '{"id": "u1", "age": 3}\n\n  \n{"id": "u2", "vip": true}')
    assert list(read_items(path, IDENTIFY)) == [{"id": "u1", "age": 3}, {"id": "u2", "vip": True}]


def test_ndjson_ids_as_json_strings_or_bare(tmp_path: Path) -> None:
    """An id line is a JSON string or a bare id (the trimmed line; digits stay a string)."""
    path = write(tmp_path, "ids.ndjson", '"u 1"\n  u2  \n123\n\n"\\u00e9"\nnull\n')
    assert list(read_items(path, DELETE)) == ["u 1", "u2", "123", "\u00e9", "null"]


def test_an_object_in_an_id_list_gets_the_library_message(tmp_path: Path) -> None:
    """An object line in an id list is refused with the library's own message for that index
    (``check_id``), and the line number."""
    path = write(tmp_path, "ids.ndjson", 'u1\n\n{"id": "u2"}\n')
    with pytest.raises(TypeError) as library:
        check_id("user_ids[1]", {"id": "u2"})
    error = refusal(path, DELETE)
    assert (error.line, error.reason) == (3, str(library.value))
    assert str(error) == f"{path}, line 3: user_ids[1] must be a string id, got dict"


def test_the_first_bad_line_of_several_is_named(tmp_path: Path) -> None:
    """With several bad lines, the first one is reported: its number (blank lines counted),
    the item's index (blank lines not counted) and the message ``check_user`` gives."""
    text = '{"id": "u1"}\n\n{"name": "x"}\n[1]\nnot json\n'
    with pytest.raises(ValueError, match="has no id") as library:
        check_user("users[1]", {"name": "x"})
    error = refusal(write(tmp_path, "u.ndjson", text))
    assert isinstance(error, UsageError)
    assert (error.line, error.reason) == (3, str(library.value))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[1]", "users[0] must be a mapping or a UserRecord, got list"),
        ('"u1"', "users[0] must be a mapping or a UserRecord, got str"),
        ('{"id": ""}', "users[0].id must be a non-empty id, got ''"),
        ('{"id": "u1",}', "invalid JSON ({stdlib})"),  # the message differs by Python version
        ('{"id": NaN}', "invalid JSON (NaN is not JSON)"),
    ],
)  # fmt: skip
def test_what_is_wrong_with_a_line(tmp_path: Path, line: str, reason: str) -> None:
    """Not an object, an empty id, invalid JSON (with its column) and NaN (which Python's
    JSON reads but Knock refuses) are each named after the line's number."""
    if "{stdlib}" in reason:
        with pytest.raises(json.JSONDecodeError) as stdlib:
            json.loads(line)
        reason = reason.format(stdlib=f"{stdlib.value.msg}, column {stdlib.value.colno}")
    error = refusal(write(tmp_path, "u.ndjson", '{"id": "ok"}\n' + line + "\n"))
    assert (error.line, error.reason) == (2, reason.replace("[0]", "[1]"))


def test_not_utf8_names_its_line_and_a_bom_is_dropped(tmp_path: Path) -> None:
    """A leading UTF-8 BOM (Excel's CSV) is not part of the header; a line that is not UTF-8
    is refused by number."""
    path = write(tmp_path, "ids.csv", b"\xef\xbb\xbfid\nu1\nu\xff2\n")
    error = refusal(path, DELETE)
    assert (error.line, error.reason) == (3, "not UTF-8 text")
    assert list(read_items(write(tmp_path, "ok.csv", b"\xef\xbb\xbfid\nu1\n"), DELETE)) == ["u1"]


def test_csv_objects_empty_cells_absent_json_cells_parsed(tmp_path: Path) -> None:
    """CSV columns become fields as text: an empty cell is absent, a cell starting with ``{``
    or ``[`` is JSON; a quoted cell may span lines, and blank lines are skipped."""
    text = 'id,name,tags,address\nu1,,"[""a""]",\n\nu2,"Bo\nB",,"{""city"": ""Oslo""}"\n'
    assert list(read_items(write(tmp_path, "u.csv", text), IDENTIFY)) == [
        {"id": "u1", "tags": ["a"]},
        {"id": "u2", "name": "Bo\nB", "address": {"city": "Oslo"}},
    ]


def test_csv_ids_read_the_id_column_only(tmp_path: Path) -> None:
    """An id list reads its ``id`` column wherever it is; other columns are ignored (even one
    that would not parse as JSON); an empty id cell gets the library's message."""
    path = write(tmp_path, "ids.csv", "email,id,meta\na@x,u1,{oops\nb@x,u2,\nc@x,,\n")
    items = read_items(path, DELETE)
    assert [next(items), next(items)] == ["u1", "u2"]
    with pytest.raises(BadLineError, match=r"line 4: user_ids\[2\] must be a non-empty id"):
        next(items)


@pytest.mark.parametrize(
    ("operation", "text", "line", "reason"),
    [
        (DELETE, "\nuser,email\nu1,a@x\n", 2, "the header ['user', 'email'] needs an id column"),
        (IDENTIFY, "id,id\nu1,u2\n", 1, "the header ['id', 'id'] needs distinct, non-empty "
         "column names"),
        (IDENTIFY, "id,name\nu1,Ann\n\nu2\n", 4, "1 cells, the header 2"),
        (IDENTIFY, 'id,name\nu1,"Ann\n\nu2,x\n', 2, "bad CSV (unexpected end of data)"),
        (IDENTIFY, 'id,tags\nu1,[a]\n', 2, "invalid JSON (Expecting value, column 2)"),
    ],
)  # fmt: skip
def test_bad_csv_names_its_line(
    tmp_path: Path, operation: Any, text: str, line: int, reason: str
) -> None:
    """A header without an ``id`` column (for ids) or with duplicate names, a row of the wrong
    width, an unterminated quote (named from its record's first line) and a bad JSON cell."""
    error = refusal(write(tmp_path, "f.csv", text), operation)
    assert (error.line, error.reason) == (line, reason)


def test_stdin_needs_format_and_reads_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``-`` reads stdin in the ``--format`` given; without one, a usage error says to give
    it (as for a file whose extension says nothing)."""
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"id\nu1\nu2\n")))
    with pytest.raises(UsageError, match="give --format ndjson or csv"):
        read_items("-", DELETE)
    with pytest.raises(UsageError, match=r"format of --file .*ids\.txt"):
        list(read_items(write(tmp_path, "ids.txt", "u1\n"), DELETE))
    assert list(read_items("-", DELETE, fmt="csv")) == ["u1", "u2"]


def test_format_override_on_a_file(tmp_path: Path) -> None:
    """``--format`` wins over the extension."""
    path = write(tmp_path, "ids.txt", "u1\nu2\n")
    assert list(read_items(path, DELETE, fmt="ndjson")) == ["u1", "u2"]


@pytest.mark.parametrize(
    ("name", "why"), [("nope.csv", "No such file or directory"), ("", "Is a directory")]
)
def test_missing_or_unreadable_file_is_a_one_line_usage_error(
    tmp_path: Path, name: str, why: str
) -> None:
    """A missing file or a directory: a ``UsageError`` (exit 2) saying why in one line, with
    no exception chained behind it (so no traceback)."""
    path = str(tmp_path / name) if name else str(tmp_path)
    with pytest.raises(UsageError) as caught:
        check(path, DELETE, fmt="csv")
    assert str(caught.value) == f"cannot read --file {path}: {why}"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_stdin_is_read_line_by_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """From a pipe still open, the items before a bad line are handed out and the bad line
    raises at once: nothing waits for the rest of stdin (which never ends here)."""
    reading, writing = os.pipe()
    os.write(writing, b'{"id": "u1"}\n{"id": "u2"}\n{"name": "no id"}\n')
    stdin = io.TextIOWrapper(open(reading, "rb"))  # noqa: SIM115
    monkeypatch.setattr("sys.stdin", stdin)
    seen: list[object] = []

    def consume() -> None:
        try:
            seen.extend(read_items("-", IDENTIFY, fmt="ndjson"))
        except BadLineError as exc:
            seen.append(exc.line)

    thread = threading.Thread(target=consume)
    thread.start()
    thread.join(5.0)
    os.close(writing)  # ends a reader that did wait for EOF, so the test fails, not hangs
    thread.join()
    stdin.close()
    assert seen == [{"id": "u1"}, {"id": "u2"}, 3]


def test_check_counts_a_large_file_in_bounded_memory(tmp_path: Path) -> None:
    """``check`` reads a 30,000-line file (about 870 KB) once and counts its items while
    Python's peak allocation stays under a tenth of the file: it is never held whole (the
    peak is about 10 KB at 50,000 or 200,000 lines alike; tracemalloc makes it slow)."""
    path = tmp_path / "users.ndjson"
    with path.open("w") as file:
        file.writelines(f'{{"id": "user-{i:08d}", "n": {i}}}\n' for i in range(30_000))
    check(write(tmp_path, "warm.ndjson", '{"id": "u1"}\n'), IDENTIFY)  # first-call caches
    tracemalloc.start()
    try:
        assert check(str(path), IDENTIFY) == 30_000
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < path.stat().st_size / 10, (peak, path.stat().st_size)


def test_items_are_read_only_when_asked(tmp_path: Path) -> None:
    """The reader is a generator: nothing past the items taken is read, so a bad line later
    in the file is not reached by taking the first item."""
    path = write(tmp_path, "u.ndjson", '{"id": "u1"}\nnot json\n')
    items: Iterator[object] = read_items(path, IDENTIFY)
    assert next(items) == {"id": "u1"}
    with pytest.raises(BadLineError, match="line 2"):
        next(items)


ids = st.text(min_size=1).filter(str.strip)


@FILES
@given(values=st.lists(ids, max_size=20))
def test_csv_round_trip_of_any_ids(tmp_path: Path, values: list[str]) -> None:
    """Any non-blank ids (quotes, commas, newlines, BOMs, any Unicode) written by ``csv`` with
    another column read back as written, in order."""
    path = tmp_path / "ids.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["note", "id"])
        writer.writerows([["x", value] for value in values])
    assert list(read_items(str(path), DELETE)) == values


@FILES
@given(values=st.lists(ids, max_size=20))
def test_ndjson_round_trip_of_any_ids(tmp_path: Path, values: list[str]) -> None:
    """Any non-blank ids written as JSON strings, one per line, read back as written."""
    path = write(tmp_path, "ids.ndjson", "".join(json.dumps(v) + "\n" for v in values))
    assert list(read_items(path, DELETE)) == values


texts = st.text(min_size=1).filter(lambda v: v[0] not in "{[")


@FILES
@given(users=st.lists(st.dictionaries(st.sampled_from(["name", "email", "x"]), texts)))
def test_csv_round_trip_of_objects(tmp_path: Path, users: list[dict[str, str]]) -> None:
    """Rows of text cells (none starting with ``{`` or ``[``) read back as the objects
    written, an empty cell being an absent field."""
    path = tmp_path / "users.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, ["id", "name", "email", "x"])
        writer.writeheader()
        writer.writerows({"id": f"u{i}", **user} for i, user in enumerate(users))
    expected = [{"id": f"u{i}", **user} for i, user in enumerate(users)]
    assert list(read_items(str(path), IDENTIFY)) == expected
