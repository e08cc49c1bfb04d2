"""``Poller``: follows one bulk operation; an async iterator of ``Progress`` and an awaitable.

The decisions (when to poll, what counts as a change, which errors are transient) come from
the pure modules; this class keeps the state between polls so that a poll interrupted by
cancellation or an error can be iterated or awaited again and carries on where it stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ._errors import (
    APIConnectionError,
    APIError,
    BulkOperationFailedError,
    PollTimeoutError,
    RateLimitError,
)
from ._handle import BulkOperationHandle
from ._models import BulkOperation, BulkOperationStatus
from ._polling import PollPolicy, has_changed, poll_delay
from ._progress import Progress, observe
from ._requests import Request
from ._responses import operation_from_response
from ._retry import is_transient, parse_retry_after

if TYPE_CHECKING:
    from ._client import RawResponse

__all__ = ["Poller", "PollTargetLike"]

PollTargetLike = BulkOperation | Progress | BulkOperationHandle | str


class Poller:
    """Follows a bulk operation to ``completed`` or ``failed``. Made by ``bulk_operations.poll``.

    ``async for progress in poller`` yields a ``Progress`` when the operation changed (every
    poll with ``PollPolicy(yield_unchanged=True)``) and the terminal snapshot last, then ends,
    ``failed`` included. ``await poller`` returns the final ``BulkOperation`` or raises
    ``BulkOperationFailedError``; both raise ``PollTimeoutError`` at the deadline. Stopping
    (``break``, cancellation) only stops polling: the operation goes on server-side.
    """

    def __init__(
        self,
        *,
        send: Callable[[Request, float | None], Awaitable[RawResponse]],
        request: Request,
        operation_id: str,
        initial: BulkOperation | None,
        timeout: float | None,
        policy: PollPolicy,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        rng: Callable[[], float],
    ) -> None:
        self._send = send
        self._request = request
        self._operation_id = operation_id
        self._initial = initial
        self._timeout = timeout
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        # State kept across iterations, so an interrupted poll resumes where it stopped.
        self._started: tuple[float, datetime] | None = None
        self._deadline: float | None = None
        self._polls = 0
        self._errors_in_a_row = 0
        self._hint: float | None = None
        self._last: Progress | None = None
        self._done = False
        self._iterator: AsyncIterator[Progress] | None = None
        self._awaiting = False

    def __repr__(self) -> str:
        status = self._last.status.value if self._last else "unseen"
        return f"<Poller operation_id={self._operation_id!r} status={status} polls={self._polls}>"

    @property
    def operation_id(self) -> str:
        return self._operation_id

    @property
    def last_progress(self) -> Progress | None:
        """The latest snapshot, also after an error or a timeout: nothing seen is lost."""
        return self._last

    def __aiter__(self) -> AsyncIterator[Progress]:
        if self._awaiting or getattr(self._iterator, "ag_running", False):
            raise RuntimeError(
                "this Poller is already being iterated or awaited in another task; await it "
                "after that loop ends, or start a second poll() of the same operation"
            )
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    def __await__(self) -> Generator[object, None, BulkOperation]:
        return self._wait().__await__()

    async def _wait(self) -> BulkOperation:
        if self._iterator is not None:  # a loop started: carry it on to the end
            async for _ in self:
                pass
        else:
            # Awaited alone: step without an async generator, which would cost every one of
            # thousands of awaited pollers a frame and a slot in asyncio's generator registry.
            if self._awaiting:
                self.__aiter__()  # raises the same clear error
            self._awaiting = True
            try:
                while not self._done:
                    await self._step()
            finally:
                self._awaiting = False
        assert self._last is not None  # a finished poll has seen its operation
        operation = self._last.operation
        if operation.status == BulkOperationStatus.FAILED:
            raise BulkOperationFailedError(
                f"bulk operation {operation.id} failed after {operation.processed_rows} of "
                f"~{operation.estimated_total_rows} rows ({operation.error_count} errors)",
                progress=self._last,
                operation_id=operation.id,
            )
        return operation

    # -- the loop ----------------------------------------------------------------------

    def _now(self) -> tuple[float, datetime]:
        assert self._started is not None
        mono = self._clock()
        start_mono, start_wall = self._started
        return mono, start_wall + timedelta(seconds=mono - start_mono)

    def _timed_out(self) -> PollTimeoutError:
        state = f"last seen {self._last.status.value}" if self._last else "never seen"
        return PollTimeoutError(
            f"bulk operation {self._operation_id} did not finish within {self._timeout}s "
            f"({state}); it goes on server-side: poll({self._operation_id!r}) resumes",
            progress=self._last,
            operation_id=self._operation_id,
        )

    def _observe(self, operation: BulkOperation) -> Progress | None:
        """Record an observation; the ``Progress`` to yield, or ``None`` if nothing changed."""
        _, wall = self._now()
        previous = self._last
        self._last = observe(operation, wall, previous)
        if operation.is_terminal:
            self._done = True
        changed = previous is None or has_changed(previous.operation, operation)
        if changed or self._policy.yield_unchanged or operation.is_terminal:
            return self._last
        return None

    async def _run(self) -> AsyncIterator[Progress]:
        try:
            while not self._done:
                progress = await self._step()
                if progress is not None:
                    yield progress
        finally:
            # Cancelled or failed mid-way: the next iteration starts a fresh loop over the
            # same state. After the end it yields nothing and the result stands.
            if not self._done:
                self._iterator = None

    async def _step(self) -> Progress | None:
        """One observation (the first one, or a poll after its delay): the ``Progress`` to
        yield, or ``None`` when nothing changed. ``PollTimeoutError`` at the deadline."""
        if self._started is None:
            self._started = (self._clock(), datetime.now(UTC))
            if self._timeout is not None:
                self._deadline = self._started[0] + self._timeout
            if self._initial is not None:
                return self._observe(self._initial)
        delay = poll_delay(self._policy, self._polls, hint=self._hint, rng=self._rng)
        if self._deadline is not None:
            remaining = self._deadline - self._clock()
            if remaining <= 0:
                raise self._timed_out()
            # The last poll lands on the deadline, so a finish just before it is seen.
            delay = min(delay, remaining)
        await self._sleep(delay)
        operation = await self._poll_once()
        return None if operation is None else self._observe(operation)

    async def _poll_once(self) -> BulkOperation | None:
        """One GET: the operation, or ``None`` after a transient error within the budget."""
        self._polls += 1
        try:
            left = None if self._deadline is None else self._deadline - self._clock()
            # The deadline bounds the request too, not only the sleeps between requests.
            status, headers, body = await self._send(self._request, left)
            self._hint = parse_retry_after(headers)
            operation = operation_from_response(status, headers, body)
        except (APIConnectionError, APIError) as exc:
            status_code = exc.status if isinstance(exc, APIError) else None
            failure = exc.failure if isinstance(exc, APIConnectionError) else None
            if not is_transient(status_code, failure):
                raise
            self._errors_in_a_row += 1
            if self._errors_in_a_row > self._policy.error_budget:
                self._errors_in_a_row = 0  # a resumed poll starts with a fresh budget
                raise
            if isinstance(exc, RateLimitError):
                self._hint = exc.retry_after
            return None
        self._errors_in_a_row = 0
        return operation
