"""``FanOut``: one bulk update over many channels, paced, polled on one shared budget.

A single scheduler (the async iterator itself) keeps every operation it follows in a heap
ordered by when it is next due; at most ``concurrency`` requests are in flight at any time and
nothing else runs, so following 10,000 operations costs 10,000 small records, not 10,000
sleeping coroutines. The client's rate limiter paces the POSTs and GETs underneath.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from ._errors import BulkOperationFailedError, KnockError, ResponseValidationError
from ._follow import (
    Changed,
    Decision,
    Finished,
    Follow,
    GiveUp,
    PollPolicy,
    WaitUntil,
    with_context,
)
from ._handle import BulkOperationHandle
from ._models import BulkOperation
from ._polling import poll_once
from ._progress import Progress, RowTally, observe, pace
from ._requests import Request, operation_poll_target
from ._transport import Transport

__all__ = [
    "ChannelResult",
    "FanOut",
    "FanOutEvent",
    "FanOutEventKind",
    "FanOutSummary",
    "FanOutTotals",
]


class FanOutEventKind(enum.StrEnum):
    """What happened to one channel of a fan-out: ``submitted``, ``progress``, ``completed``,
    ``failed`` or ``error``.
    """

    SUBMITTED = "submitted"  # the POST was accepted: an operation exists
    PROGRESS = "progress"  # the operation changed
    COMPLETED = "completed"  # the operation completed (error_count may be > 0: data)
    FAILED = "failed"  # the operation ended failed
    ERROR = "error"  # the channel could not be updated or followed (404, 401, deadline, ...)


_FINISHED_KINDS = (FanOutEventKind.COMPLETED, FanOutEventKind.FAILED, FanOutEventKind.ERROR)


@attrs.frozen(kw_only=True)
class FanOutTotals:
    """The whole fan-out at a glance, for one progress bar.

    Row counts add up the operations seen so far (channels not yet submitted have no estimate
    yet); ``rows_per_second`` is rows processed since the fan-out started over the time taken.
    """

    channels: int
    submitted: int
    completed: int
    failed: int
    errored: int
    processed_rows: int
    estimated_total_rows: int
    rows_per_second: float | None
    eta: timedelta | None

    @property
    def finished(self) -> int:
        """Channels that reached an end: completed, failed or errored."""
        return self.completed + self.failed + self.errored

    @property
    def fraction(self) -> float | None:
        """Rows done over rows estimated, in ``[0, 1]``; ``None`` while nothing is estimated."""
        if self.estimated_total_rows <= 0:
            return 1.0 if self.finished == self.channels else None
        return min(1.0, max(0.0, self.processed_rows / self.estimated_total_rows))


@attrs.frozen(kw_only=True)
class FanOutEvent:
    """Something happened to one channel. ``totals`` is the whole fan-out just after it."""

    kind: FanOutEventKind
    channel_id: str
    progress: Progress | None
    error: KnockError | None
    totals: FanOutTotals

    @property
    def handle(self) -> BulkOperationHandle | None:
        """The operation's handle, or ``None`` when the channel had no operation (an ``error``)."""
        return None if self.progress is None else self.progress.handle


@attrs.frozen(kw_only=True)
class ChannelResult:
    """Where one channel stands: its operation as last seen, and the error that stopped it.

    ``status`` is ``completed`` or ``failed`` (the operation ended so), ``error`` (the channel
    could not be updated or followed), ``running`` (submitted, not seen to finish: the fan-out
    was stopped; ``handle`` follows it) or ``pending`` (never submitted).
    """

    channel_id: str
    operation: BulkOperation | None
    error: KnockError | None

    @property
    def status(self) -> str:
        """``completed``, ``failed``, ``error``, ``running`` (stopped early) or ``pending``."""
        if self.error is not None and not isinstance(self.error, BulkOperationFailedError):
            return "error"
        if self.operation is None:
            return "pending"
        if not self.operation.is_terminal:
            return "running"
        return self.operation.status.value

    @property
    def handle(self) -> BulkOperationHandle | None:
        """What ``bulk_operations.poll`` needs to follow the operation, if one was started."""
        return None if self.operation is None else self.operation.handle


@attrs.frozen(kw_only=True)
class FanOutSummary:
    """Every channel in the order given, with its final operation, status or error."""

    results: tuple[ChannelResult, ...]
    totals: FanOutTotals

    @property
    def ok(self) -> bool:
        """Every channel's operation completed (a stopped fan-out is not ok)."""
        return all(r.status == "completed" for r in self.results)

    def by_status(self, status: str) -> tuple[ChannelResult, ...]:
        """The results with this ``status`` (``completed``, ``failed``, ``error``, ...)."""
        return tuple(r for r in self.results if r.status == status)


def _channel(follow: Follow) -> str:
    assert follow.channel_id is not None  # a fan-out's follows all have their channel
    return follow.channel_id


def _unexpected(channel_id: str, exc: BaseException) -> KnockError:
    """Any exception on one channel, as that channel's typed error. Built, not raised, so it
    chains nothing (the original's context could hold request headers)."""
    return KnockError(f"channel {channel_id}: unexpected {type(exc).__name__}: {exc}")


def _consume(task: asyncio.Task[None]) -> None:
    # Marks a task's exception as retrieved whatever way the fan-out ends (a break, a closed
    # client): asyncio would otherwise report it at gc. The scheduler still surfaces it.
    if not task.cancelled():
        task.exception()


class FanOut:
    """Made by ``channels.bulk.update_many``: an async iterator of ``FanOutEvent`` and an
    awaitable of the ``FanOutSummary``. One channel's failure never stops the others.

    Stopping it (``break`` then ``aclose()``, ``async with``, or cancelling the consumer)
    cancels the requests in flight and follows nothing more; operations already started go
    on server-side, and the events' handles let a later ``poll`` pick them up.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        channel_ids: list[str],
        make_request: Callable[[str], Request],
        concurrency: int,
        timeout: float | None,
        policy: PollPolicy,
        action: str | None = None,
    ) -> None:
        self._transport = transport
        self._action = action
        self._channel_ids = channel_ids
        self._make_request = make_request
        self._concurrency = concurrency
        # POSTs wait in the limiter at 5/s; a few at once keep that pace without letting them
        # take every slot from the polls.
        self._submit_slots = max(1, min(concurrency // 2, 4))
        self._timeout = timeout
        self._policy = policy
        self._clock: Callable[[], float] = transport.clock
        self._sleep: Callable[[float], Awaitable[None]] = transport.sleep
        self._rng: Callable[[], float] = transport.rng

        self._pending = deque(channel_ids)
        self._due: list[tuple[float, int, Follow]] = []
        self._order = itertools.count()
        self._inflight: set[asyncio.Task[None]] = set()
        # Submissions past the rate limiter: their POST may have reached Knock, so stopping
        # waits for their answer (and its handle) instead of cancelling them.
        self._sending: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._seen: dict[str, BulkOperation] = {}
        self._submitting = 0
        self._events: deque[FanOutEvent] = deque()
        self._results: dict[str, ChannelResult] = {}
        self._rows = RowTally()
        self._counts = dict.fromkeys(FanOutEventKind, 0)
        self._started: tuple[float, datetime] | None = None
        self._iterator: AsyncGenerator[FanOutEvent, None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"<FanOut channels={len(self._channel_ids)} in_flight={len(self._inflight)} "
            f"finished={len(self._results)}>"
        )

    # -- the public face ---------------------------------------------------------------

    def __aiter__(self) -> AsyncGenerator[FanOutEvent, None]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    def __await__(self) -> Generator[object, None, FanOutSummary]:
        return self._wait().__await__()

    async def __aenter__(self) -> FanOut:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following: schedule nothing more, cancel the polls in flight, and wait for the
        POSTs already sent (so every operation started is in the summary). Idempotent; safe to
        call from another task while one iterates."""
        self._closed = True
        self._wake.set()
        iterator = self._iterator
        # A generator suspended at a yield can be closed here; one running in another task is
        # woken by the event above and ends by itself.
        if iterator is not None and not getattr(iterator, "ag_running", False):
            await iterator.aclose()
        await self._stop_inflight()

    @property
    def totals(self) -> FanOutTotals:
        """The running totals across every channel so far."""
        rows = self._rows
        rate: float | None = None
        eta: timedelta | None = None
        if self._started is not None:
            rate, eta = pace(
                rows.processed,
                rows.estimated,
                self._clock() - self._started[0],
                running=len(self._results) < len(self._channel_ids),
            )
        return FanOutTotals(
            channels=len(self._channel_ids),
            submitted=self._counts[FanOutEventKind.SUBMITTED],
            completed=self._counts[FanOutEventKind.COMPLETED],
            failed=self._counts[FanOutEventKind.FAILED],
            errored=self._counts[FanOutEventKind.ERROR],
            processed_rows=rows.processed,
            estimated_total_rows=rows.estimated,
            rows_per_second=rate,
            eta=eta,
        )

    def summary(self) -> FanOutSummary:
        """Every channel, in the order given: finished, still running, or never submitted."""
        results = tuple(
            self._results.get(c)
            or ChannelResult(channel_id=c, operation=self._seen.get(c), error=None)
            for c in self._channel_ids
        )
        return FanOutSummary(results=results, totals=self.totals)

    async def _wait(self) -> FanOutSummary:
        async for _ in self:
            pass
        return self.summary()

    # -- the scheduler -----------------------------------------------------------------

    async def _run(self) -> AsyncGenerator[FanOutEvent, None]:
        if self._started is None:
            self._started = (self._clock(), datetime.now(UTC))
        try:
            while not self._closed:
                self._launch()
                while self._events:
                    yield self._events.popleft()
                if not (self._pending or self._due or self._inflight):
                    return
                await self._next_wakeup()
        finally:
            await self._stop_inflight()

    def _launch(self) -> None:
        now = self._clock()
        while len(self._inflight) < self._concurrency:
            if self._due and self._due[0][0] <= now:
                _, _, follow = heapq.heappop(self._due)
                self._start(self._poll(follow))
            elif self._pending and self._submitting < self._submit_slots:
                self._submitting += 1
                self._start(self._submit(self._pending.popleft()))
            else:
                return

    def _start(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        task.add_done_callback(_consume)
        self._inflight.add(task)

    async def _next_wakeup(self) -> None:
        """Wait until a request finishes or the next poll falls due."""
        waiters: set[asyncio.Future[Any]] = set(self._inflight)
        timer: asyncio.Task[None] | None = None
        if self._due and len(self._inflight) < self._concurrency:
            timer = asyncio.ensure_future(self._sleep(max(0.0, self._due[0][0] - self._clock())))
            waiters.add(timer)
        self._wake.clear()
        woken = asyncio.ensure_future(self._wake.wait())  # aclose() from another task
        waiters.add(woken)
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for helper in (timer, woken):
                if helper is not None and not helper.done():
                    helper.cancel()
        for task in done:
            if task is not timer and task is not woken:
                self._inflight.discard(task)
                if not task.cancelled():  # cancelled by aclose() from another task
                    task.result()  # a bug in a task surfaces here instead of vanishing

    async def _stop_inflight(self) -> None:
        """Cancel what has not reached Knock yet; wait for the POSTs that may have."""
        tasks, self._inflight = self._inflight, set()
        for task in tasks - self._sending:
            task.cancel()
        if tasks:
            # Shielded: a second cancellation must not orphan an operation Knock started.
            await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))

    # -- one channel -------------------------------------------------------------------

    def _wall(self) -> datetime:
        assert self._started is not None
        start_mono, start_wall = self._started
        return start_wall + timedelta(seconds=self._clock() - start_mono)

    def _emit(
        self,
        kind: FanOutEventKind,
        channel_id: str,
        progress: Progress | None = None,
        error: KnockError | None = None,
    ) -> None:
        # Every progress here comes from the channel's follow, which stamped its operation with
        # the channel and the action: each handle taken from this event or its result names them.
        self._counts[kind] += 1
        finished = kind in _FINISHED_KINDS
        if progress is not None:
            self._seen[channel_id] = progress.operation
            self._rows.update(channel_id, progress.operation, over=finished)
        if finished:
            operation = progress.operation if progress is not None else None
            self._results[channel_id] = ChannelResult(
                channel_id=channel_id, operation=operation, error=error
            )
        self._events.append(
            FanOutEvent(
                kind=kind, channel_id=channel_id, progress=progress, error=error, totals=self.totals
            )
        )

    async def _submit(self, channel_id: str) -> None:
        transport = self._transport
        task = asyncio.current_task()
        assert task is not None
        try:
            operation = await transport.send(
                self._make_request(channel_id), committed=lambda: self._sending.add(task)
            )
        except KnockError as exc:
            self._emit(FanOutEventKind.ERROR, channel_id, error=exc)
            return
        except Exception as exc:  # noqa: BLE001 - one channel's trouble must not end the others
            self._emit(FanOutEventKind.ERROR, channel_id, error=_unexpected(channel_id, exc))
            return
        finally:
            self._sending.discard(task)
            self._submitting -= 1
        try:
            where = operation_poll_target(transport.base_url, operation.id, operation.progress_path)
        except (TypeError, ValueError) as exc:
            error = ResponseValidationError(
                f"the operation started on channel {channel_id} cannot be polled: {exc}"
            )
            known = with_context(operation, channel_id, self._action)
            self._emit(FanOutEventKind.ERROR, channel_id, observe(known, self._wall()), error)
            return
        follow = Follow(
            operation.id,
            request=transport.poll_request(where),
            timeout=self._timeout,
            policy=self._policy,
            hooks=transport.hooks,
            channel_id=channel_id,
            action=self._action,
        )
        decision = follow.begin(self._clock(), self._wall(), operation, rng=self._rng)
        assert follow.last is not None
        self._emit(FanOutEventKind.SUBMITTED, channel_id, follow.last)
        if isinstance(decision, Changed):
            decision = WaitUntil(decision.until)  # the SUBMITTED event is its snapshot
        self._carry_out(follow, decision)

    async def _poll(self, follow: Follow) -> None:
        try:
            decision = await poll_once(self._transport, follow)
        except Exception as exc:  # noqa: BLE001 - one channel's trouble must not end the others
            decision = GiveUp(_unexpected(_channel(follow), exc))
        self._carry_out(follow, decision)

    def _carry_out(self, follow: Follow, decision: Decision) -> None:
        channel_id = _channel(follow)
        if isinstance(decision, Finished):
            failed = follow.failure_error()
            if failed is not None:
                self._emit(FanOutEventKind.FAILED, channel_id, decision.progress, failed)
            else:
                self._emit(FanOutEventKind.COMPLETED, channel_id, decision.progress)
        elif isinstance(decision, GiveUp):
            self._emit(FanOutEventKind.ERROR, channel_id, follow.last, decision.error)
        else:
            if isinstance(decision, Changed):
                self._emit(FanOutEventKind.PROGRESS, channel_id, decision.progress)
            heapq.heappush(self._due, (decision.until, next(self._order), follow))


def unique_channels(channel_ids: Iterable[object], parse: Callable[[object], str]) -> list[str]:
    """The channel ids, each validated; a duplicate is an error (it would update twice)."""
    if isinstance(channel_ids, str | bytes):
        raise TypeError("channel_ids must be a list of channel ids, not a single string")
    seen: set[str] = set()
    result: list[str] = []
    for index, raw in enumerate(channel_ids):
        try:
            channel = parse(raw)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"channel_ids[{index}]: {exc}") from None
        if channel in seen:
            raise ValueError(f"channel_ids[{index}]: {channel} is listed twice")
        seen.add(channel)
        result.append(channel)
    return result
