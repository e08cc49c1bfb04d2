"""Shared machinery of the commands: the key and the client, Ctrl-C, following a stream of
events into the tracker and the display, and the end of a run (summary, stderr, exit code)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import attrs

from .._client import KnockClient
from .._errors import KnockError
from .._fanout import FanOut, FanOutEventKind
from .._models import BulkOperation
from .._polling import PollPolicy
from .._progress import Progress
from ._args import PROG, ExitCode, UsageError
from ._display import Display
from ._outcome import Summary, Tracker, error_lines, overall_outcome, resume_command

__all__ = [
    "Interrupt",
    "Redactor",
    "Update",
    "fanout_updates",
    "logging_to_stderr",
    "finish",
    "follow",
    "load_api_key",
    "make_client",
    "sigint_cancels",
]

Kind = FanOutEventKind


@attrs.frozen
class Update:
    """One thing that happened to one row (the shape of a ``FanOutEvent``)."""

    kind: FanOutEventKind
    key: str
    progress: Progress | None = None
    error: KnockError | None = None
    operation: BulkOperation | None = None


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
    text = "".join(traceback.format_exception(error))
    sys.stderr.write(redactor.text(text))


# -- the key and the client ------------------------------------------------------------------


def load_api_key(args: argparse.Namespace) -> str:
    """From ``--api-key-file`` (``-``: stdin) or ``KNOCK_API_KEY``, stripped. Never echoed."""
    path: str | None = args.api_key_file
    if path is not None:
        if path == "-":
            if getattr(args, "channels_file", None) == "-":
                raise UsageError("--api-key-file and --channels-file cannot both read stdin")
            key = sys.stdin.readline().strip()
        else:
            try:
                with open(path, encoding="utf-8") as file:
                    key = file.read().strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise UsageError(f"cannot read --api-key-file {path}: {reason}") from None
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


def make_client(args: argparse.Namespace, key: str) -> KnockClient:
    base_url = args.base_url or os.environ.get("KNOCK_BASE_URL") or None
    interval: float = args.poll_interval
    poll = PollPolicy(initial_delay=interval, max_delay=max(30.0, interval))
    try:
        return KnockClient(api_key=key, base_url=base_url, branch=args.branch, poll=poll)
    except ValueError as exc:  # a bad base URL or branch; the message never holds the key
        raise UsageError(str(exc)) from None


# -- Ctrl-C ----------------------------------------------------------------------------------


class Interrupt:
    """Set by the SIGINT handler: the task was cancelled because of Ctrl-C."""

    def __init__(self) -> None:
        self.count = 0

    @property
    def fired(self) -> bool:
        return self.count > 0


@contextlib.contextmanager
def sigint_cancels() -> Iterator[Interrupt]:
    """While inside, Ctrl-C cancels the current task (stopping the poll at its next await)
    and records it, so the command can report and exit 130 instead of a traceback."""
    interrupt = Interrupt()
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert task is not None

    def on_sigint() -> None:
        interrupt.count += 1
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - Windows
        yield interrupt
        return
    try:
        yield interrupt
    finally:
        loop.remove_signal_handler(signal.SIGINT)


# -- following -------------------------------------------------------------------------------


async def fanout_updates(fanout: FanOut) -> AsyncGenerator[Update, None]:
    async for event in fanout:
        yield Update(event.kind, event.channel_id, event.progress, event.error)


async def follow(
    updates: AsyncGenerator[Update, None],
    tracker: Tracker,
    display: Display,
    interrupt: Interrupt,
    *,
    stop_when_submitted: bool = False,
) -> bool:
    """Feed ``updates`` to the tracker and the display; ``True`` if Ctrl-C stopped it.

    ``stop_when_submitted`` ends as soon as every row has an operation or an error.
    """
    try:
        async with contextlib.aclosing(updates):
            async for update in updates:
                row = tracker.apply(
                    update.kind, update.key, update.progress, update.error, update.operation
                )
                display.update(update.kind, row, tracker.totals())
                if stop_when_submitted and tracker.all_submitted():
                    return False
    except asyncio.CancelledError:
        if not interrupt.fired:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return True
    return False


def finish(
    *,
    command: str,
    action: str | None,
    tracker: Tracker,
    display: Display,
    interrupted: bool,
    debug: bool,
    redactor: Redactor,
    code: ExitCode | None = None,
    outcome: str | None = None,
    what: str = "channel",
    summary_extra: dict[str, Any] | None = None,
    resumable: bool = True,
) -> int:
    """Print the summary (stdout) and the errors and resume hints (stderr); the exit code."""
    display.stop()
    if code is None:
        code = ExitCode.INTERRUPTED if interrupted else tracker.exit_code()
    rows_to_resume = tracker.resumable() if resumable else []
    resume = [resume_command(row.operation_id or "") for row in rows_to_resume]
    summary = Summary(
        command=command,
        action=action,
        outcome=outcome or overall_outcome(code),
        exit_code=int(code),
        totals=tracker.totals(),
        rows=list(tracker.rows.values()),
        resume=resume,
    )
    if summary_extra:
        summary.columns = summary_extra.get("columns", [])
        summary.values = summary_extra.get("values", {})
        summary.notes = summary_extra.get("notes", [])
        summary.extra = summary_extra.get("extra", {})
    display.summary(summary)
    sys.stdout.flush()
    rows = list(tracker.rows.values())
    for line in error_lines(rows, what=what):
        print(redactor.text(line), file=sys.stderr)
    if debug:
        for row in rows:
            if row.error is not None:
                print_traceback(row.error, redactor)
    if interrupted:
        _report_interrupt(tracker, resume, resumable=resumable)
    sys.stderr.flush()
    return int(code)


def _report_interrupt(tracker: Tracker, resume: list[str], *, resumable: bool) -> None:
    err = sys.stderr
    if not resumable:  # the demo: its emulator, and its operations, end with this process
        print(f"{PROG}: interrupted", file=err)
        return
    print(
        f"{PROG}: interrupted: stopped following; operations already started go on "
        "server-side (Ctrl-C does not cancel them).",
        file=err,
    )
    if resume:
        print("Resume following with:", file=err)
        for command in resume:
            print(f"  {command}", file=err)
    unsent = tracker.unsubmitted()
    if unsent:
        shown = " ".join(row.label for row in unsent[:10])
        more = f" and {len(unsent) - 10} more" if len(unsent) > 10 else ""
        print(
            f"{len(unsent)} channel(s) got no operation id (not sent, or interrupted while "
            f"sending, so an update may have started): {shown}{more}",
            file=err,
        )
