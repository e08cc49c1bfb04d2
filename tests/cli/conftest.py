"""Fixtures for the command line tests (helpers in ``_clitools``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli._clitools import EmulatorThread


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorThread]:
    """A fast emulator (10,000 rows/s) shared by the tests; each test makes its channels."""
    thread = EmulatorThread()
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture(scope="session")
def slow_emulator() -> Iterator[EmulatorThread]:
    """An emulator processing 400 rows/s in batches of 40: progress stays visible a while."""
    thread = EmulatorThread(rows_per_second=400.0, batch_size=40)
    thread.start()
    yield thread
    thread.stop()
