"""Stoplight Prism mocking a spec on a free loopback port, and a recorder in front of it.

``PrismMock`` runs ``prism mock --errors`` on a spec file: a request that breaks the spec is
answered 422 with the violations (``validation``), a warning rides on the ``sl-violations``
header. ``Recorder`` is an aiohttp app that forwards every request to Prism unchanged and keeps
what was sent (method, raw target, body) and what Prism said of it (status, violations), which
``KnockClient`` itself never exposes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import attrs
from aiohttp import web
from yarl import URL

from tests.redis._server import free_port

__all__ = ["PRISM_VERSION", "Exchange", "PrismMock", "Recorder", "find_prism", "prism_missing"]

# The newest release that runs on Node 18 and 20 (5.15 and later want Node 24). .ci/run reads
# this line to install the same one.
PRISM_VERSION = "5.14.2"

ROOT = Path(__file__).resolve().parents[2]
# Where .ci/run installs it (git-ignored): `npm install --prefix .ci/.prism ...`.
CI_PRISM = ROOT / ".ci" / ".prism" / "node_modules" / ".bin" / "prism"
INSTALL = f"npm install --prefix .ci/.prism --ignore-scripts @stoplight/prism-cli@{PRISM_VERSION}"


def find_prism() -> str | None:
    """The ``prism`` to run: ``$KNOCK_ASYNC_PRISM``, .ci/run's copy, or one on PATH."""
    chosen = os.environ.get("KNOCK_ASYNC_PRISM")
    if chosen:
        return chosen
    if CI_PRISM.exists():
        return str(CI_PRISM)
    return shutil.which("prism")


def prism_missing() -> str | None:
    """Why Prism cannot run here, or ``None`` if it can."""
    if find_prism() is None:
        return (
            f"Stoplight Prism is not installed: from the repository's root, with Node >= 18, "
            f"run `{INSTALL}` (CI's .ci/run does)"
        )
    return None


# Straight to loopback, whatever HTTP_PROXY says.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PrismMock:
    """``prism mock --errors <spec>`` on ``127.0.0.1:port``, from ``start()`` to ``stop()``."""

    def __init__(self, spec: Path, log: Path) -> None:
        self.spec = spec
        self.log = log
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: float = 60.0) -> None:
        """Launch Prism and return once it answers HTTP."""
        prism = find_prism()
        if prism is None:
            raise RuntimeError(prism_missing())
        command = [prism, "mock", "--errors", "-h", "127.0.0.1", "-p", str(self.port)]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [*command, str(self.spec)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + wait
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Prism did not start on {self.spec.name}:\n{self.output()}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with _DIRECT.open(f"{self.url}/", timeout=0.5):
                return True
        except urllib.error.HTTPError:
            return True  # Prism's 404 for a path the spec lacks: it is up
        except OSError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@attrs.frozen
class Exchange:
    """One request as it reached Prism, and Prism's verdict on it."""

    method: str
    target: str  # the raw path and query string, as sent
    body: bytes
    status: int
    violations: tuple[str, ...]  # "<location>: <message>", from the body and the header

    def describe(self) -> str:
        shown = self.body.decode(errors="replace")[:600]
        return f"{self.method} {self.target} {shown} -> {self.status} {list(self.violations)}"


def _violations(status: int, header: str | None, body: bytes) -> tuple[str, ...]:
    found: list[dict[str, object]] = []
    if header:
        found.extend(json.loads(header))
    if status == 422:
        problem = json.loads(body)
        found.extend(problem.get("validation", []))
    out = []
    for item in found:
        location = item.get("location") or item.get("path") or []
        assert isinstance(location, list)
        out.append(f"{'.'.join(map(str, location))}: {item.get('message')}")
    return tuple(out)


_DROPPED = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class Recorder:
    """An aiohttp app forwarding each request to ``upstream`` as received; ``exchanges``
    holds them in order."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.exchanges: list[Exchange] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._forward)
        self.app.cleanup_ctx.append(self._session)
        self._http: aiohttp.ClientSession | None = None

    async def _session(self, app: web.Application) -> AsyncIterator[None]:
        del app
        async with aiohttp.ClientSession(auto_decompress=True) as http:
            self._http = http
            yield
        self._http = None

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
        url = URL(self.upstream + request.raw_path, encoded=True)
        async with self._http.request(
            request.method, url, data=body or None, headers=headers
        ) as answer:
            payload = await answer.read()
            status, content_type = answer.status, answer.content_type
            header = answer.headers.get("sl-violations")
        self.exchanges.append(
            Exchange(
                request.method,
                request.raw_path,
                body,
                status,
                _violations(status, header, payload),
            )
        )
        return web.Response(status=status, body=payload, content_type=content_type)
