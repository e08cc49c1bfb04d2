"""How the command line is started and what it needs: the console script, ``python -m``,
``--help``, the missing-extra hint, and that the library never imports ``rich``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from knock_async import __version__
from knock_async.cli import main
from tests.cli._clitools import TIMEOUT, Cli, EmulatorThread, cli_env


@pytest.mark.subprocess
def test_console_script_is_installed() -> None:
    """The `knock-async` script next to this Python runs the CLI."""
    script = Path(sys.executable).parent / "knock-async"
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"knock-async {__version__}"


def test_help_lists_the_commands_and_the_exit_codes(cli: Cli) -> None:
    """`--help` exits 0 and documents every command and exit code."""
    result = cli("--help", env=cli_env())
    assert result.returncode == 0
    for word in ("bulk-update", "status", "emulator", "demo", "130", "3, 1, 4, 0"):
        assert word in result.stdout
    bulk = cli("bulk-update", "--help", env=cli_env())
    for option in (
        "--archived",
        "--delivery-status",
        "--engagement-status",
        "--has-tenant",
        "--no-tenant",
        "--newer-than",
        "--older-than",
        "--recipient-id",
        "--tenant",
        "--workflow",
        "--trigger-data",
        "--channels-file",
        "--no-wait",
        "--timeout",
        "--json",
        "--api-key-file",
        "--base-url",
        "--yes",
    ):
        assert option in bulk.stdout
    assert "--api-key " not in bulk.stdout


@pytest.mark.subprocess
def test_importing_the_library_does_not_import_rich() -> None:
    """`rich` belongs to the CLI extra: neither `knock_async` nor `knock_async.cli` load it."""
    code = (
        "import sys, knock_async, knock_async.cli, knock_async.testing; "
        "print('rich' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.subprocess
def test_without_rich_the_cli_gives_a_one_line_hint() -> None:
    """With `rich` missing, a command prints one line naming the extra to install, exit 2."""
    code = (
        "import sys; sys.modules['rich'] = None; "
        "from knock_async.cli import main; sys.exit(main(['demo']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "knock-async: the command line needs the 'cli' extra: pip install 'knock-async[cli]'"
    ]


def test_main_returns_exit_codes_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    """`main(argv)` returns the exit code instead of exiting: 0 for --version, 2 for a usage
    error (one line, naming the option)."""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"knock-async {__version__}"
    assert main(["bulk-update", "read", "--older-than", "2024-01-01"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "argument --older-than" in err
    assert main([]) == 2


def test_json_is_not_listed_as_a_connection_option() -> None:
    """`--json` is about output: `bulk-update --help` lists it with the general options, and
    the connection group holds only where requests go and with which key."""
    from knock_async.cli._args import build_parser

    parser = build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = subcommands.choices["bulk-update"].format_help()
    connection = text.split("\nconnection:\n", 1)[1].split("\n\n", 1)[0]
    assert "--base-url" in connection
    assert "--json" not in connection
    assert "--json" in text


def _modules_loaded(code: str, env: dict[str, str] | None = None) -> list[str]:
    """Run ``code`` in a fresh interpreter, then report which of aiohttp.web and the emulator
    it had imported (the ``knock_async.testing`` package itself imports nothing until asked)."""
    emulator = ("aiohttp.web", "knock_async.testing._emulator", "knock_async.testing._app")
    check = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps([m for m in {emulator!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return loaded


@pytest.mark.subprocess
def test_the_parser_and_help_do_not_import_the_emulator() -> None:
    """Building the CLI's parser and printing `--help` (the top level's and `emulator`'s) load
    neither aiohttp.web nor the emulator: the emulator's options are importable alone."""
    code = (
        "import contextlib, io\n"
        "from knock_async.cli._args import build_parser, parse_args\n"
        "build_parser()\n"
        "for argv in (['--help'], ['emulator', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        parse_args(argv)"
    )
    assert _modules_loaded(code) == []


@pytest.mark.subprocess
def test_status_and_bulk_update_do_not_import_the_emulator(emulator: EmulatorThread) -> None:
    """`status` and `bulk-update` run to exit 0 without importing aiohttp.web or the
    emulator package (only `emulator` and `demo` need them)."""
    channel = emulator.channel(20)
    operation_id = emulator.start_operation(channel, "seen")
    code = (
        "from knock_async.cli import main\n"
        f"assert main(['status', '{operation_id}', '--json']) == 0\n"
        f"assert main(['bulk-update', 'read', '{channel}', '--json']) == 0"
    )
    assert _modules_loaded(code, cli_env(emulator.base_url)) == []
