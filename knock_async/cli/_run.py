"""What every command shares: the key and the client, logs with secrets redacted, Ctrl-C,
following a stream of the library's events into the display, and the end of a run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from .._client import KnockClient
from .._fanout import FanOutEvent, FanOutTotals
from .._follow import PollPolicy
from .._wrap import command_lines, prose, terminal_width
from ._args import PROG, UsageError
from ._display import make_display
from ._outcome import NO_TOTALS, Report, error_lines, overall, plural
from ._outcome import outcome as ended
from ._plan import Connection, read_text

if TYPE_CHECKING:
    from ..redis import RedisRateLimiter

__all__ = ["Redactor", "Run", "load_api_key", "logging_to_stderr", "make_client"]


# -- secrets and logs ------------------------------------------------------------------------


class Redactor(logging.Filter):
    """Replaces known secrets in log records and in text (tracebacks) by ``[REDACTED]``.

    The library never logs the key; this is the belt to its braces.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: list[str] = []

    def add(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets.append(secret)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            value = value.replace(secret, "[REDACTED]")
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self.text(record.getMessage())
            record.args = None
        return True


@contextlib.contextmanager
def logging_to_stderr(*, debug: bool, redactor: Redactor) -> Iterator[None]:
    """``knock_async`` log lines on stderr while inside: warnings always, the request log with
    ``--debug``. The logger's previous set-up is restored after (``main`` may run in-process)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(redactor)
    if debug:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    logger = logging.getLogger("knock_async")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:], level, logger.propagate = saved
        logger.setLevel(level)


def print_traceback(error: BaseException, redactor: Redactor) -> None:
    sys.stderr.write(redactor.text("".join(traceback.format_exception(error))))


# -- the key and the client ------------------------------------------------------------------


def load_api_key(connection: Connection) -> str:
    """From ``--api-key-file`` (``-``: stdin) or ``KNOCK_API_KEY``, stripped. Never echoed."""
    path = connection.api_key_file
    if path is None:
        key = os.environ.get("KNOCK_API_KEY", "").strip()
        if not key:
            raise UsageError(
                "no API key: set KNOCK_API_KEY or pass --api-key-file PATH "
                "(a key is never taken on the command line, where `ps` shows it)"
            )
        return key
    key = read_text("--api-key-file", path, first_line=True).strip()
    if not key:
        raise UsageError(f"--api-key-file {path} is empty")
    return key


@contextlib.asynccontextmanager
async def make_client(connection: Connection, redactor: Redactor) -> AsyncIterator[KnockClient]:
    """A client for ``connection``, its key loaded (and known to ``redactor``), pacing on the
    Redis limiter shared by every run on the environment if there is one (closed after)."""
    key = load_api_key(connection)
    redactor.add(key)
    interval = connection.poll_interval
    # Without --poll-interval the client's default policy, the one the library documents.
    poll = None
    if interval is not None:
        poll = PollPolicy(
            initial_delay=interval,
            max_delay=max(30.0, interval),
            max_eta_delay=max(300.0, interval),
        )
    async with contextlib.AsyncExitStack() as stack:
        pacing: dict[str, Any] = {}
        if connection.redis_url is not None:
            limiter = await _shared_limiter(connection, key)
            stack.push_async_callback(limiter.aclose)
            pacing["rate_limits"] = limiter
        client = KnockClient(
            api_key=key,
            base_url=connection.base_url,
            branch=connection.branch,
            allow_insecure_http=connection.allow_insecure_http,
            poll=poll,
            **pacing,
        )
        yield await stack.enter_async_context(client)


async def _shared_limiter(connection: Connection, key: str) -> RedisRateLimiter:
    """The Redis limiter of the run's Knock environment, checked: a Redis that does not answer
    is a usage error before anything is sent."""
    from ..redis import RedisLimiterError, RedisRateLimiter, environment_key_prefix

    assert connection.redis_url is not None
    limiter = RedisRateLimiter.from_url(
        connection.redis_url,
        # A hash of the base URL and the key: every run on one environment shares the budget,
        # and Redis never sees the key.
        key_prefix=environment_key_prefix(key, base_url=connection.base_url),
    )
    try:
        await limiter.check()
    except RedisLimiterError as exc:
        await limiter.aclose()
        raise UsageError(f"{connection.redis_source}: {exc}") from None
    return limiter


# -- a run -----------------------------------------------------------------------------------


class Run:
    """One command's run: the latest event per key and the latest totals, fed to the display as
    they come; ``finish`` prints the end (summary, errors, how to resume)."""

    def __init__(
        self,
        keys: list[str],
        *,
        json: bool,
        redactor: Redactor,
        debug: bool,
        base_url: str,
        channels: bool = True,
    ) -> None:
        self.keys = keys
        self.display = make_display(json_lines=json, channels=channels)
        self.channels = channels
        self.latest: dict[str, FanOutEvent] = {}
        self.totals: FanOutTotals = attrs.evolve(NO_TOTALS, channels=len(keys))
        self.interrupted = False
        self._redactor, self._debug, self._base_url = redactor, debug, base_url
        self._started = time.monotonic()

    async def follow(self, events: AsyncIterable[FanOutEvent], *, until_submitted: bool) -> None:
        """Show ``events`` until they end, Ctrl-C (``interrupted``) or, with
        ``until_submitted``, until every channel has its operation or its error."""
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def on_sigint() -> None:
            self.interrupted = True
            task.cancel()

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        stream = aiter(events)
        try:
            async for event in stream:
                self.latest[event.channel_id] = event
                self.totals = event.totals
                self.display.update(event)
                # A channel's first event is its submission or its error.
                if until_submitted and len(self.latest) == len(self.keys):
                    return
        except asyncio.CancelledError:
            if not self.interrupted:
                raise
            task.uncancel()
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGINT)
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
            self.display.stop()

    def finish(
        self, command: str, action: str | None, *, outcome: str | None = None, **details: Any
    ) -> int:
        """Print the summary (stdout), then errors and how to resume (stderr); the exit code.
        ``outcome`` defaults to the worst one seen; ``details`` are the demo's ``Report``
        fields."""
        if self.interrupted:
            outcome = "interrupted"
        elif outcome is None:
            outcome = overall(ended(self.latest.get(key)) for key in self.keys)
        report = Report(
            command=command,
            action=action,
            outcome=outcome,
            keys=tuple(self.keys),
            latest=dict(self.latest),
            totals=self.totals,
            elapsed=time.monotonic() - self._started,
            channels=self.channels,
            **details,
        )
        self.display.stop()
        self.display.summary(report)
        sys.stdout.flush()
        err, redactor = sys.stderr, self._redactor
        width = terminal_width(err)
        for line in error_lines(report, base_url=self._base_url):
            print(prose(redactor.text(line), width), file=err)
        if self._debug:
            for event in report.latest.values():
                if event.error is not None:
                    print_traceback(event.error, redactor)
        if report.outcome == "interrupted":
            _interrupted(report, err, width)
        err.flush()
        return int(report.code)


def _interrupted(report: Report, err: TextIO, width: int | None) -> None:
    """What Ctrl-C left behind, on stderr: wrapped between words on a terminal, each resume
    command on its own line, whole."""
    if not report.resumable:  # the demo: its emulator, and its operations, end with it
        print(f"{PROG}: interrupted", file=err)
        return
    lines = [
        f"{PROG}: interrupted: stopped following; operations already started go on "
        "server-side (Ctrl-C does not cancel them)."
    ]
    if report.resume:
        lines.append("Resume following with:")
        lines += [f"  {command}" for command in report.resume]
    # Channels with no operation and no error: never sent, or no answer yet.
    unsent = [key for key in report.keys if report.channels and key not in report.latest]
    if unsent:
        shown = " ".join(unsent[:10])
        more = f" and {len(unsent) - 10} more" if len(unsent) > 10 else ""
        lines.append(
            f"{plural(len(unsent), 'channel')} got no operation id (not sent, or "
            f"interrupted while sending, so an update may have started): {shown}{more}"
        )
    for line in lines:
        texts = command_lines(line, width) if line.startswith("  ") else [prose(line, width)]
        print("\n".join(texts), file=err)
