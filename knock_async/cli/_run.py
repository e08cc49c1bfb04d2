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
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from .._client import KnockClient
from .._fanout import FanOutEvent, FanOutTotals
from .._follow import PollPolicy
from ._args import PROG, UsageError
from ._display import make_display
from ._outcome import NO_TOTALS, Report, error_lines, overall, plural
from ._outcome import outcome as ended
from ._plan import Connection, read_text
from ._wrap import for_people, prose, terminal_width

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
    form = "%(asctime)s %(levelname)s %(name)s: " if debug else f"{PROG}: %(levelname)s: "
    handler.setFormatter(logging.Formatter(form + "%(message)s"))
    logger = logging.getLogger("knock_async")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
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
    if path is not None:
        key = read_text("--api-key-file", path, first_line=True).strip()
        if not key:
            raise UsageError(f"--api-key-file {path} is empty")
        return key
    key = os.environ.get("KNOCK_API_KEY", "").strip()
    if not key:
        raise UsageError(
            "no API key: set KNOCK_API_KEY or pass --api-key-file PATH "
            "(a key is never taken on the command line, where `ps` shows it)"
        )
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
            pacing["rate_limits"] = await stack.enter_async_context(
                _shared_limiter(connection, key)
            )
        client = KnockClient(
            api_key=key,
            base_url=connection.base_url,
            branch=connection.branch,
            allow_insecure_http=connection.allow_insecure_http,
            poll=poll,
            **pacing,
        )
        yield await stack.enter_async_context(client)


@contextlib.asynccontextmanager
async def _shared_limiter(connection: Connection, key: str) -> AsyncIterator[RedisRateLimiter]:
    """The Redis limiter of the run's Knock environment, checked: a Redis that does not answer
    is a usage error before anything is sent."""
    from ..redis import RedisLimiterError, RedisRateLimiter, environment_key_prefix

    assert connection.redis_url is not None
    # Under a hash of the base URL and the key: every run on one environment shares the budget,
    # and Redis never sees the key.
    prefix = environment_key_prefix(key, base_url=connection.base_url)
    async with contextlib.aclosing(
        RedisRateLimiter.from_url(connection.redis_url, key_prefix=prefix)
    ) as limiter:
        try:
            await limiter.check()
        except RedisLimiterError as exc:
            raise UsageError(f"{connection.redis_source}: {exc}") from None
        yield limiter


# -- a run -----------------------------------------------------------------------------------


class Run:
    """One command's run: the latest event per key and the latest totals, fed to the display as
    they come; ``finish`` prints the end (summary, errors, how to resume). Its keys are channel
    ids, except for ``status``: the operation id it follows."""

    def __init__(
        self,
        command: str,
        keys: list[str],
        *,
        json: bool,
        debug: bool,
        redactor: Redactor,
        base_url: str,
    ) -> None:
        self.command, self.keys, self.base_url = command, keys, base_url
        self.display = make_display(json_lines=json, channels=command != "status")
        self.latest: dict[str, FanOutEvent] = {}
        self.totals: FanOutTotals = attrs.evolve(NO_TOTALS, channels=len(keys))
        self.interrupted = False
        self._debug, self._redactor = debug, redactor
        self._started = time.monotonic()

    async def follow(
        self,
        events: AsyncIterable[FanOutEvent],
        header: dict[str, Any],
        *,
        intro: Iterable[str] = (),
        until_submitted: bool = False,
    ) -> None:
        """Start the display with ``header`` and ``intro``, then show ``events`` until they end,
        Ctrl-C (``interrupted``) or, with ``until_submitted``, until every channel has its
        operation or its error."""
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def on_sigint() -> None:
            if self.interrupted:  # a second Ctrl-C: stop at once, without the summary
                # Connections are abandoned on purpose (the OS closes them): their "unclosed
                # transport" warnings at exit would only print a traceback after the last line.
                warnings.simplefilter("ignore", ResourceWarning)
                raise KeyboardInterrupt
            self.interrupted = True
            task.cancel()

        # Our own handler, not asyncio.run's: it also works where SIGINT was ignored at launch
        # (`cmd &` in a script), and only a Ctrl-C, no other cancellation, counts as one.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        self.display.start(self.keys, header, intro)
        stream = aiter(events)
        try:
            async for event in stream:
                self.latest[event.channel_id or ""] = event
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
            # Closed here, not left to the garbage collector, when the loop above ends early
            # (a return, or the display raising): the poller's generator stops its requests.
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
            self.display.stop()

    def finish(self, action: str | None, *, outcome: str | None = None, **details: Any) -> int:
        """Print the summary (stdout), then errors and how to resume (stderr); the exit code.
        ``outcome`` defaults to the worst one seen; ``details`` are the demo's ``Report``
        fields."""
        if self.interrupted:
            outcome = "interrupted"
        elif outcome is None:
            outcome = overall(ended(self.latest.get(key)) for key in self.keys)
        report = Report(
            command=self.command,
            action=action,
            outcome=outcome,
            keys=tuple(self.keys),
            latest=dict(self.latest),
            totals=self.totals,
            elapsed=time.monotonic() - self._started,
            **details,
        )
        self.display.stop()
        self.display.summary(report)
        sys.stdout.flush()
        width = terminal_width(sys.stderr)
        for line in error_lines(report, base_url=self.base_url):
            print(prose(self._redactor.text(line), width), file=sys.stderr)
        if self._debug:
            for event in report.latest.values():
                if event.error is not None:
                    print_traceback(event.error, self._redactor)
        if report.outcome == "interrupted":
            for line in _interrupted(report):
                print("\n".join(for_people(line, width)), file=sys.stderr)
        sys.stderr.flush()
        return int(report.code)


def _interrupted(report: Report) -> list[str]:
    """What Ctrl-C left behind: each resume command on its own line, whole."""
    if report.command == "demo":  # its emulator, and its operations, end with it
        return [f"{PROG}: interrupted"]
    lines = [
        f"{PROG}: interrupted: stopped following; operations already started go on "
        "server-side (Ctrl-C does not cancel them)."
    ]
    if report.resume:
        lines += ["Resume following with:", *(f"  {command}" for command in report.resume)]
    # Channels with no operation and no error: never sent, or no answer yet.
    unsent = [key for key in report.keys if report.channels and key not in report.latest]
    if unsent:
        more = f" and {len(unsent) - 10} more" if len(unsent) > 10 else ""
        lines.append(
            f"{plural(len(unsent), 'channel')} got no operation id (not sent, or "
            f"interrupted while sending, so an update may have started): "
            f"{' '.join(unsent[:10])}{more}"
        )
    return lines
