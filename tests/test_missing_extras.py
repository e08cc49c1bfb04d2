"""Without the ``redis`` extra installed, ``knock_async.redis`` and the command line's
``--redis-url`` say which extra to install. Run in fresh interpreters where redis-py cannot
be imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Makes every import of redis-py fail, as if it were not installed.
BLOCK = "import sys; sys.modules['redis'] = None\n"


def run_python(code: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.mark.subprocess
def test_importing_the_redis_module_without_redis_py_names_the_extra() -> None:
    """``import knock_async.redis`` without redis-py raises an ImportError that says to install
    the ``redis`` extra."""
    result = run_python(
        "try:\n"
        "    import knock_async.redis\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('imported')\n"
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'knock-async[redis]'" in result.stdout


@pytest.mark.subprocess
def test_the_cli_redis_url_without_redis_py_is_a_usage_error_naming_the_extra() -> None:
    """``knock-async status --redis-url ...`` without redis-py exits 2 (usage) with one line
    naming the extra, before anything is sent (the base URL points at a closed port)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "KNOCK_API_KEY": "sk_test_missing_extra",
        "KNOCK_BASE_URL": "http://127.0.0.1:9",
    }
    code = (
        "from knock_async.cli import main\n"
        "raise SystemExit(main(['status', '00000000-0000-0000-0000-000000000000', "
        "'--redis-url', 'redis://127.0.0.1:9/0']))\n"
    )
    result = run_python(code, env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "pip install 'knock-async[redis]'" in result.stderr
    assert "sk_test_missing_extra" not in result.stdout + result.stderr
