"""``Poller``: follows one bulk operation; an async iterator of ``Progress`` and an awaitable.

It owns a ``Follow`` (the pure state and decisions) and is handed the transport: this class
only sleeps until the time the decision names and takes the shared poll step. The state is
kept between polls, so a poll interrupted by cancellation, an error or ``aclose()`` can be
iterated or awaited again and carries on where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from datetime import UTC, datetime

from ._follow import Changed, Decision, Finished, Follow, GiveUp, Limits, PollPolicy
from ._handle import BulkOperationHandle
from ._models import BulkOperation
from ._polling import poll_once
from ._progress import Progress, heartbeat
from ._requests import Request
from ._transport import Transport

__all__ = ["PollTargetLike", "Poller"]

PollTargetLike = BulkOperation | Progress | BulkOperationHandle | str

_BUSY = (
    "this Poller is already being iterated or awaited in another task; await it after that "
    "loop ends, or start a second poll() of the same operation"
)


class Poller:
    """Follows a bulk operation to ``completed`` or ``failed``. Made by ``bulk_operations.poll``.

    ``async for progress in poller`` yields a ``Progress`` when the operation changed (every
    poll with ``PollPolicy(yield_unchanged=True)``) and the terminal snapshot last, then ends,
    ``failed`` included. With ``max_silence`` it never stays quiet longer than that (plus a
    request in flight): the latest snapshot comes again, marked ``progress.heartbeat``.
    ``await poller`` returns the final ``BulkOperation`` or raises
    ``BulkOperationFailedError``; both raise ``PollTimeoutError`` at the deadline (the total
    one, or the stall deadline: no change for ``stall_timeout`` seconds). Stopping
    (``break``, ``aclose()``, cancellation) only stops polling: the operation goes on
    server-side, and a later ``async for`` or ``await`` carries on where this one stopped.
    """

    __slots__ = ("_awaiting", "_follow", "_initial", "_iterator", "_transport", "_until")

    def __init__(
        self,
        *,
        transport: Transport,
        request: Request,
        operation_id: str,
        initial: BulkOperation | None,
        limits: Limits,
        policy: PollPolicy,
        channel_id: str | None = None,
        action: str | None = None,
    ) -> None:
        self._follow = Follow(
            operation_id,
            request=request,
            limits=limits,
            policy=policy,
            hooks=transport.hooks,
            channel_id=channel_id,
            action=action,
        )
        self._transport = transport
        self._initial = initial
        # When the next poll is due; None before the start and after an interruption.
        self._until: float | None = None
        self._iterator: AsyncGenerator[Progress, None] | None = None
        self._awaiting = False

    def __repr__(self) -> str:
        follow = self._follow
        status = follow.last.status.value if follow.last else "unseen"
        return f"<Poller operation_id={follow.operation_id!r} status={status} polls={follow.polls}>"

    @property
    def operation_id(self) -> str:
        """The id of the bulk operation followed."""
        return self._follow.operation_id

    @property
    def handle(self) -> BulkOperationHandle:
        """What ``bulk_operations.poll`` needs to follow the operation again, from anywhere."""
        follow = self._follow
        known = follow.last.operation if follow.last is not None else self._initial
        if known is not None:
            return known.handle
        return BulkOperationHandle(
            operation_id=follow.operation_id, channel_id=follow.channel_id, action=follow.action
        )

    @property
    def last_progress(self) -> Progress | None:
        """The latest snapshot, also after an error or a timeout: nothing seen is lost."""
        return self._follow.last

    def __aiter__(self) -> AsyncGenerator[Progress, None]:
        if self._awaiting or getattr(self._iterator, "ag_running", False):
            raise RuntimeError(_BUSY)
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    def __await__(self) -> Generator[object, None, BulkOperation]:
        return self._wait().__await__()

    async def aclose(self) -> None:
        """Stop the iteration in progress, if any, as a ``break`` would, and release it at
        once (its pending poll included) rather than leave it to the garbage collector.
        Idempotent. The poller keeps what it saw: iterating or awaiting it again resumes."""
        iterator = self._iterator
        if iterator is None:
            return
        if getattr(iterator, "ag_running", False):
            raise RuntimeError(_BUSY)
        await iterator.aclose()
        if not self._follow.done:
            self._iterator = None

    async def _wait(self) -> BulkOperation:
        follow = self._follow
        if self._iterator is not None:  # a loop started: carry it on to the end
            async for _ in self:
                pass
        else:
            # Awaited alone: step without an async generator, which would cost every one of
            # thousands of awaited pollers a frame and a slot in asyncio's generator registry.
            if self._awaiting:
                raise RuntimeError(_BUSY)
            self._awaiting = True
            try:
                while not follow.done:
                    await self._step()
            except asyncio.CancelledError:
                follow.stopped()
                raise
            finally:
                self._awaiting = False
        failed = follow.failure_error()
        if failed is not None:
            raise failed
        assert follow.last is not None  # a finished poll has seen its operation
        return follow.last.operation

    # -- the loop ----------------------------------------------------------------------

    async def _run(self) -> AsyncGenerator[Progress, None]:
        follow, clock = self._follow, self._transport.clock
        silence = follow.max_silence
        # When the consumer last got something: a local, so an awaited poller pays nothing.
        quiet_since = clock()
        try:
            while not follow.done:
                if silence is not None and follow.last is not None and self._until is not None:
                    due = quiet_since + silence
                    if self._until > due:
                        now = clock()
                        if due > now:
                            await self._transport.sleep(due - now)
                        quiet_since = clock()
                        yield heartbeat(follow.last)
                        continue
                progress = await self._step()
                if progress is not None:
                    quiet_since = clock()
                    yield progress
        except (GeneratorExit, asyncio.CancelledError):  # a break, aclose(), a cancellation
            follow.stopped()
            raise
        finally:
            # Cancelled, closed or failed mid-way: the next iteration starts a fresh loop over
            # the same state. After the end it yields nothing and the result stands.
            if not self._follow.done:
                self._iterator = None

    async def _step(self) -> Progress | None:
        """One decision carried out: the ``Progress`` to yield, or ``None`` when nothing
        changed. Raises the error the follow gave up with (``PollTimeoutError`` at the
        deadline)."""
        transport, follow = self._transport, self._follow
        until = self._until
        self._until = None  # an interruption from here on resumes with a fresh decision
        if until is None:
            if not follow.started:
                initial, self._initial = self._initial, None
                now = transport.clock()
                decision = follow.begin(now, datetime.now(UTC), initial, rng=transport.rng)
            else:
                decision = follow.resume(transport.clock(), rng=transport.rng)
        else:
            now = transport.clock()
            if until > now:
                await transport.sleep(until - now)
            decision = await poll_once(transport, follow)
        return self._carry_out(decision)

    def _carry_out(self, decision: Decision) -> Progress | None:
        if isinstance(decision, GiveUp):
            raise decision.error
        if isinstance(decision, Finished):
            return decision.progress
        self._until = decision.until
        return decision.progress if isinstance(decision, Changed) else None
