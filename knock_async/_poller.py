"""``Poller``: follows one bulk operation; an async iterator of ``Progress`` and an awaitable.

A ``Follow`` (the pure state and decisions) plus the transport: this class only sleeps until
the time the decision names and sends the poll. The state is kept between polls, so a poll
interrupted by cancellation or an error can be iterated or awaited again and carries on where
it stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from datetime import UTC, datetime

from ._errors import KnockError
from ._follow import Changed, Decision, Finished, Follow, GiveUp, PollPolicy, read_response
from ._handle import BulkOperationHandle
from ._models import BulkOperation
from ._progress import Progress
from ._requests import Request
from ._transport import Transport

__all__ = ["PollTargetLike", "Poller", "poll_once"]

PollTargetLike = BulkOperation | Progress | BulkOperationHandle | str


async def poll_once(transport: Transport, follow: Follow, request: Request) -> Decision:
    """One poll of ``follow``'s operation through ``transport``, and the follow's decision on
    its outcome: the one poll step that ``Poller`` and ``FanOut`` share."""
    try:
        answer = await transport.exchange(request, deadline=follow.deadline)
    except KnockError as exc:
        return follow.outcome(transport.clock(), error=exc, rng=transport.rng)
    operation, error, hint = read_response(answer)
    return follow.outcome(
        transport.clock(), operation=operation, error=error, hint=hint, rng=transport.rng
    )


class Poller(Follow):
    """Follows a bulk operation to ``completed`` or ``failed``. Made by ``bulk_operations.poll``.

    ``async for progress in poller`` yields a ``Progress`` when the operation changed (every
    poll with ``PollPolicy(yield_unchanged=True)``) and the terminal snapshot last, then ends,
    ``failed`` included. ``await poller`` returns the final ``BulkOperation`` or raises
    ``BulkOperationFailedError``; both raise ``PollTimeoutError`` at the deadline. Stopping
    (``break``, cancellation) only stops polling: the operation goes on server-side.
    """

    __slots__ = ("_awaiting", "_initial", "_iterator", "_request", "_transport", "_until")

    def __init__(
        self,
        *,
        transport: Transport,
        request: Request,
        operation_id: str,
        initial: BulkOperation | None,
        timeout: float | None,
        policy: PollPolicy,
        channel_id: str | None = None,
        action: str | None = None,
    ) -> None:
        super().__init__(
            operation_id,
            timeout=timeout,
            policy=policy,
            hooks=transport.hooks,
            channel_id=channel_id,
            action=action,
        )
        self._transport = transport
        self._request = request
        self._initial = initial
        # When the next poll is due; None before the start and after an interruption.
        self._until: float | None = None
        self._iterator: AsyncIterator[Progress] | None = None
        self._awaiting = False

    def __repr__(self) -> str:
        status = self.last.status.value if self.last else "unseen"
        return f"<Poller operation_id={self.operation_id!r} status={status} polls={self.polls}>"

    @property
    def last_progress(self) -> Progress | None:
        """The latest snapshot, also after an error or a timeout: nothing seen is lost."""
        return self.last

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
                while not self.done:
                    await self._step()
            finally:
                self._awaiting = False
        failed = self.failed()
        if failed is not None:
            raise failed
        assert self.last is not None  # a finished poll has seen its operation
        return self.last.operation

    # -- the loop ----------------------------------------------------------------------

    async def _run(self) -> AsyncIterator[Progress]:
        try:
            while not self.done:
                progress = await self._step()
                if progress is not None:
                    yield progress
        finally:
            # Cancelled or failed mid-way: the next iteration starts a fresh loop over the
            # same state. After the end it yields nothing and the result stands.
            if not self.done:
                self._iterator = None

    async def _step(self) -> Progress | None:
        """One decision carried out: the ``Progress`` to yield, or ``None`` when nothing
        changed. Raises the error the follow gave up with (``PollTimeoutError`` at the
        deadline)."""
        transport = self._transport
        until = self._until
        self._until = None  # an interruption from here on resumes with a fresh decision
        if until is None:
            if not self.started:
                now = transport.clock()
                initial, self._initial = self._initial, None
                decision = self.start(now, datetime.now(UTC), initial, rng=transport.rng)
            else:
                decision = self.resume(transport.clock(), rng=transport.rng)
        else:
            now = transport.clock()
            if until > now:
                await transport.sleep(until - now)
            decision = await poll_once(transport, self, self._request)
        return self._carry_out(decision)

    def _carry_out(self, decision: Decision) -> Progress | None:
        if isinstance(decision, GiveUp):
            raise decision.error
        if isinstance(decision, Finished):
            return decision.progress
        self._until = decision.until
        return decision.progress if isinstance(decision, Changed) else None
