"""Fixtures for the command line tests (helpers in ``_clitools``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from knock_async.testing import ManualClock
from tests.cli._clitools import EmulatorThread


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorThread]:
    """A fast emulator (10,000 rows/s) shared by the tests; each test makes its channels."""
    thread = EmulatorThread()
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def manual_emulator() -> Iterator[EmulatorThread]:
    """An emulator on a ``ManualClock`` processing 100 rows/s in batches of 10, no queue
    delay: operations move only when the test calls ``advance``, so what a client sees
    between two advances is exact whatever the machine's load."""
    thread = EmulatorThread(
        clock=ManualClock(), rows_per_second=100.0, batch_size=10, queue_delay=0.0
    )
    thread.start()
    yield thread
    thread.stop()
