"""What every command shares: the key and the client, logs with secrets redacted, Ctrl-C,
following a library stream into the display, and the end of a run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from .._client import KnockClient
from .._fanout import FanOut, FanOutEvent, FanOutSummary, Outcome
from .._progress import Progress
from ._args import PROG, ExitCode, UsageError
from ._display import Lines, make_display
from ._outcome import Report, error_lines, name
from ._plan import Connection, read_text
from ._wrap import for_people, terminal_width

__all__ = ["Redactor", "Run", "logging_to_stderr", "make_client"]


class Redactor(logging.Filter):
    """Known secrets in log records and text made ``[REDACTED]``: a belt to the library's braces."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, "[REDACTED]")
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg, record.args = self.text(record.getMessage()), None
        return True

    def traceback(self, error: BaseException) -> None:
        sys.stderr.write(self.text("".join(traceback.format_exception(error))))


@contextlib.contextmanager
def logging_to_stderr(*, debug: bool, redactor: Redactor) -> Iterator[None]:
    """``knock_async`` log lines on stderr while inside: warnings always, the request log with
    ``--debug``. The logger's previous set-up is restored after (``main`` may run in-process)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(redactor)
    form = "%(asctime)s %(levelname)s %(name)s: " if debug else f"{PROG}: %(levelname)s: "
    handler.setFormatter(logging.Formatter(form + "%(message)s"))
    logger = logging.getLogger("knock_async")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers[:], logger.propagate = [handler], False
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    try:
        yield
    finally:
        logger.handlers[:], level, logger.propagate = saved
        logger.setLevel(level)


@contextlib.asynccontextmanager
async def make_client(connection: Connection, redactor: Redactor) -> AsyncIterator[KnockClient]:
    """A client for ``connection``, its key from ``--api-key-file`` (``-``: stdin) or
    ``KNOCK_API_KEY`` (known to ``redactor``), paced on the environment's Redis if given."""
    if (path := connection.api_key_file) is None:
        if not (key := os.environ.get("KNOCK_API_KEY", "").strip()):
            raise UsageError(
                "no API key: set KNOCK_API_KEY or pass --api-key-file PATH "
                "(a key is never taken on the command line, where `ps` shows it)"
            )
    elif not (key := read_text("--api-key-file", path, first_line=True).strip()):
        raise UsageError(f"--api-key-file {path} is empty")
    redactor.secrets.add(key)
    async with contextlib.AsyncExitStack() as stack:
        pacing: dict[str, Any] = {}
        if connection.redis_url is not None:
            from ..redis import RedisLimiterError, RedisRateLimiter, environment_key_prefix

            # Under a hash of base URL and key: one budget per environment, the key never seen.
            prefix = environment_key_prefix(key, base_url=connection.base_url)
            limiter = RedisRateLimiter.from_url(connection.redis_url, key_prefix=prefix)
            pacing["rate_limits"] = await stack.enter_async_context(contextlib.aclosing(limiter))
            try:
                await limiter.check()
            except RedisLimiterError as exc:  # a Redis that does not answer: nothing was sent
                raise UsageError(f"{connection.redis_source}: {exc}") from None
        client = KnockClient(api_key=key, **connection.client, **pacing)
        yield await stack.enter_async_context(client)


class Run:
    """One command's run: a library stream shown as it comes, Ctrl-C handled; then ``finish``."""

    def __init__(
        self, command: str, json: bool, redactor: Redactor, *, debug: bool, base_url: str
    ) -> None:
        self.command, self.base_url = command, base_url
        self.display = make_display(json_lines=json)
        self.progress: dict[str, Progress] = {}  # the latest snapshot of each operation
        self.summary: FanOutSummary | None = None
        self.interrupted = False
        self._debug, self._redactor = debug, redactor
        self._started = time.monotonic()

    async def follow(
        self, stream: FanOut, header: Mapping[str, Any], *, intro: Lines = (), rows: Lines = (),
        until: Callable[[FanOutEvent], bool] | None = None,
    ) -> FanOutSummary:  # fmt: skip
        """The stream's events shown until they end, Ctrl-C or ``until`` holds; its summary."""
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def on_sigint() -> None:
            if self.interrupted:  # a second Ctrl-C: stop at once, without the summary or cleanup
                with contextlib.suppress(Exception):  # (whose warnings would print at any point)
                    self.display.stop()
                    sys.stdout.flush()  # every line said so far, not a cut one
                    print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
                os._exit(int(ExitCode.INTERRUPTED))
            self.interrupted = True
            task.cancel()

        # Our own handler, not asyncio.run's: it also works where SIGINT was ignored at launch
        # (`cmd &` in a script), and only a Ctrl-C, no other cancellation, counts as one.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        self.display.start(header, intro, rows)
        try:
            async for event in stream:
                if event.progress is not None and event.operation_id is not None:
                    self.progress[event.operation_id] = event.progress
                self.display.update(event)
                if until is not None and until(event):
                    break
        except asyncio.CancelledError:
            if not self.interrupted:
                raise
            task.uncancel()
        finally:
            # After a Ctrl-C it stays: a second one stops at once, not at a random bytecode.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                if not self.interrupted:
                    loop.remove_signal_handler(signal.SIGINT)
            # Stopped here, not by the GC, if the loop ends early: every POST sent is summed up.
            await stream.aclose()
            self.display.stop()
            self.summary = stream.summary()  # also when the stream raised: what it had sent
        return self.summary

    def finish(self, action: str | None, *, outcome: str | None = None, **details: Any) -> int:
        """Print the summary (stdout), then errors and how to resume (stderr); the exit code.
        The outcome is the library's (the worst), or ``outcome`` when that is no worse than
        running operations (stopped on purpose, the demo's failed check); ``details``: Report's."""
        summary = self.summary
        assert summary is not None
        if self.interrupted:
            outcome = "interrupted"
        elif outcome is None or summary.outcome not in _NOT_WORSE:
            outcome = name(summary.outcome) or "completed"
        report = Report(
            command=self.command,
            action=action,
            outcome=outcome,
            summary=summary,
            progress=self.progress,
            elapsed=time.monotonic() - self._started,
            **details,
        )
        self.display.summary(report)
        sys.stdout.flush()
        if self._debug:
            for error in (r.error for r in report.results if r.error is not None):
                self._redactor.traceback(error)
        width = terminal_width(sys.stderr)
        for line in error_lines(report, base_url=self.base_url):
            print("\n".join(for_people(self._redactor.text(line), width)), file=sys.stderr)
        sys.stderr.flush()
        return int(report.code)


_NOT_WORSE = (Outcome.COMPLETED, Outcome.PENDING, Outcome.RUNNING)
