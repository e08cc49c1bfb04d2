"""``knock-async bulk OPERATION --file PATH``: the real command against the standalone emulator
(``python -m knock_async.testing``, rate limits on), and in this process (``cli``) against an
emulator on a sped-up clock shared with the command's client, so that tier 1's one request a
second is kept while the tests run ten times faster."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from knock_async import KnockClient
from knock_async.cli._display import PlainDisplay
from knock_async.redis import environment_key_prefix
from knock_async.testing import EmulatorRateLimits, FastClock, KnockEmulator
from tests.cli._clitools import (
    API_KEY,
    Cli,
    EmulatorThread,
    Output,
    cli_env,
    knock_async,
    stop,
)
from tests.cli.test_bulk_update import PROGRESS_FIELDS, SUMMARY_FIELDS, ndjson, summary_of
from tests.cli.test_items_file import RUNS, TEN

USERS = "".join(json.dumps({"id": f"u{i}", "name": f"User {i}"}) + "\n" for i in range(2100))


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def posts(emulator: EmulatorThread) -> int:
    """The bulk POSTs the emulator has answered so far (a 429 started nothing)."""
    return emulator.call(
        lambda emu: sum(r.method == "POST" and r.status == 200 for r in emu.requests)
    )


# -- the real command against the standalone emulator ------------------------------------


@pytest.fixture(scope="module")
def standalone() -> Iterator[str]:
    """``python -m knock_async.testing --port 0`` (Knock's rate limits on): its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "knock_async.testing", "--port", "0", "--channels", "0"],
        env=cli_env(key=None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        lines = Output(process).until(lambda got: bool(got) and got[-1] == "Ctrl-C to stop.")
        yield lines[0].rsplit(" ", 1)[1]
    finally:
        process.send_signal(signal.SIGINT)
        stop(process)


@pytest.mark.subprocess
def test_identify_2100_users_from_ndjson_in_three_requests(standalone: str, tmp_path: Path) -> None:
    """2,100 users: three operations (1,000, 1,000, 100 items, paced at tier 1), exit 0, and
    a --json summary counting 2,100 successes."""
    path = write(tmp_path, "users.ndjson", USERS)
    result = knock_async(
        "bulk", "users.identify", "--file", path, "--json", env=cli_env(standalone)
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    summary = summary_of(result.stdout)
    assert (summary["outcome"], summary["exit_code"]) == ("completed", 0)
    operations = summary["operations"]
    assert [op["items"] for op in operations] == [[0, 1000], [1000, 2000], [2000, 2100]]
    assert sum(op["success_count"] for op in operations) == 2100
    assert summary["totals"]["processed_rows"] == 2100
    assert len({op["operation_id"] for op in operations}) == 3


@pytest.mark.subprocess
def test_delete_500_users_from_csv_in_one_request(standalone: str, tmp_path: Path) -> None:
    """500 ids under an `id` header: one operation, 500 successes, exit 0; the plain summary
    line says so."""
    path = write(tmp_path, "ids.csv", "id\n" + "".join(f"u{i}\n" for i in range(500)))
    result = knock_async("bulk", "users.delete", "--file", path, env=cli_env(standalone))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("submitted operation=")
    assert lines[-1].startswith("completed: users.delete on 1 chunk: 1 completed, 0 failed")
    assert "; 500 rows processed in " in lines[-1]


@pytest.mark.subprocess
def test_a_missing_file_exits_2_with_one_line(standalone: str, tmp_path: Path) -> None:
    """A file that is not there: exit 2, one line on stderr, no traceback, nothing on stdout."""
    missing = str(tmp_path / "nope.csv")
    result = knock_async("bulk", "users.delete", "--file", missing, env=cli_env(standalone))
    assert result.returncode == 2
    assert (
        result.stderr
        == f"knock-async: error: cannot read --file {missing}: No such file or directory\n"
    )
    assert result.stdout == ""


# -- in this process, on a sped-up clock ---------------------------------------------------


@pytest.fixture(scope="module")
def clock() -> FastClock:
    return FastClock(speed=10.0)


@pytest.fixture(scope="module")
def paced(clock: FastClock) -> Iterator[EmulatorThread]:
    """An emulator with Knock's tier-1 limits on the sped-up clock (half a token of slack for
    loopback jitter, as ``tests/_paced.py`` explains)."""
    thread = EmulatorThread(
        clock=clock, rows_per_second=100_000.0, strict=True,
        rate_limits=EmulatorRateLimits(burst_seconds=1.5),
    )  # fmt: skip
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def fast(cli: Cli, clock: FastClock, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli`` whose client runs on the emulator's sped-up clock."""
    client = functools.partial(KnockClient, clock=clock.monotonic, sleep=clock.sleep)
    monkeypatch.setattr("knock_async.cli._run.KnockClient", client)
    return cli


OPTIONS = {
    "objects": ["--collection", "projects"],
    "users.set_preferences": ["--preferences", '{"id": "default"}'],
}


def seed(emu: KnockEmulator) -> None:
    """The user and the object the files of ``RUNS`` name."""
    emu.add_users("u1")
    emu.add_objects("projects", "p1")


@pytest.mark.parametrize("name", TEN)
def test_each_operation_runs_with_its_options(
    paced: EmulatorThread, fast: Cli, tmp_path: Path, name: str
) -> None:
    """Every OPERATION runs from its file with its own options: the start record names the
    operation, the file, its item count and the collection when given; the one operation
    completes with one success, its chunk's items and no error_items in the summary."""
    paced.call(seed)  # again: the runs of users.delete and objects.delete delete them
    path = write(tmp_path, *RUNS[name])
    options = OPTIONS.get(name.split(".")[0], OPTIONS.get(name, []))
    result = fast("bulk", name, "--file", path, *options, "--json", env=cli_env(paced.base_url))
    assert result.returncode == 0, result.stderr
    start, *progress, summary = ndjson(result.stdout)
    expected = {"type": "start", "command": "bulk", "operation": name, "file": path, "items": 1}
    assert start == expected | (
        {"collection": "projects"} if options[:1] == ["--collection"] else {}
    )
    assert progress
    assert all(set(record) == PROGRESS_FIELDS for record in progress)
    assert set(summary) >= SUMMARY_FIELDS
    (operation,) = summary["operations"]
    assert (summary["action"], summary["outcome"], summary["exit_code"]) == (name, "completed", 0)
    assert (operation["items"], operation["success_count"], operation["error_items"]) == (
        [0, 1], 1, []
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["objects.set"], "error: objects.set needs --collection"),
        (["users.identify", "--collection", "x"], "error: users.identify takes no --collection"),
        (["users.set_preferences"], "error: users.set_preferences needs --preferences"),
        (["users.delete", "--preferences", "{}"], "error: users.delete takes no --preferences"),
        (["objects.delete", "--collection", "a/b"], "--collection: collection must be one path"),
        (["users.set_preferences", "--preferences", "[1]"], "--preferences: must be a JSON object"),
        (["users.sign_up"], "argument OPERATION: invalid choice: 'users.sign_up'"),
        (["users.delete", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
    ],
)
def test_option_rules_are_usage_errors_before_anything_is_sent(
    paced: EmulatorThread, cli: Cli, tmp_path: Path, args: list[str], message: str
) -> None:
    """--collection exactly for objects.*, --preferences exactly for users.set_preferences (a
    JSON object), a collection that is one path segment, a known OPERATION and --format:
    otherwise exit 2 with one stderr line, and no request."""
    path = write(tmp_path, "ids.ndjson", "u1\n")
    before = paced.request_count()
    name, *rest = args
    result = cli("bulk", name, "--file", path, *rest, env=cli_env(paced.base_url))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert message in line
    assert (result.stdout, paced.request_count()) == ("", before)


def test_stdin_cannot_hold_both_the_key_and_the_items(paced: EmulatorThread, cli: Cli) -> None:
    """`--file -` with `--api-key-file -` is refused (exit 2), as for --channels-file; stdin
    without --format is too, naming the option to give."""
    env = cli_env(paced.base_url)
    both = cli(
        "bulk", "users.delete", "--file", "-", "--format", "csv", "--api-key-file", "-", env=env
    )
    assert (both.returncode, both.stderr) == (
        2, "knock-async: error: --api-key-file and --file cannot both read stdin\n"
    )  # fmt: skip
    no_format = cli("bulk", "users.delete", "--file", "-", env=env, input="u1\n")
    assert no_format.returncode == 2
    assert "give --format ndjson or csv" in no_format.stderr


def test_a_bad_line_in_a_file_is_named_before_anything_is_sent(
    paced: EmulatorThread, cli: Cli, tmp_path: Path
) -> None:
    """A file is checked whole first: a bad line 1,502 (after a blank line) is named with the
    library's message, exit 2, and not one request is sent, not even the first chunk's."""
    lines = [*USERS.splitlines()[:1500], "", '{"name": "no id"}']
    path = write(tmp_path, "users.ndjson", "\n".join(lines) + "\n")
    before = paced.request_count()
    result = cli("bulk", "users.identify", "--file", path, env=cli_env(paced.base_url))
    assert result.returncode == 2
    assert result.stderr == f"knock-async: error: {path}, line 1502: users[1500] has no id\n"
    assert (result.stdout, paced.request_count()) == ("", before)


def test_stdin_stops_at_a_bad_line_saying_what_was_sent(paced: EmulatorThread, fast: Cli) -> None:
    """From stdin, a bad line 1,502 stops the run there: the first chunk (items 0-999) was
    sent and goes on; exit 2; the summary is printed (outcome `bad_line`, the chunk, how to
    resume) and stderr names the line, what was sent and the `status --watch` command."""
    before = posts(paced)
    stdin = "\n".join([*USERS.splitlines()[:1500], "", '{"name": "no id"}']) + "\n"
    result = fast(
        "bulk", "users.identify", "--file", "-", "--format", "ndjson", "--json",
        env=cli_env(paced.base_url), input=stdin,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    summary = summary_of(result.stdout)
    assert (summary["outcome"], summary["exit_code"]) == ("bad_line", 2)
    (operation,) = summary["operations"]
    assert operation["items"] == [0, 1000]
    resume = f"knock-async status {operation['operation_id']} --watch"
    assert summary["resume"] == [resume]
    assert result.stderr.splitlines() == [
        "knock-async: error: stdin, line 1502: users[1500] has no id; items 0-999 went in "
        "operations that go on server-side; nothing from item 1000 on was sent",
        "Resume following with:",
        f"  {resume}",
    ]
    assert posts(paced) - before == 1


def test_the_summary_shows_each_chunk_with_its_items(
    paced: EmulatorThread, fast: Cli, tmp_path: Path
) -> None:
    """2,100 users without --json: a line per change, then a row per operation under the item
    range its chunk carried, the full operation ids beside the ranges, and one line for the
    run counting 2,100 rows."""
    path = write(tmp_path, "users.ndjson", USERS)
    result = fast("bulk", "users.identify", "--file", path, env=cli_env(paced.base_url))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("submitted operation=") for line in lines) == 3
    rows = [line.split() for line in lines if line[:1].isdigit()]
    assert [row[:3] for row in rows[:3]] == [
        ["0-999", "completed", "1,000"], ["1000-1999", "completed", "1,000"],
        ["2000-2099", "completed", "100"],
    ]  # fmt: skip
    assert [row[0] for row in rows[3:]] == ["0-999", "1000-1999", "2000-2099"]
    assert lines[-1].startswith("completed: users.identify on 3 chunks: 3 completed, 0 failed")
    assert "; 2,100 rows processed in " in lines[-1]


def test_error_items_are_in_the_json_summary(
    paced: EmulatorThread, fast: Cli, tmp_path: Path
) -> None:
    """An item Knock could not apply is in its operation's `error_items` (exit 0: a completed
    operation with errors is data)."""
    paced.call(lambda emu: emu.faults.fail_messages(["bad-apple"]))
    path = write(tmp_path, "users.csv", "id,name\nok-1,A\nbad-apple,B\n")
    result = fast("bulk", "users.identify", "--file", path, "--json", env=cli_env(paced.base_url))
    assert result.returncode == 0, result.stderr
    (operation,) = summary_of(result.stdout)["operations"]
    assert operation["error_items"] == [{"id": "bad-apple", "collection": None}]
    assert (operation["success_count"], operation["error_count"]) == (1, 1)


@pytest.mark.parametrize(
    ("fault", "code", "outcome"),
    [("fail", 1, "failed"), ("stick", 4, "timeout"), ("key", 3, "error")],
)
def test_exit_codes_as_bulk_update(
    paced: EmulatorThread, fast: Cli, tmp_path: Path, fault: str, code: int, outcome: str
) -> None:
    """A failed operation exits 1, one past --timeout 4 (with its `status --watch` command),
    a key Knock refuses 3 (with the advice, never the key)."""
    path = write(tmp_path, "ids.ndjson", "gone-1\n")
    env, timeout = cli_env(paced.base_url), ["--timeout", "3"] if fault == "stick" else []
    if fault == "key":
        env = cli_env(paced.base_url, key="pk_test_public_Zq81")
    else:
        paced.call(lambda emu: getattr(emu.faults, f"{fault}_next_operation")())
    result = fast("bulk", "users.delete", "--file", path, *timeout, "--json", env=env)
    assert result.returncode == code, result.stderr
    summary = summary_of(result.stdout)
    assert summary["outcome"] == outcome
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"knock-async: {'error' if fault == 'key' else outcome}: ")
    if fault == "stick":
        assert summary["resume"][0] in line
    assert "pk_test_public_Zq81" not in result.stdout + result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_ctrl_c_prints_how_to_resume_each_operation(
    paced: EmulatorThread, fast: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C once the first of 3 chunks is submitted: exit 130, nothing more is sent, the
    summary counts the file's 3 chunks, and stderr gives `knock-async status ID --watch` for
    the operation, which goes on server-side, names the chunk read but not sent, and last the
    first item not sent, its line in the file and the `tail -n +LINE` printing the rest."""
    update = PlainDisplay.update

    def interrupt_once_submitted(self: PlainDisplay, event: Any) -> None:
        update(self, event)
        if event.kind == "submitted":  # the command's own SIGINT handler takes it
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(PlainDisplay, "update", interrupt_once_submitted)
    path = write(tmp_path, "users.ndjson", "\n" + USERS)  # a blank first line: line = item + 2
    before = posts(paced)
    result = fast("bulk", "users.identify", "--file", path, env=cli_env(paced.base_url))
    assert result.returncode == 130, result.stderr
    assert result.stdout.splitlines()[-1].startswith(
        "interrupted: users.identify on 3 chunks: 0 completed, 0 failed, 0 errored;"
    )
    operation_id = result.stdout.split("operation=", 1)[1].split()[0]
    lines = result.stderr.splitlines()
    assert lines[0].startswith("knock-async: interrupted: stopped following;")
    assert lines[1:3] == ["Resume following with:", f"  knock-async status {operation_id} --watch"]
    # The next chunk, if it was read and waiting for its turn, was not sent: it is named.
    assert all(line.startswith("1 chunk got no operation id") for line in lines[3:-1])
    assert all(line.endswith(": 1000-1999") for line in lines[3:-1])
    assert lines[-1] == (
        "knock-async: items from 1000 on were not sent (or got no answer); to send them from "
        f"line 1002 of {path}, pipe `tail -n +1002 {path}` into the same command with --file - "
        "--format ndjson"
    )
    assert posts(paced) - before == 1


def test_redis_url_is_accepted(paced: EmulatorThread, fast: Cli, tmp_path: Path) -> None:
    """--redis-url paces the run on a Redis shared by every run on the environment: the run
    completes and Redis holds the budget under the environment's hashed prefix only."""
    from tests.redis._server import RedisServer, redis_server_missing

    if (missing := redis_server_missing()) is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the Redis tests, but {missing}", pytrace=False)
        pytest.skip(missing)
    path = write(tmp_path, "ids.ndjson", "u-redis\n")
    with RedisServer() as server:
        result = fast(
            "bulk", "users.delete", "--file", path, "--redis-url", server.url,
            env=cli_env(paced.base_url),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        import redis

        with redis.Redis.from_url(server.url, decode_responses=True) as client:
            keys = client.keys("*")
    prefix = environment_key_prefix(API_KEY, base_url=paced.base_url)
    assert keys
    assert all(key.startswith(prefix) for key in keys)


def test_help_shows_the_operations_formats_and_a_migration(cli: Cli) -> None:
    """`bulk --help` lists the ten operations, the file formats, the migration example end to
    end, how to resume after Ctrl-C and the exit codes with stdin's exception to 2."""
    text = cli("bulk", "--help", env=cli_env()).stdout
    assert all(name in text for name in TEN)
    assert "NDJSON (.ndjson, .jsonl) or CSV (.csv)" in text
    assert "knock-async bulk objects.add_subscriptions --collection projects" in text
    assert "`knock-async status ID --watch` resumes each" in text
    assert "bulk --file -: a bad line stops the run there" in text


README = Path(__file__).parents[2] / "README.md"
_VARIES = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d+\.\ds\b")


def test_the_readmes_migration_prints_what_it_shows(
    paced: EmulatorThread, fast: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's migration example, run as written (the files made by its `printf` lines,
    stdin piped in): each command exits 0 and prints the lines shown, ids and times aside."""
    block = next(
        b for b in re.findall(r"```console\n(.*?)```", README.read_text(), flags=re.DOTALL)
        if "knock-async bulk users.identify" in b
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)
    commands = re.findall(r"^\$ (.*)\n((?:[^$].*\n)*)", block, flags=re.MULTILINE)
    ran = 0
    for command, shown in commands:
        if command.startswith("export "):  # the test's own environment stands for it
            continue
        producer, _, command = command.rpartition(" | ")
        if not command.startswith("knock-async "):  # printf > FILE
            subprocess.run(["bash", "-c", command], check=True)
            continue
        piped = subprocess.run(["bash", "-c", producer], check=True, capture_output=True, text=True)
        args = shlex.split(command)[1:]
        result = fast(*args, env=cli_env(paced.base_url), input=piped.stdout if producer else None)
        assert result.returncode == 0, result.stderr
        assert _VARIES.sub("*", result.stdout) == _VARIES.sub("*", shown), command
        ran += 1
    assert ran == 4
