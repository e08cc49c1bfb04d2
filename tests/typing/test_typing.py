"""A type checker catches a misspelt action or filter value, and accepts the enums and literals.

mypy (strict, the project's configuration) runs over ``cases/literals.py``; its errors must be
exactly the ones that file's ``# E:`` comments expect, line for line.
"""

from __future__ import annotations

import enum
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import knock_async as ka

ROOT = Path(__file__).parent.parent.parent
CASES = Path(__file__).parent / "cases" / "literals.py"
EXPECTED = re.compile(r"#\s*E:\s*([a-z-]+)\s+(.+?)\s*$")
ERROR = re.compile(r"^[^:]+:(?P<line>\d+): error: (?P<message>.*)  \[(?P<code>[a-z-]+)\]$")


def expected_errors() -> dict[int, tuple[str, str]]:
    """Line number -> (error code, text the message must hold), from the ``# E:`` comments."""
    expected = {}
    for number, line in enumerate(CASES.read_text().splitlines(), start=1):
        match = EXPECTED.search(line)
        if match:
            expected[number] = (match[1], match[2])
    return expected


def test_cases_file_expects_errors() -> None:
    """The cases file holds both accepted calls and several expected rejections."""
    expected = expected_errors()
    assert len(expected) >= 8
    assert "async def accepted" in CASES.read_text()


@pytest.mark.subprocess
def test_mypy_reports_exactly_the_expected_errors() -> None:
    """mypy flags each ``# E:`` line with the expected code and message, and nothing else."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--no-error-summary", "--no-pretty", str(CASES.relative_to(ROOT))],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    found: dict[int, tuple[str, str]] = {}
    for line in result.stdout.splitlines():
        match = ERROR.match(line)
        if match:
            assert int(match["line"]) not in found, f"two errors on one line: {line}"
            found[int(match["line"])] = (match["code"], match["message"])
        else:
            assert ": note: " in line, f"unexpected mypy output: {line}"
    expected = expected_errors()
    assert sorted(found) == sorted(expected), result.stdout
    for number, (code, fragment) in expected.items():
        found_code, message = found[number]
        assert found_code == code, f"line {number}: {message}"
        assert fragment in message, f"line {number}: {message}"


@pytest.mark.parametrize(
    ("literal", "enum_type"),
    [
        (ka.BulkActionValue, ka.BulkAction),
        (ka.ArchivedFilterValue, ka.ArchivedFilter),
        (ka.DeliveryStatusValue, ka.DeliveryStatus),
        (ka.EngagementStatusValue, ka.EngagementStatus),
    ],
)
def test_literal_lists_the_enum_values(literal: object, enum_type: type[enum.StrEnum]) -> None:
    """Each literal type admits exactly its enum's values, in the same order."""
    assert typing.get_args(literal) == tuple(member.value for member in enum_type)
