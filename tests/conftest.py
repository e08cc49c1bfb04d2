"""Fixtures shared by the tests (defined in ``tests/_support.py``), and how many pytest-xdist
workers run them."""

import os

import pytest

from tests._support import broken_http, fake_knock, make_client, vtime
from tests.cli._clitools import Cli

__all__ = ["broken_http", "cli", "fake_knock", "make_client", "vtime"]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``knock-async`` run in this process (see ``tests.cli._clitools.Cli``)."""
    return Cli(monkeypatch)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Twice the usable CPUs, at least 4 (``-n auto``): many tests spend their time waiting on a
    subprocess, a server or a timer, and a worker costs only its start (about 4 s of CPU)."""
    del config
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(4, 2 * (cpus or 1))
