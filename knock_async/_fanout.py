"""``FanOut``: one bulk update over many channels (``update_many``), or many operations already
started (``follow_many``), paced and polled on one shared budget, as one merged stream.

A single scheduler (the async iterator itself) keeps every operation it follows in a heap
ordered by when it is next due; at most ``concurrency`` requests are in flight at any time and
nothing else runs, so following 10,000 operations costs 10,000 small records, not 10,000
sleeping coroutines. The client's rate limiter paces the POSTs and GETs underneath.

The totals cover the whole run. Channels not submitted yet count in ``fraction`` with the
average estimate of the operations seen so far (until there are any, the fraction is the share
of channels finished), and ``eta`` is the later of two: the rows left (those estimated for
the unsent channels included) at the rate so far, and the time the client's rate limiter needs
to submit the unsent channels at its POST rate. The rate counts only rows processed while this
run watched: an operation this run started counts from 0 at the run's start; one it follows
(``follow_many``) from its rows in the first snapshot this run saw of it, the time measured
from the first such snapshot.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import (
    BulkOperationFailedError,
    KnockError,
    PollTimeoutError,
    ResponseValidationError,
)
from ._follow import (
    Changed,
    Decision,
    Finished,
    Follow,
    GiveUp,
    Limits,
    PollPolicy,
    WaitUntil,
    with_context,
)
from ._handle import BulkOperationHandle
from ._models import BulkOperation, ErrorItem
from ._polling import poll_once
from ._progress import Progress, RowTally, heartbeat, observe, pace, seconds
from ._ratelimit import AdaptiveRateLimiter, RateLimiter, RateLimits, Tier
from ._requests import Request, operation_poll_target
from ._transport import Transport

if TYPE_CHECKING:
    from ._chunks import Source  # the protocol; its chunk source loads with the bulk families

__all__ = [
    "ChannelResult",
    "FanOut",
    "FanOutEvent",
    "FanOutEventKind",
    "FanOutSummary",
    "FanOutTotals",
    "Outcome",
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
    HEARTBEAT = "heartbeat"  # nothing new for max_silence: the latest state again


class Outcome(enum.StrEnum):
    """How one operation (or channel) of a fan-out ended; ``FanOutSummary.outcome`` is the
    worst of them, in this order from the best: ``completed``, ``pending`` (never
    submitted), ``running`` (stopped before it ended), ``timed_out`` (its deadline or stall
    deadline passed: ``PollTimeoutError``), ``failed`` (the operation ended ``failed``),
    ``error`` (it could not be started or followed)."""

    COMPLETED = "completed"
    PENDING = "pending"
    RUNNING = "running"
    TIMED_OUT = "timed_out"
    FAILED = "failed"
    ERROR = "error"


_SEVERITY = {outcome: rank for rank, outcome in enumerate(Outcome)}

_FINISHED_KINDS = (FanOutEventKind.COMPLETED, FanOutEventKind.FAILED, FanOutEventKind.ERROR)


@attrs.frozen(kw_only=True)
class FanOutTotals:
    """The whole fan-out at a glance, for one progress bar.

    ``processed_rows`` and ``estimated_total_rows`` add up the operations seen so far;
    ``unsubmitted`` channels are not submitted yet, and ``estimated_unsubmitted_rows`` is
    their share at the average estimate of the operations seen (0 until there are any).
    ``fraction`` counts both. ``rows_per_second`` is the rows processed while this run
    watched over the time it watched: for operations it started (``update_many``, the
    ``_all`` methods), all their rows since the run started; for operations it follows
    (``follow_many``), the rows each did after the first snapshot this run saw of it, since
    the first such snapshot, so rows done before following began are not this run's progress
    (``None``, as is ``eta``, until some row was done while watched). ``eta`` is the later of
    the rows left at that rate and the time to submit the unsent channels at the rate
    limiter's POST rate. ``submitted + unsubmitted`` plus the channels that ``errored``
    before an operation existed is ``channels``, also after the fan-out was stopped.
    ``timed_out`` counts the follows that gave up at a deadline or a stall (``PollTimeoutError``:
    the operation goes on); ``errored`` the other errors.
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
    unsubmitted: int = 0
    estimated_unsubmitted_rows: int = 0
    timed_out: int = 0

    @property
    def finished(self) -> int:
        """Channels that reached an end: completed, failed, errored or timed out."""
        return self.completed + self.failed + self.errored + self.timed_out

    @property
    def fraction(self) -> float | None:
        """Rows done over rows estimated for the whole run (the unsent channels' share
        included), in ``[0, 1]``; while no rows are estimated, the share of channels finished
        (``None`` for a fan-out over no channels that has not finished)."""
        total = self.estimated_total_rows + self.estimated_unsubmitted_rows
        if total > 0:
            return min(1.0, max(0.0, self.processed_rows / total))
        if self.finished == self.channels:
            return 1.0
        return self.finished / self.channels


@attrs.frozen(kw_only=True)
class FanOutEvent:
    """Something happened to one operation. ``totals`` is the whole fan-out just after it.

    ``operation_id`` names the operation (``None`` for a channel whose update could not be
    started); ``channel_id`` its channel when known (``follow_many`` over bare ids knows none).
    A ``heartbeat`` event repeats the latest event's operation and snapshot (marked
    ``progress.heartbeat``) with fresh totals: nothing changed for ``max_silence`` seconds.
    ``items`` is, for a chunk of an ``_all`` method, the indices of the input it carried (as
    its ``ChannelResult.items``).
    """

    kind: FanOutEventKind
    channel_id: str | None
    progress: Progress | None
    error: KnockError | None
    totals: FanOutTotals
    operation_id: str | None = None
    items: range | None = None

    @property
    def handle(self) -> BulkOperationHandle | None:
        """The operation's handle, or ``None`` when the channel had no operation (an ``error``)."""
        return None if self.progress is None else self.progress.handle


@attrs.frozen(kw_only=True)
class ChannelResult:
    """Where one channel (or followed operation) stands: its operation as last seen, and the
    error that stopped it.

    ``status`` is ``completed`` or ``failed`` (the operation ended so), ``error`` (the channel
    could not be updated or followed), ``running`` (submitted, not seen to finish: the fan-out
    was stopped; ``handle`` follows it) or ``pending`` (never submitted); ``outcome`` says the
    same as an ``Outcome``, telling a deadline (``timed_out``) from other errors.
    ``items`` is, for a chunk of an ``_all`` method, the indices of the input it carried.
    """

    channel_id: str | None
    operation: BulkOperation | None
    error: KnockError | None
    operation_id: str | None = None
    items: range | None = None

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
    def outcome(self) -> Outcome:
        """How it ended, as an ``Outcome``."""
        if isinstance(self.error, PollTimeoutError):
            return Outcome.TIMED_OUT
        return Outcome(self.status)

    @property
    def handle(self) -> BulkOperationHandle | None:
        """What ``bulk_operations.poll`` needs to follow the operation, if one was started."""
        if self.operation is None:
            if self.operation_id is None:
                return None
            return BulkOperationHandle(operation_id=self.operation_id, channel_id=self.channel_id)
        return self.operation.handle


@attrs.frozen(kw_only=True)
class FanOutSummary:
    """Every channel in the order given, with its final operation, status or error."""

    results: tuple[ChannelResult, ...]
    totals: FanOutTotals

    @property
    def ok(self) -> bool:
        """Every channel's operation completed (a stopped fan-out is not ok)."""
        return all(r.status == "completed" for r in self.results)

    @property
    def error_items(self) -> tuple[ErrorItem, ...]:
        """Every ``error_items`` entry of every operation, in the results' order."""
        return tuple(
            item
            for r in self.results
            if r.operation is not None
            for item in r.operation.error_items
        )

    def by_status(self, status: str) -> tuple[ChannelResult, ...]:
        """The results with this ``status`` (``completed``, ``failed``, ``error``, ...)."""
        return tuple(r for r in self.results if r.status == status)

    @property
    def outcome(self) -> Outcome:
        """The worst of the results' outcomes (``completed`` when there are none)."""
        return max(
            (r.outcome for r in self.results), key=_SEVERITY.__getitem__, default=Outcome.COMPLETED
        )


def _unexpected(what: str, exc: BaseException) -> KnockError:
    """Any exception on one channel or operation, as its typed error. Built, not raised, so
    it chains nothing (the original's context could hold request headers)."""
    return KnockError(f"{what}: unexpected {type(exc).__name__}: {exc}")


def post_rate(limiter: RateLimiter | None, tier: Tier = Tier.POST) -> float | None:
    """The POSTs per second ``limiter`` allows on ``tier``, ``None`` when it does not say (or
    paces nothing)."""
    limits = limiter.limits if isinstance(limiter, AdaptiveRateLimiter) else None
    if limits is None:
        limits = getattr(limiter, "limits", None)
    return limits.per_second(tier) if isinstance(limits, RateLimits) else None


def run_totals(
    counts: dict[FanOutEventKind, int],
    *,
    channels: int,
    submitted: int,
    unsubmitted: int,
    rows: RowTally,
    elapsed: float | None,
    post_per_second: float | None,
    timed_out: int = 0,
) -> FanOutTotals:
    """The totals of a whole run (see the module's docstring for how they are made);
    ``elapsed`` is the time the rows' rate is measured over (``None``: not begun);
    ``timed_out`` of the ``counts``' errors were timeouts."""
    seen = len(rows)
    unsent_rows = round(rows.estimated * unsubmitted / seen) if seen else 0
    finished = counts[FanOutEventKind.COMPLETED] + counts[FanOutEventKind.FAILED]
    finished += counts[FanOutEventKind.ERROR]
    rate: float | None = None
    eta: timedelta | None = None
    if elapsed is not None:
        rate, eta = pace(
            rows.processed,
            rows.estimated + unsent_rows,
            elapsed,
            running=finished < channels,
            before=rows.before,
        )
        if rate is not None and unsubmitted and post_per_second:
            # The unsent channels cannot all start sooner than the limiter lets them.
            submitting = seconds(unsubmitted / post_per_second)
            if submitting is not None and (eta is None or submitting > eta):
                eta = submitting
    return FanOutTotals(
        channels=channels,
        submitted=submitted,
        completed=counts[FanOutEventKind.COMPLETED],
        failed=counts[FanOutEventKind.FAILED],
        errored=counts[FanOutEventKind.ERROR] - timed_out,
        processed_rows=rows.processed,
        estimated_total_rows=rows.estimated,
        rows_per_second=rate,
        eta=eta,
        unsubmitted=unsubmitted,
        estimated_unsubmitted_rows=unsent_rows,
        timed_out=timed_out,
    )


def _consume(task: asyncio.Task[None]) -> None:
    # Marks a task's exception as retrieved whatever way the fan-out ends (a break, a closed
    # client): asyncio would otherwise report it at gc. The scheduler still surfaces it.
    if not task.cancelled():
        task.exception()


class FanOut:
    """Made by ``channels.bulk.update_many``, ``bulk_operations.follow_many`` and the ``_all``
    methods (``users.bulk.identify_all``, ...): an async iterator of ``FanOutEvent`` and an
    awaitable of the ``FanOutSummary``. One operation's failure never stops the others. For an
    ``_all`` method each key is a chunk of the input (``users[0:1000]``): ``channels`` in the
    totals counts chunks (those not read yet too when the input has a length), and a bad item
    ends the iteration with its ``TypeError``/``ValueError`` once the POSTs in flight answer.

    Stopping it (``break`` then ``aclose()``, ``async with``, or cancelling the consumer)
    cancels the requests in flight and follows nothing more; operations already started go
    on server-side, and the events' handles let a later ``poll`` pick them up.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        source: Source | None = None,
        follows: list[tuple[Follow, BulkOperation | None]] | None = None,
        concurrency: int,
        limits: Limits,
        policy: PollPolicy,
        action: str | None = None,
        tier: Tier = Tier.POST,
        submit_slots: int | None = None,
    ) -> None:
        self._transport = transport
        self._action = action
        self._concurrency = concurrency
        # POSTs wait in the limiter at 5/s; a few at once keep that pace without letting them
        # take every slot from the polls.
        self._submit_slots = submit_slots or max(1, min(concurrency // 2, 4))
        self._limits = limits
        self._policy = policy
        self._clock: Callable[[], float] = transport.clock
        self._sleep: Callable[[float], Awaitable[None]] = transport.sleep
        self._rng: Callable[[], float] = transport.rng
        self._post_rate = post_rate(transport.limiter, tier)

        # Channels (or chunks of items) are the keys of a source's fan-out, operation ids
        # those of a follow_many; submissions record which key each operation answers.
        self._by_channel = follows is None
        self._source = source
        self._fresh = follows or []
        self._keys = source.keys if source is not None else [f.operation_id for f, _ in self._fresh]
        self._context = {f.operation_id: f.channel_id for f, _ in self._fresh}
        self._key_of: dict[Follow, str] = {}
        self._posting = 0  # requests taken from the source, not answered (or cancelled)
        self._refused: BaseException | None = None
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
        self._last_event: FanOutEvent | None = None
        self._results: dict[str, ChannelResult] = {}
        # Operations a follow_many is given ran before it: their rows count from the first
        # snapshot seen (``_watched_from``), not as this run's progress.
        self._rows = RowTally(baseline=not self._by_channel)
        self._watched_from: float | None = None
        self._giving = False
        self._counts = dict.fromkeys(FanOutEventKind, 0)
        self._timed_out = 0  # of the ERROR events
        self._started: tuple[float, datetime] | None = None
        self._iterator: AsyncGenerator[FanOutEvent, None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"<FanOut {'channels' if self._by_channel else 'operations'}={len(self._keys)} "
            f"in_flight={len(self._inflight)} finished={len(self._results)}>"
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
        """The running totals across the whole run so far."""
        watched = self._watched_from
        counts = self._counts
        submitted = counts[FanOutEventKind.SUBMITTED]
        if not self._by_channel:
            submitted = len(self._keys)
        untaken = 0 if self._source is None else self._source.untaken()
        return run_totals(
            counts,
            channels=len(self._keys) + (0 if isinstance(self._source, ChannelSource) else untaken),
            submitted=submitted,
            unsubmitted=untaken + self._posting,
            rows=self._rows,
            elapsed=None if watched is None else self._clock() - watched,
            post_per_second=self._post_rate,
            timed_out=self._timed_out,
        )

    def summary(self) -> FanOutSummary:
        """Every channel (or operation), in the order given: finished, still running, or
        never submitted."""
        results = tuple(self._results.get(key) or self._unfinished(key) for key in self._keys)
        return FanOutSummary(results=results, totals=self.totals)

    def _unfinished(self, key: str) -> ChannelResult:
        operation = self._seen.get(key)
        if self._by_channel:
            operation_id = None if operation is None else operation.id
            items = self._items_of(key)
            return ChannelResult(
                channel_id=key if items is None else None,
                operation=operation,
                error=None,
                operation_id=operation_id,
                items=items,
            )
        channel_id = self._context.get(key) if operation is None else operation.channel_id
        return ChannelResult(
            channel_id=channel_id, operation=operation, error=None, operation_id=key
        )

    async def _wait(self) -> FanOutSummary:
        async for _ in self:
            pass
        return self.summary()

    # -- the scheduler -----------------------------------------------------------------

    async def _run(self) -> AsyncGenerator[FanOutEvent, None]:
        if self._started is None:
            self._started = (self._clock(), datetime.now(UTC))
            if self._by_channel:  # the run starts its operations: their rows count from here
                self._watched_from = self._started[0]
        self._begin_fresh()
        silence = self._limits.max_silence
        quiet_since = self._clock()
        try:
            while not self._closed:
                self._launch()
                while self._events:
                    yield self._events.popleft()
                    quiet_since = self._clock()
                if self._refused is not None:
                    await self._stop_inflight()
                    raise self._refusal()
                if not (self._more() or self._due or self._inflight):
                    return
                if silence is not None and self._clock() >= quiet_since + silence:
                    yield self._heartbeat()
                    quiet_since = self._clock()
                    continue
                await self._next_wakeup(None if silence is None else quiet_since + silence)
        finally:
            await self._stop_inflight()
            for _, _, follow in self._due:  # followed no more, unless iterated again
                follow.stopped()

    def _heartbeat(self) -> FanOutEvent:
        last = self._last_event
        progress = None if last is None or last.progress is None else heartbeat(last.progress)
        return FanOutEvent(
            kind=FanOutEventKind.HEARTBEAT,
            channel_id=None if last is None else last.channel_id,
            operation_id=None if last is None else last.operation_id,
            progress=progress,
            error=None,
            totals=self.totals,
        )

    def _begin_fresh(self) -> None:
        """Start following the operations a ``follow_many`` was given."""
        fresh, self._fresh = self._fresh, []
        self._giving = True  # the snapshots given, of unknown age: not timed from
        for follow, initial in fresh:
            decision = follow.begin(self._clock(), self._wall(), initial, rng=self._rng)
            self._carry_out(follow, decision)
        self._giving = False

    def _launch(self) -> None:
        now = self._clock()
        while len(self._inflight) < self._concurrency:
            if self._due and self._due[0][0] <= now:
                _, _, follow = heapq.heappop(self._due)
                self._start(self._poll(follow))
            elif self._more() and self._submitting < self._submit_slots:
                self._submitting += 1
                self._start(self._submit())
            else:
                return

    def _start(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        task.add_done_callback(_consume)
        self._inflight.add(task)

    async def _next_wakeup(self, heartbeat_at: float | None) -> None:
        """Wait until a request finishes, the next poll falls due or a heartbeat does."""
        waiters: set[asyncio.Future[Any]] = set(self._inflight)
        timer: asyncio.Task[None] | None = None
        wake_at = heartbeat_at
        if self._due and len(self._inflight) < self._concurrency:
            due = self._due[0][0]
            wake_at = due if wake_at is None else min(wake_at, due)
        if wake_at is not None:
            timer = asyncio.ensure_future(self._sleep(max(0.0, wake_at - self._clock())))
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

    # -- one operation -----------------------------------------------------------------

    def _wall(self) -> datetime:
        assert self._started is not None
        start_mono, start_wall = self._started
        return start_wall + timedelta(seconds=self._clock() - start_mono)

    def _emit(
        self,
        kind: FanOutEventKind,
        key: str,
        progress: Progress | None = None,
        error: KnockError | None = None,
        *,
        channel_id: str | None,
        operation_id: str | None,
    ) -> None:
        # Every progress here comes from the operation's follow, which stamped it with the
        # channel and the action: each handle taken from this event or its result names them.
        self._counts[kind] += 1
        self._timed_out += isinstance(error, PollTimeoutError)
        finished = kind in _FINISHED_KINDS
        if progress is not None:
            if self._watched_from is None and not self._giving:
                self._watched_from = self._clock()
            self._seen[key] = progress.operation
            self._rows.update(key, progress.operation, over=finished, given=self._giving)
        items = self._items_of(key)
        if finished:
            operation = progress.operation if progress is not None else None
            self._results[key] = ChannelResult(
                channel_id=channel_id,
                operation=operation,
                error=error,
                operation_id=operation_id,
                items=items,
            )
        self._last_event = event = FanOutEvent(
            kind=kind,
            channel_id=channel_id,
            operation_id=operation_id,
            progress=progress,
            error=error,
            totals=self.totals,
            items=items,
        )
        self._events.append(event)

    def _more(self) -> bool:
        return self._source is not None and not self._source.exhausted

    def _items_of(self, key: str) -> range | None:
        return None if self._source is None else self._source.items_of(key)

    def _refusal(self) -> BaseException:
        """The bad item's error, saying what was sent before it (those operations go on)."""
        refused = self._refused
        assert refused is not None
        sent = [r for r in self.summary().results if r.operation_id is not None]
        items = sum(len(r.items or ()) for r in sent)
        ids = ", ".join(str(r.operation_id) for r in sent[:5]) + (", ..." if len(sent) > 5 else "")
        told = "nothing was sent"
        if sent:
            told = (
                f"nothing from its chunk on was sent; the {items:,} items before it went in "
                f"{len(sent)} operation(s) ({ids}), which go on: the fan-out's summary() has "
                "their handles"
            )
        if type(refused) in (TypeError, ValueError):  # an item's check: one message says all
            return type(refused)(f"{refused}; {told}")
        # The input itself failed (its iterator raised): the caller's own exception, told.
        refused.add_note(f"knock_async: reading the input failed; {told}")
        return refused

    async def _submit(self) -> None:
        transport = self._transport
        task = asyncio.current_task()
        assert task is not None
        assert self._source is not None  # only a fan-out with a source submits
        error: KnockError | None = None
        try:
            try:
                taken = await self._source.take()
            except Exception as exc:  # noqa: BLE001 - a bad item: raised from the iteration
                self._refused = exc
                taken = None
            if taken is None:
                return
            key, request = taken
            self._posting += 1
            try:
                operation = await transport.send(request, committed=lambda: self._sending.add(task))
            except KnockError as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - one channel's trouble must not end the others
                error = _unexpected(
                    f"{'channel ' if self._items_of(key) is None else ''}{key}", exc
                )
            # Not on a cancellation (the fan-out stopping): a POST cancelled before it was
            # answered started nothing known, and its channel stays in ``unsubmitted``.
            self._posting -= 1
        finally:
            self._sending.discard(task)
            self._submitting -= 1
        channel_id = key if self._items_of(key) is None else None
        if error is not None:
            self._emit(
                FanOutEventKind.ERROR, key, error=error, channel_id=channel_id,
                operation_id=None,
            )  # fmt: skip
            return
        try:
            where = operation_poll_target(transport.base_url, operation.id, operation.progress_path)
        except (TypeError, ValueError) as exc:
            error = ResponseValidationError(
                f"the operation started for {key} cannot be polled: {exc}"
            )
            known = with_context(operation, channel_id, self._action)
            self._emit(
                FanOutEventKind.ERROR, key, observe(known, self._wall()), error,
                channel_id=channel_id, operation_id=operation.id,
            )  # fmt: skip
            return
        follow = Follow(
            operation.id,
            request=transport.poll_request(where),
            limits=self._limits,
            policy=self._policy,
            hooks=transport.hooks,
            channel_id=channel_id,
            action=self._action,
        )
        self._key_of[follow] = key
        decision = follow.begin(self._clock(), self._wall(), operation, rng=self._rng)
        assert follow.last is not None
        self._emit(
            FanOutEventKind.SUBMITTED, key, follow.last,
            channel_id=channel_id, operation_id=operation.id,
        )  # fmt: skip
        if isinstance(decision, Changed):
            decision = WaitUntil(decision.until)  # the SUBMITTED event is its snapshot
        self._carry_out(follow, decision)

    async def _poll(self, follow: Follow) -> None:
        try:
            decision = await poll_once(self._transport, follow)
        except asyncio.CancelledError:  # the fan-out is stopping
            follow.stopped()
            raise
        except Exception as exc:  # noqa: BLE001 - one operation's trouble must not end the others
            decision = follow.give_up(_unexpected(follow.label, exc))
        self._carry_out(follow, decision)

    def _carry_out(self, follow: Follow, decision: Decision) -> None:
        key = self._key_of.get(follow, follow.operation_id)
        kind: FanOutEventKind | None = None
        progress: Progress | None = None
        error: KnockError | None = None
        if isinstance(decision, Finished):
            error = follow.failure_error()
            kind = FanOutEventKind.COMPLETED if error is None else FanOutEventKind.FAILED
            progress = decision.progress
        elif isinstance(decision, GiveUp):
            kind, progress, error = FanOutEventKind.ERROR, follow.last, decision.error
        else:
            if isinstance(decision, Changed):
                kind, progress = FanOutEventKind.PROGRESS, decision.progress
            heapq.heappush(self._due, (decision.until, next(self._order), follow))
        if kind is not None:
            self._emit(
                kind, key, progress, error,
                channel_id=follow.channel_id, operation_id=follow.operation_id,
            )  # fmt: skip


class ChannelSource:
    """``update_many``'s channels as a fan-out's source (``_chunks.Source``), every key known
    from the start."""

    def __init__(self, channel_ids: list[str], make_request: Callable[[str], Request]) -> None:
        self.keys = channel_ids
        self._pending = deque(channel_ids)
        self._make_request = make_request

    @property
    def exhausted(self) -> bool:
        return not self._pending

    def untaken(self) -> int:
        return len(self._pending)

    def items_of(self, key: str) -> range | None:
        return None

    async def take(self) -> tuple[str, Request] | None:
        if not self._pending:
            return None
        channel_id = self._pending.popleft()
        return channel_id, self._make_request(channel_id)


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
