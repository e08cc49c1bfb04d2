"""The follow state machine: one poll's outcome in, one decision out. No socket, no event loop."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import knock_async as ka
from knock_async._convert import structure_operation
from knock_async._errors import DeadlineError
from knock_async._follow import (
    Changed,
    Finished,
    Follow,
    GiveUp,
    PollPolicy,
    WaitUntil,
    read_response,
)
from knock_async._responses import Answer
from tests._support import OPERATION_ID, operation

T0 = 100.0
WALL = datetime(2024, 5, 22, 12, 0, tzinfo=UTC)
POLICY = PollPolicy(jitter=0.0, error_budget=2)


def rng() -> float:
    return 0.5


def op(**changes: Any) -> ka.BulkOperation:
    return structure_operation(operation(**changes))


RUNNING = op(status="processing", processed_rows=10)
RUNNING_MORE = op(status="processing", processed_rows=20)
DONE = op(status="completed", processed_rows=1000, success_count=1000)
FAILED = op(status="failed", processed_rows=5)


def started(timeout: float | None = 60.0, policy: PollPolicy = POLICY) -> Follow:
    follow = Follow(OPERATION_ID, timeout=timeout, policy=policy)
    follow.start(T0, WALL, RUNNING, rng=rng)
    return follow


def server_error(status: int = 503) -> ka.APIError:
    cls = ka.InternalServerError if status >= 500 else ka.APIError
    return cls("boom", status=status)


# -- table: (outcome kwargs at a time) -> the decision's kind and its time ---------------------

CASES: list[tuple[str, dict[str, Any], type, float | None]] = [
    ("unchanged: wait the schedule", {"operation": RUNNING}, WaitUntil, 1.5),
    ("changed: a snapshot, then wait", {"operation": RUNNING_MORE}, Changed, 1.5),
    ("completed: finished", {"operation": DONE}, Finished, None),
    ("failed: finished too (data)", {"operation": FAILED}, Finished, None),
    ("5xx within budget: wait", {"error": server_error()}, WaitUntil, 1.5),
    ("404: give up with it", {"error": ka.NotFoundError("x", status=404)}, GiveUp, None),
    ("schema break: give up", {"error": ka.ResponseValidationError("bad")}, GiveUp, None),
    (
        "connection error: transient",
        {"error": ka.APIConnectionError("down", failure=ka.Failure.CONNECTION)},
        WaitUntil,
        1.5,
    ),
    (
        "Retry-After on a 200 replaces the schedule",
        {"operation": RUNNING, "hint": 7.0},
        WaitUntil,
        7,
    ),
    ("a tiny hint is raised to min_hint", {"operation": RUNNING, "hint": 0.0}, WaitUntil, 0.5),
    (
        "a 429's day-long hint waits max_hint",
        {"error": ka.RateLimitError("slow", status=429, retry_after=86_400.0)},
        WaitUntil,
        POLICY.max_hint,
    ),
    (
        "a 429 without a hint follows the schedule",
        {"error": ka.RateLimitError("slow", status=429)},
        WaitUntil,
        1.5,
    ),
]


@pytest.mark.parametrize(("name", "outcome", "kind", "wait"), CASES, ids=[c[0] for c in CASES])
def test_one_poll_outcome_gives_one_decision(
    name: str, outcome: dict[str, Any], kind: type, wait: float | None
) -> None:
    """Each outcome of a poll maps to the decision the policy says, with its wait (the plain
    backoff's: the ETA-aware waits are tested in test_schedule and below)."""
    policy = PollPolicy(jitter=0.0, error_budget=2, max_hint=120, eta=False)
    follow = started(timeout=None, policy=policy)
    now = T0 + 1.0  # the second poll (the first was the start): x1.5 of initial_delay next
    decision = follow.outcome(now, rng=rng, **outcome)
    assert type(decision) is kind
    if wait is not None:
        assert isinstance(decision, WaitUntil | Changed)
        assert decision.until == pytest.approx(now + wait)
    if isinstance(decision, GiveUp):
        assert decision.error is outcome["error"]
    assert follow.last is not None  # the last snapshot is never lost


def test_error_budget_counts_errors_in_a_row_and_resets() -> None:
    """Transient errors are ridden out up to error_budget in a row; a success resets the
    count; one more than the budget gives up with that error, and a resumed poll starts with a
    fresh budget."""
    follow = started(timeout=None)
    now = T0
    for _ in range(2):
        now += 1
        assert isinstance(follow.outcome(now, error=server_error(), rng=rng), WaitUntil)
    assert isinstance(follow.outcome(now + 1, operation=RUNNING, rng=rng), WaitUntil)
    for _ in range(2):
        now += 1
        assert isinstance(follow.outcome(now, error=server_error(), rng=rng), WaitUntil)
    last = server_error(502)
    decision = follow.outcome(now + 1, error=last, rng=rng)
    assert decision == GiveUp(last)
    assert isinstance(follow.outcome(now + 2, error=server_error(), rng=rng), WaitUntil)


def test_deadline_clamps_the_wait_and_then_gives_up_with_a_timeout() -> None:
    """The next poll never lands after the deadline; a poll at or past it ends the follow
    with PollTimeoutError carrying the last snapshot and the id to resume."""
    follow = started(timeout=10.0, policy=PollPolicy(jitter=0.0, initial_delay=8, max_delay=30))
    decision = follow.outcome(T0 + 5, operation=RUNNING, rng=rng)
    assert decision == WaitUntil(T0 + 10)
    decision = follow.outcome(T0 + 10, error=server_error(), rng=rng)
    assert isinstance(decision, GiveUp)
    error = decision.error
    assert isinstance(error, ka.PollTimeoutError)
    assert error.operation_id == OPERATION_ID
    assert error.progress is not None
    assert error.progress.operation == RUNNING
    # Resuming past the deadline gives up again, at once.
    assert isinstance(follow.resume(T0 + 11, rng=rng), GiveUp)


def test_a_limiter_past_the_deadline_ends_the_follow_as_a_timeout() -> None:
    """When the client's own limiter cannot send the poll before the deadline, the follow
    ends with PollTimeoutError at once, spending no error budget on it."""
    follow = started(timeout=10.0)
    decision = follow.outcome(T0 + 1, error=DeadlineError("queued past it"), rng=rng)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, ka.PollTimeoutError)


def test_an_answer_about_another_operation_is_refused() -> None:
    """A poll answered with another operation's id gives up with a ResponseValidationError
    naming both ids; the other operation is never reported as this one."""
    follow = started()
    other = op(id="another-operation", status="completed", processed_rows=5)
    decision = follow.outcome(T0 + 1, operation=other, rng=rng)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, ka.ResponseValidationError)
    assert OPERATION_ID in str(decision.error)
    assert "another-operation" in str(decision.error)
    assert follow.last is not None
    assert follow.last.operation is RUNNING
    assert not follow.done


def test_any_other_exception_becomes_a_typed_error() -> None:
    """An exception that is not a KnockError (a bug, an absurd value) ends the follow with a
    KnockError naming it, so a fan-out can report it as that channel's error."""
    follow = started()
    decision = follow.outcome(T0 + 1, error=OverflowError("too big"), rng=rng)
    assert isinstance(decision, GiveUp)
    assert type(decision.error) is ka.KnockError
    assert "OverflowError: too big" in str(decision.error)


def test_start_without_a_known_operation_waits_or_times_out() -> None:
    """Started from an id, the first poll is scheduled; with a zero timeout it gives up."""
    follow = Follow(OPERATION_ID, timeout=None, policy=POLICY)
    assert follow.start(T0, WALL, None, rng=rng) == WaitUntil(T0 + 1.0)
    follow = Follow(OPERATION_ID, timeout=0.0, policy=POLICY)
    decision = follow.start(T0, WALL, None, rng=rng)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, ka.PollTimeoutError)


def test_start_with_a_finished_operation_is_finished() -> None:
    """Following an operation already completed needs no poll."""
    follow = Follow(OPERATION_ID, timeout=None, policy=POLICY)
    decision = follow.start(T0, WALL, DONE, rng=rng)
    assert isinstance(decision, Finished)
    assert follow.done
    assert follow.failed() is None
    failed = Follow(OPERATION_ID, timeout=None, policy=POLICY)
    failed.start(T0, WALL, FAILED, rng=rng)
    assert isinstance(failed.failed(), ka.BulkOperationFailedError)


def test_yield_unchanged_makes_every_poll_a_snapshot() -> None:
    """With yield_unchanged an unchanged answer is still a Changed decision."""
    follow = started(policy=PollPolicy(yield_unchanged=True, jitter=0.0))
    assert isinstance(follow.outcome(T0 + 1, operation=RUNNING, rng=rng), Changed)


def test_read_response_splits_operation_error_and_hint() -> None:
    """A raw answer becomes (operation, error, hint): a 200, or a typed error, plus the
    server's Retry-After."""
    import json

    body = json.dumps(operation()).encode()
    operation_, error, hint = read_response(Answer(200, {"retry-after": "3"}, body))
    assert operation_ is not None
    assert error is None
    assert hint == 3.0
    operation_, error, hint = read_response(Answer(429, {"retry-after": "86400"}, b"{}"))
    assert operation_ is None
    assert isinstance(error, ka.RateLimitError)
    assert hint == 86400.0
    operation_, error, hint = read_response(Answer(200, {}, b'{"processed_rows": 1}'))
    assert operation_ is None
    assert isinstance(error, ka.ResponseValidationError)
    assert hint is None


outcomes = st.one_of(
    st.builds(lambda: {"operation": RUNNING}),
    st.builds(lambda: {"operation": RUNNING_MORE}),
    st.builds(lambda h: {"operation": RUNNING, "hint": h}, st.floats(0, 1e9)),
    st.builds(lambda: {"error": server_error()}),
    st.builds(
        lambda h: {"error": ka.RateLimitError("x", status=429, retry_after=h)},
        st.none() | st.floats(0, 1e12),
    ),
)


@given(
    timeout=st.none() | st.floats(0.0, 1e6),
    steps=st.lists(st.tuples(st.floats(0.0, 1e4), outcomes), max_size=30),
)
def test_waits_stay_within_the_deadline_and_max_hint(
    timeout: float | None, steps: list[tuple[float, dict[str, Any]]]
) -> None:
    """Whatever the outcomes and hints, the next poll is never in the past, never past the
    deadline, and never further away than the longest of max_delay, max_eta_delay and
    max_hint."""
    policy = PollPolicy(error_budget=100)
    follow = Follow(OPERATION_ID, timeout=timeout, policy=policy)
    follow.start(T0, WALL, RUNNING, rng=rng)
    now = T0
    for advance, outcome in steps:
        now += advance
        decision = follow.outcome(now, rng=rng, **outcome)
        if isinstance(decision, GiveUp):
            assert timeout is not None
            assert now >= T0 + timeout
            assert isinstance(decision.error, ka.PollTimeoutError)
            break
        assert isinstance(decision, WaitUntil | Changed)
        longest = max(policy.max_delay, policy.max_eta_delay, policy.max_hint)
        assert now <= decision.until <= now + longest
        if timeout is not None:
            assert decision.until <= T0 + timeout
        now = decision.until
