"""Following one bulk operation: the poll schedule and the decision after each poll. Pure.

``Follow`` is the private state of one followed operation, owned by its follower as h11's
``Connection`` owns its state machine: the follower (``Poller`` for one operation, ``FanOut``
for many) feeds it what one poll gave (the transport's ``Answer``, or the error raised
instead) and does what the returned decision says: ``Changed`` (a new snapshot to hand out,
then poll again at ``until``), ``WaitUntil`` (nothing new; poll again at ``until``), ``GiveUp``
(end with ``error``) or ``Finished`` (the operation reached ``completed`` or ``failed``). No
I/O, no event loop, no clock of its own: every method takes ``now``.

What is transient while polling (ridden out within ``PollPolicy.error_budget``): a connection
failure or timeout, 408, 429, any 5xx, and a 2xx whose body cannot be read as JSON at all
(empty, cut short, not UTF-8: ``unreadable``). A 2xx carrying well-formed JSON of the wrong
shape (another operation's id, a missing or mistyped field) is a ``ResponseValidationError``
that ends the follow at once. Counts are taken as the server gives them (any signed 64-bit
integer): a nonsense snapshot is data, and the arithmetic on it stays in range.

The schedule (``PollPolicy(eta=True)``, the default) is ETA-aware: from the snapshots' rows
done and estimated and their times, ``_schedule.Forecast`` predicts the end, and each wait is
``eta_fraction`` (0.3) of the predicted time left, at least ``initial_delay`` and at most
``max_eta_delay``; past the predicted end the waits start short and grow, up to ``max_delay``.
While there is no rate to go by (queued, no estimate, rows standing still), and always with
``eta=False``, it is the plain backoff: the first poll after about ``initial_delay``, each later
one ``multiplier`` times longer, up to ``max_delay``, each delay spread by ``±jitter`` so that
many pollers started together do not ask in lockstep. A server's Retry-After replaces the
schedule, bounded by ``min_hint`` and ``max_hint`` here (the transport knows no poll policy).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import attrs

from ._errors import (
    APIConnectionError,
    BulkOperationFailedError,
    DeadlineError,
    KnockError,
    PollTimeoutError,
    ResponseValidationError,
)
from ._hooks import FollowStopped, Hook, PollObserved, emit, poll_error_ridden_out
from ._models import BulkOperation, BulkOperationStatus
from ._progress import Progress, observe
from ._requests import Request
from ._responses import Answer, operation_from_answer
from ._retry import is_transient
from ._schedule import EtaSchedule, Forecast, backoff_delay
from ._validate import (
    attrs_check,
    boolean,
    non_negative,
    non_negative_int,
    number_where,
    positive,
)

__all__ = [
    "Changed",
    "Decision",
    "Finished",
    "Follow",
    "DEFAULT_STALL_TIMEOUT",
    "GiveUp",
    "Limits",
    "PollPolicy",
    "WaitUntil",
    "follow_delay",
    "has_changed",
    "limits",
    "poll_delay",
    "unreadable",
    "with_context",
]

# Noticing a stuck operation within minutes, while the ETA schedule's longest wait (300 s)
# still leaves a healthy operation one poll to show a change before the stall deadline.
DEFAULT_STALL_TIMEOUT = 600.0


# -- the policy and the schedule -------------------------------------------------------------


def _at_least_one(name: str, value: object) -> float:
    return number_where(name, value, "a finite number >= 1", lambda v: v >= 1)


def _below_one(name: str, value: object) -> float:
    return number_where(name, value, "a finite number in [0, 1)", lambda v: 0 <= v < 1)


def _eta_fraction(name: str, value: object) -> float:
    return number_where(name, value, "a finite number in (0, 1)", lambda v: 0 < v < 1)


def _validate(policy: PollPolicy) -> None:
    if policy.initial_delay > policy.max_delay:
        raise ValueError("PollPolicy.initial_delay must not exceed max_delay")
    if policy.initial_delay > policy.max_eta_delay:
        raise ValueError("PollPolicy.initial_delay must not exceed max_eta_delay")
    if policy.min_hint > policy.max_hint:
        raise ValueError("PollPolicy.min_hint must not exceed max_hint")


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How the poller paces itself. Durations are in seconds.

    ``min_hint``/``max_hint`` bound a server's Retry-After while polling (a longer one waits
    ``max_hint``; how long a 429's hint holds the client's rate limiter is the client's
    ``RetryPolicy.max_retry_after``); ``error_budget`` is how many
    transient failures in a row (connection errors, timeouts, 408, 429, 5xx) are ridden out
    before the poll gives up; ``yield_unchanged`` yields a snapshot on every poll instead of
    only when the operation changed.

    ``eta`` (default) waits ``eta_fraction`` of the predicted time left (between
    ``initial_delay`` and ``max_eta_delay``) once the snapshots give a rate, and polls at short,
    growing intervals (up to ``max_delay``) past the predicted end; ``eta=False`` keeps the
    plain backoff (``initial_delay``, x``multiplier``, up to ``max_delay``) throughout.
    """

    initial_delay: float = attrs.field(default=1.0, validator=attrs_check(positive))
    multiplier: float = attrs.field(default=1.5, validator=attrs_check(_at_least_one))
    max_delay: float = attrs.field(default=30.0, validator=attrs_check(positive))
    jitter: float = attrs.field(default=0.1, validator=attrs_check(_below_one))
    min_hint: float = attrs.field(default=0.5, validator=attrs_check(non_negative))
    max_hint: float = attrs.field(default=120.0, validator=attrs_check(non_negative))
    error_budget: int = attrs.field(default=8, validator=attrs_check(non_negative_int))
    yield_unchanged: bool = attrs.field(default=False, validator=attrs_check(boolean))
    eta: bool = attrs.field(default=True, validator=attrs_check(boolean))
    eta_fraction: float = attrs.field(default=0.3, validator=attrs_check(_eta_fraction))
    max_eta_delay: float = attrs.field(default=300.0, validator=attrs_check(positive))

    def __attrs_post_init__(self) -> None:
        _validate(self)


@functools.lru_cache(maxsize=32)
def _eta_schedule(policy: PollPolicy) -> EtaSchedule:
    # One per policy, not per followed operation: a fan-out follows thousands with one policy.
    return EtaSchedule(
        fraction=policy.eta_fraction,
        min_delay=policy.initial_delay,
        max_delay=policy.max_eta_delay,
        max_overdue_delay=policy.max_delay,
        jitter=policy.jitter,
    )


def poll_delay(
    policy: PollPolicy, polls: int, *, hint: float | None = None, rng: Callable[[], float]
) -> float:
    """Seconds to wait before poll number ``polls + 1`` (``polls`` made so far).

    A server hint (Retry-After) replaces the schedule, clamped to ``[min_hint, max_hint]``.
    Otherwise the result lies in ``[initial_delay * (1 - jitter), max_delay]``.
    """
    if hint is not None:
        return min(policy.max_hint, max(policy.min_hint, hint))
    return backoff_delay(
        polls,
        initial=policy.initial_delay,
        multiplier=policy.multiplier,
        cap=policy.max_delay,
        jitter=policy.jitter,
        spread=rng(),
    )


def follow_delay(
    policy: PollPolicy,
    polls: int,
    forecast: Forecast,
    now: float,
    *,
    hint: float | None = None,
    rng: Callable[[], float],
) -> float:
    """Seconds to wait from ``now`` before the next poll: a server hint if any, else the ETA
    schedule over ``forecast`` (``policy.eta``), falling back to the plain backoff while the
    forecast predicts no end."""
    backoff = poll_delay(policy, polls, hint=hint, rng=rng)
    if hint is not None or not policy.eta:
        return backoff
    return _eta_schedule(policy).delay(forecast, now, fallback=backoff, spread=rng())


def has_changed(before: BulkOperation, after: BulkOperation) -> bool:
    """Whether a new observation says something new (``updated_at`` alone does not count)."""
    return (
        before.status != after.status
        or before.processed_rows != after.processed_rows
        or before.success_count != after.success_count
        or before.error_count != after.error_count
        or before.estimated_total_rows != after.estimated_total_rows
        or before.error_items != after.error_items
    )


# -- decisions -------------------------------------------------------------------------------


@attrs.frozen
class Changed:
    """A new snapshot to hand out; poll again at ``until`` (the client's clock)."""

    progress: Progress
    until: float


@attrs.frozen
class WaitUntil:
    """Nothing new to hand out; poll again at ``until``."""

    until: float


@attrs.frozen
class GiveUp:
    """The follow ends with ``error``; ``Follow.last`` keeps the last snapshot."""

    error: KnockError


@attrs.frozen
class Finished:
    """The operation is ``completed`` or ``failed``; ``progress`` is its final snapshot."""

    progress: Progress


Decision = Changed | WaitUntil | GiveUp | Finished

# What a follow knows before its first snapshot with a rate: shared, it is immutable.
_NO_FORECAST = Forecast()


def unreadable(body: bytes) -> bool:
    """Whether a 2xx body cannot be read as JSON at all: empty, cut short, not UTF-8, a
    proxy's HTML page. Such a poll is transient (a GET is safe to repeat), unlike JSON of the
    wrong shape (another id, a missing field), which says the server means something else.
    Called only once the body was refused, so a good answer is parsed once."""
    try:
        json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return True
    except RecursionError:  # well-formed, absurdly nested: read, and wrong
        return False
    return False


def with_context(
    operation: BulkOperation, channel_id: str | None, action: str | None
) -> BulkOperation:
    """``operation`` carrying what the caller knows and the server's answer does not say (its
    channel and action), for an operation that did not come through a follow's answer."""
    if channel_id is None or (operation.channel_id, operation.action) == (channel_id, action):
        return operation
    return attrs.evolve(operation, channel_id=channel_id, action=action)


def _transient(error: KnockError) -> bool:
    failure = error.failure if isinstance(error, APIConnectionError) else None
    # A validation error keeps its 2xx status, a poll timeout has none: neither is transient.
    return is_transient(error.status, failure)


@attrs.frozen
class Limits:
    """How long a follow may go on: ``timeout`` in all (``None``: no limit), ``stall_timeout``
    without a change (``None``: no limit), and ``max_silence``, the longest its follower's
    stream stays quiet (``None``: as long as the schedule says). Shared: ``limits`` gives one
    per distinct triple, so a follow pays one slot for all three."""

    timeout: float | None
    stall_timeout: float | None
    max_silence: float | None


@functools.lru_cache(maxsize=64)
def limits(
    timeout: float | None, stall_timeout: float | None, max_silence: float | None = None
) -> Limits:
    """The shared ``Limits`` for these values."""
    return Limits(timeout, stall_timeout, max_silence)


class Follow:
    """The private state of one followed operation, owned by its follower (``Poller``, or a
    ``FanOut`` for each of its channels), as h11's ``Connection`` owns its state.

    It holds the operation's context once: its id, the ``request`` that polls it, its channel
    and action (stamped onto every operation it hands out), its ``limits`` (the total
    deadline, the stall deadline: no change for ``stall_timeout`` seconds ends it) and the
    policy. ``begin`` it, then feed it each poll: ``answered`` with the
    transport's ``Answer``, ``unanswered`` with the error raised instead. ``last`` is the
    latest snapshot, kept after any error: nothing seen is lost. A follow that gave up can be
    fed again (a resumed poll): its error budget starts afresh.
    """

    __slots__ = (
        "_changed_at",
        "_errors",
        "_forecast",
        "_hint",
        "_hooks",
        "_limits",
        "_policy",
        "_polls",
        "_since",
        "_since_wall",
        "action",
        "channel_id",
        "last",
        "operation_id",
        "request",
    )

    def __init__(
        self,
        operation_id: str,
        *,
        request: Request | None = None,
        limits: Limits,
        policy: PollPolicy,
        hooks: Sequence[Hook] = (),
        channel_id: str | None = None,
        action: str | None = None,
    ) -> None:
        self.operation_id = operation_id
        self.request = request
        self.channel_id = channel_id
        self.action = action
        self._limits = limits
        self._policy = policy
        self._hooks = hooks
        self._forecast = _NO_FORECAST
        # When the follow began, on the client's clock and on the wall (kept apart: one tuple
        # more per followed operation is memory a fan-out of thousands pays).
        self._since: float | None = None
        self._since_wall: datetime | None = None
        # When the operation was last seen to change (or the follow began or resumed).
        self._changed_at = 0.0
        self._polls = 0
        self._errors = 0
        self._hint: float | None = None
        self.last: Progress | None = None

    @property
    def started(self) -> bool:
        return self._since is not None

    @property
    def done(self) -> bool:
        """The operation was seen ``completed`` or ``failed``."""
        last = self.last
        return last is not None and last.operation.is_terminal

    @property
    def polls(self) -> int:
        return self._polls

    @property
    def deadline(self) -> float | None:
        """When the follow ends (the client's clock): the total deadline or, if sooner, the
        stall deadline; ``None`` without either or before the start."""
        since = self._since
        if since is None:
            return None
        timeout, stall = self._limits.timeout, self._limits.stall_timeout
        if stall is None:
            return None if timeout is None else since + timeout
        stalled = self._changed_at + stall
        return stalled if timeout is None else min(since + timeout, stalled)

    @property
    def max_silence(self) -> float | None:
        return self._limits.max_silence

    @property
    def policy(self) -> PollPolicy:
        return self._policy

    @property
    def label(self) -> str:
        """The operation as error messages name it."""
        if self.channel_id is None:
            return f"bulk operation {self.operation_id}"
        return f"bulk operation {self.operation_id} on channel {self.channel_id}"

    # -- what the follower feeds in ------------------------------------------------------

    def begin(
        self,
        now: float,
        wall: datetime,
        initial: BulkOperation | None,
        *,
        rng: Callable[[], float],
    ) -> Decision:
        """Start following at ``now`` (``wall`` is the same instant as a datetime), from the
        operation as already known (``initial``) if any."""
        self._since, self._since_wall = now, wall
        self._changed_at = now
        if initial is not None:
            return self._operation(now, with_context(initial, self.channel_id, self.action), rng)
        return self._wait(now, rng)

    def resume(self, now: float, *, rng: Callable[[], float]) -> Decision:
        """Where a follow interrupted (cancelled, or ended by an error) picks up again: the
        stall deadline counts from here."""
        self._changed_at = now
        return self._wait(now, rng)

    def answered(self, now: float, answer: Answer, *, rng: Callable[[], float]) -> Decision:
        """The decision after a poll that got ``answer``: the operation it carries (with this
        follow's channel and action), or its typed error, and the server's Retry-After."""
        self._polls += 1
        self._hint = answer.retry_after
        try:
            operation = operation_from_answer(
                answer, channel_id=self.channel_id, action=self.action
            )
        except ResponseValidationError as exc:
            return self._error(now, exc, rng, transient=answer.ok and unreadable(answer.body))
        except KnockError as exc:
            return self._error(now, exc, rng)
        if operation.id != self.operation_id:
            error = ResponseValidationError(
                f"polling bulk operation {self.operation_id} answered operation "
                f"{operation.id}: the answer is about another operation",
                errors=[f"expected id {self.operation_id!r} @ $.id, got {operation.id!r}"],
                status=answer.status,
                request_id=answer.request_id,
            )
            return self._error(now, error, rng)
        self._errors = 0
        return self._operation(now, operation, rng)

    def unanswered(self, now: float, error: BaseException, *, rng: Callable[[], float]) -> Decision:
        """The decision after a poll that raised ``error`` instead of getting an answer."""
        self._polls += 1
        self._hint = None
        return self._error(now, error, rng)

    # -- the steps ----------------------------------------------------------------------

    def _next_poll(self, now: float, rng: Callable[[], float]) -> float | None:
        """The one deadline decision: when to poll next, ``None`` once the deadline has
        passed. The last poll lands on the deadline, so a finish just before it is seen."""
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            return None
        until = now + follow_delay(
            self._policy, self._polls, self._forecast, now, hint=self._hint, rng=rng
        )
        return until if deadline is None else min(until, deadline)

    def _wait(self, now: float, rng: Callable[[], float]) -> WaitUntil | GiveUp:
        until = self._next_poll(now, rng)
        return self._give_up(self.timeout_error()) if until is None else WaitUntil(until)

    def _wall(self, now: float) -> datetime:
        assert self._since is not None
        assert self._since_wall is not None
        return self._since_wall + timedelta(seconds=now - self._since)

    def _operation(
        self, now: float, operation: BulkOperation, rng: Callable[[], float]
    ) -> Decision:
        previous = self.last
        self.last = progress = observe(operation, self._wall(now), previous)
        if operation.is_terminal:
            if self._hooks:
                self._observed(progress, None)
            return Finished(progress)
        if self._policy.eta:
            self._forecast = self._forecast.observe(
                now, operation.processed_rows, operation.estimated_total_rows
            )
        changed = previous is None or has_changed(previous.operation, operation)
        if changed:
            self._changed_at = now  # the stall deadline moves on
        until = self._next_poll(now, rng)
        if until is None:
            return self._give_up(self.timeout_error())
        if self._hooks:
            self._observed(progress, self._wall(until))
        if changed or self._policy.yield_unchanged:
            return Changed(progress, until)
        return WaitUntil(until)

    def _observed(self, progress: Progress, next_poll_at: datetime | None) -> None:
        emit(
            self._hooks,
            PollObserved(
                operation_id=self.operation_id,
                status=progress.status.value,
                fraction=progress.fraction,
                next_poll_at=next_poll_at,
            ),
        )

    def _error(
        self,
        now: float,
        error: BaseException,
        rng: Callable[[], float],
        *,
        transient: bool = False,
    ) -> Decision:
        if isinstance(error, DeadlineError):  # the limiter could not send it in time
            return self._give_up(self.timeout_error())
        if not isinstance(error, KnockError):
            # A bug or an absurd answer: end this follow with a typed error naming it.
            return self._give_up(
                KnockError(f"following {self.label} failed: {type(error).__name__}: {error}")
            )
        if not (transient or _transient(error)):
            return self._give_up(error)
        self._errors += 1
        if self._errors > self._policy.error_budget:
            self._errors = 0  # a resumed poll starts with a fresh budget
            return self._give_up(error)
        if self._hooks:
            emit(self._hooks, poll_error_ridden_out(self.operation_id, error, self._errors))
        return self._wait(now, rng)

    # -- the ends of a follow ------------------------------------------------------------

    def _give_up(self, error: KnockError) -> GiveUp:
        """The decision to end with ``error``, told to the hooks (a span opened for this
        follow must end too)."""
        if self._hooks and self.last is not None:
            emit(self._hooks, FollowStopped(
                operation_id=self.operation_id, reason="gave_up", error_type=type(error).__name__
            ))  # fmt: skip
        return GiveUp(error)

    def give_up(self, error: KnockError) -> GiveUp:
        """``GiveUp(error)`` for an error the follower met outside this state (a bug in one
        operation's step of a fan-out), told to the hooks as any other."""
        return self._give_up(error)

    def stopped(self) -> None:
        """The follower stopped following before the end (a ``break``, a cancellation,
        ``aclose()``): told to the hooks, if this follow had reported a snapshot."""
        if self._hooks and self.last is not None and not self.done:
            emit(self._hooks, FollowStopped(
                operation_id=self.operation_id, reason="stopped", error_type=None
            ))  # fmt: skip

    # -- the errors that end a follow -----------------------------------------------------

    def timeout_error(self) -> PollTimeoutError:
        """The error for a follow past its deadline, with the last snapshot: "stalled" when
        the stall deadline came first."""
        state = f"last seen {self.last.status.value}" if self.last else "never seen"
        timeout, stall = self._limits.timeout, self._limits.stall_timeout
        since = self._since or 0.0
        stalled = stall is not None and (
            timeout is None or self._changed_at + stall < since + timeout
        )
        what = (
            f"stalled: no change for {stall}s" if stalled else f"did not finish within {timeout}s"
        )
        return PollTimeoutError(
            f"{self.label} {what} ({state}); it goes on "
            f"server-side: poll({self.operation_id!r}) resumes",
            progress=self.last,
            operation_id=self.operation_id,
            stalled_for=stall if stalled else None,
        )

    def failure_error(self) -> BulkOperationFailedError | None:
        """The error for an operation that ended ``failed``; ``None`` for any other state."""
        last = self.last
        if last is None or last.operation.status != BulkOperationStatus.FAILED:
            return None
        operation = last.operation
        return BulkOperationFailedError(
            f"{self.label} failed after {operation.processed_rows} of "
            f"~{operation.estimated_total_rows} rows ({operation.error_count} errors)",
            progress=last,
            operation_id=operation.id,
        )
