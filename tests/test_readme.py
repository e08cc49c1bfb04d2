"""Every Python code block in README.md runs as written.

Blocks holding ``def test_`` are run by pytest (they use the ``knock_emulator`` fixture), the
others as scripts, each in a fresh interpreter with warnings as errors. Blocks reading
``REDIS_URL`` get a ``redis-server`` of their own (see ``tests/redis/conftest.py``).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._support import NEW_PROJECT_PYTEST
from tests.redis._server import RedisServer, redis_server_missing

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_python_blocks() -> None:
    """The README carries runnable examples (the collection below is not empty)."""
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
@pytest.mark.subprocess
def test_block_runs(code: str, tmp_path: Path) -> None:
    """The block exits 0 with nothing on stderr but what pytest itself prints."""
    if "def test_" in code:
        path = tmp_path / "test_readme_example.py"
        path.write_text(code)
        command = [
            sys.executable, "-m", "pytest", "-q", *NEW_PROJECT_PYTEST,
            "-W", "error", "-o", "asyncio_mode=auto",
            "-o", "asyncio_default_fixture_loop_scope=function", str(path),
        ]  # fmt: skip
    else:
        path = tmp_path / "example.py"
        path.write_text(code)
        command = [sys.executable, "-W", "error", str(path)]
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if "REDIS_URL" in code:
            missing = redis_server_missing()
            if missing is not None:
                if os.environ.get("CI", "").lower() == "true":
                    pytest.fail(f"CI must run the Redis example, but {missing}", pytrace=False)
                pytest.skip(missing)
            env["REDIS_URL"] = stack.enter_context(RedisServer()).url
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False, env=env
        )
    assert result.returncode == 0, result.stdout + result.stderr
    if "def test_" not in code:
        assert result.stderr == ""
        assert result.stdout.strip(), "every example prints what it did"
