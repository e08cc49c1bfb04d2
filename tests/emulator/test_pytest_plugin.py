"""The knock_emulator fixture, registered through the pytest11 entry point."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from knock_async.testing import FastClock, KnockEmulator, ManualClock, SystemClock
from knock_async.testing._clock import fresh_clock
from tests._support import NEW_PROJECT_PYTEST

AUTH = {"Authorization": "Bearer sk_test_emulator"}


def test_plugin_is_registered_by_entry_point(pytestconfig: pytest.Config) -> None:
    """Installing knock-async registers the plugin as ``knock_async`` (pytest11), a module
    outside the ``knock_async`` package (importing that package imports aiohttp)."""
    plugin = pytestconfig.pluginmanager.get_plugin("knock_async")
    assert plugin is not None
    assert plugin.__name__ == "_knock_async_pytestplugin"


async def test_fixture_gives_a_running_emulator(knock_emulator: KnockEmulator) -> None:
    """Without a marker the fixture is a default emulator: running, real clock, sk_ keys."""
    assert isinstance(knock_emulator.clock, SystemClock)
    channel = knock_emulator.add_channel()
    knock_emulator.add_messages(channel, 3)
    async with aiohttp.ClientSession() as http:
        url = f"{knock_emulator.base_url}/v1/channels/{channel}/messages/bulk/seen"
        async with http.post(url, json={}, headers=AUTH) as response:
            assert response.status == 200


@pytest.mark.knock_emulator(clock=ManualClock(), rows_per_second=1, rate_limits=False)
async def test_marker_configures_the_fixture(knock_emulator: KnockEmulator) -> None:
    """``@pytest.mark.knock_emulator(...)`` passes its keyword arguments to the emulator."""
    assert isinstance(knock_emulator.clock, ManualClock)
    assert knock_emulator.settings.rows_per_second == 1


README = Path(__file__).resolve().parent.parent.parent / "README.md"


def readme_block(language: str, needle: str) -> str:
    """The README's first ``language`` code block containing ``needle``."""
    blocks: list[str] = re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)
    return next(block for block in blocks if needle in block)


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess of this environment (where knock-async is installed), in
    ``project``: its own rootdir, none of this repository's conftest, configuration or test
    plugins (``NEW_PROJECT_PYTEST``)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *NEW_PROJECT_PYTEST, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project,
        check=False,
    )


@pytest.mark.subprocess
def test_readme_example_runs_in_a_new_project(tmp_path: Path) -> None:
    """The README's pytest example, copied alone into a new project with the README's
    pyproject.toml, passes in pytest-asyncio's default strict mode with warnings as errors;
    with no configuration at all it passes too."""
    example = readme_block("python", "def test_archive_old_notifications")
    (tmp_path / "test_example.py").write_text(example)
    bare = run_pytest(tmp_path)
    assert bare.returncode == 0, bare.stdout + bare.stderr
    assert "1 passed" in bare.stdout
    (tmp_path / "pyproject.toml").write_text(readme_block("toml", "asyncio_default_fixture"))
    strict = run_pytest(tmp_path, "-W", "error")
    assert strict.returncode == 0, strict.stdout + strict.stderr
    assert "1 passed" in strict.stdout
    assert "asyncio_mode" not in (tmp_path / "pyproject.toml").read_text()


UNUSED_PLUGIN_TEST = """
import sys


def test_the_plugin_is_loaded_and_imported_nothing_heavy():
    assert "_knock_async_pytestplugin" in sys.modules
    assert "knock_async" not in sys.modules
    assert "aiohttp" not in sys.modules
"""


@pytest.mark.subprocess
def test_a_project_that_never_asks_for_the_fixture_imports_neither_knock_async_nor_aiohttp(
    tmp_path: Path,
) -> None:
    """Loaded at every pytest start, the plugin imports neither ``knock_async`` (so neither
    aiohttp nor the emulator): a project that never asks for the fixture pays nothing for it.
    (pytest-aiohttp, which imports aiohttp itself, is off: see ``NEW_PROJECT_PYTEST``.)"""
    (tmp_path / "test_unused.py").write_text(UNUSED_PLUGIN_TEST)
    (tmp_path / "pyproject.toml").write_text(readme_block("toml", "asyncio_default_fixture"))
    result = run_pytest(tmp_path, "-W", "error")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


@pytest.mark.subprocess
def test_without_the_testing_extra_the_fixture_says_which_extra_to_install(
    tmp_path: Path,
) -> None:
    """Without pytest-asyncio (the ``testing`` extra), a test asking for ``knock_emulator``
    errors with the pip command that installs the extra, not pytest's generic complaint about
    an async fixture without a plugin; a test that does not ask for it still passes.

    pytest-asyncio is made uninstalled by a stand-in package first on the path whose import
    fails as a missing one does, with the plugins that would import it turned off."""
    hidden = tmp_path / "hidden" / "pytest_asyncio"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pytest_asyncio'\", name='pytest_asyncio')\n"
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_wants_it.py").write_text(
        "def test_wants_it(knock_emulator):\n    pass\n\n\ndef test_other():\n    pass\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *NEW_PROJECT_PYTEST, "-p", "no:asyncio"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(hidden.parent)},
        check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pip install 'knock-async[testing]'" in result.stdout
    assert "1 passed, 1 error" in result.stdout


ISOLATION_TESTS = """
from datetime import UTC, datetime

import pytest

from knock_async.testing import FastClock, KnockEmulator, ManualClock

pytestmark = pytest.mark.knock_emulator(clock=ManualClock(), rate_limits=False)
START = datetime(2025, 1, 1, tzinfo=UTC)
SHARED_FAST = FastClock(speed=7)


def check_fresh(emu: KnockEmulator) -> None:
    assert emu.clock.now() == START
    assert emu.channels() == [] and emu.operations() == [] and emu.requests == []
    emu.add_messages(emu.add_channel(), 3)
    emu.advance(3600)


@pytest.mark.asyncio
@pytest.mark.parametrize("case", range(3))
async def test_parametrized(knock_emulator: KnockEmulator, case: int) -> None:
    check_fresh(knock_emulator)


@pytest.mark.asyncio
async def test_module_marker_a(knock_emulator: KnockEmulator) -> None:
    check_fresh(knock_emulator)


@pytest.mark.asyncio
async def test_module_marker_b(knock_emulator: KnockEmulator) -> None:
    check_fresh(knock_emulator)


@pytest.mark.asyncio
@pytest.mark.knock_emulator(clock=ManualClock, strict=True)
async def test_closest_marker_wins(knock_emulator: KnockEmulator) -> None:
    check_fresh(knock_emulator)
    assert knock_emulator._state.strict and knock_emulator._state.limiter is None


@pytest.mark.asyncio
@pytest.mark.parametrize("case", range(2))
@pytest.mark.knock_emulator(clock=SHARED_FAST)
async def test_fast_clock_copied(knock_emulator: KnockEmulator, case: int) -> None:
    assert knock_emulator.clock is not SHARED_FAST
    assert isinstance(knock_emulator.clock, FastClock) and knock_emulator.clock.speed == 7
    # Started for this test, after the module's clock: it has run for less time.
    assert knock_emulator.clock.monotonic() < SHARED_FAST.monotonic()


@pytest.mark.asyncio
@pytest.mark.knock_emulator(clock=lambda: ManualClock(datetime(2030, 1, 1, tzinfo=UTC)))
async def test_factory(knock_emulator: KnockEmulator) -> None:
    assert knock_emulator.clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
"""


@pytest.mark.subprocess
def test_every_test_gets_fresh_state_and_a_fresh_clock(tmp_path: Path) -> None:
    """A clock object on a parametrized test or a module-level pytestmark is copied per test:
    every case starts at the clock's start with an empty store; a class or factory is called
    per test; the closest marker wins per setting. Run in strict mode in a new project."""
    (tmp_path / "test_isolation.py").write_text(ISOLATION_TESTS)
    (tmp_path / "pyproject.toml").write_text(readme_block("toml", "asyncio_default_fixture"))
    result = run_pytest(tmp_path, "-W", "error")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 passed" in result.stdout


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (ManualClock, ManualClock),
        (ManualClock(), ManualClock),
        (FastClock(speed=3), FastClock),
        (SystemClock(), SystemClock),
        (lambda: ManualClock(), ManualClock),
    ],
)
def test_fresh_clock(value: object, kind: type) -> None:
    """fresh_clock calls a class or factory and copies a clock object's settings."""
    made = fresh_clock(value)
    assert type(made) is kind
    assert made is not value


def test_fresh_clock_copies_settings_not_time() -> None:
    """A ManualClock that has moved gives a new one at its start time, not where it is now."""
    start = datetime(2026, 5, 1, tzinfo=UTC)
    used = ManualClock(start)
    used.advance(100)
    assert fresh_clock(used).now() == start
    with pytest.raises(TypeError, match="not a Clock"):
        fresh_clock(lambda: 42)
    with pytest.raises(TypeError, match="clock must be"):
        fresh_clock(42)


@pytest.mark.knock_emulator(clock=ManualClock, rows_per_second=50.0, batch_size=10)
async def test_client_runs_on_the_emulators_clock(knock_emulator: KnockEmulator) -> None:
    """knock_emulator.client() polls on the emulator's ManualClock: a 200-row operation at 50
    rows/s (4 emulated seconds of processing, with backoff) finishes in no real waiting, and
    the emulated clock moved forward past the processing time."""
    channel = knock_emulator.add_channel()
    knock_emulator.add_messages(channel, 200)
    async with knock_emulator.client() as knock:
        op = await knock.channels.bulk.update_message_status(channel, "read")
        final = await knock.bulk_operations.poll(op)
    assert (final.status, final.success_count) == ("completed", 200)
    assert knock_emulator.clock.monotonic() >= 4.0
    assert all(m.read_at is not None for m in knock_emulator.messages(channel))


@pytest.mark.knock_emulator(api_keys=["pk_public", "sk_second", "sk_first"])
async def test_client_uses_an_accepted_secret_key(knock_emulator: KnockEmulator) -> None:
    """With api_keys set, client() picks a secret key the emulator accepts."""
    channel = knock_emulator.add_channel()
    async with knock_emulator.client(rate_limits=None) as knock:
        op = await knock.channels.bulk.update_message_status(channel, "read")
    assert op.id
