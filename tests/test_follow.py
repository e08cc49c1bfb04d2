"""The follow state machine: one poll's outcome in, one decision out. No socket, no event loop."""

from __future__ import annotations

import json
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
    Decision,
    Finished,
    Follow,
    GiveUp,
    PollPolicy,
    WaitUntil,
    limits,
    unreadable,
)
from knock_async._responses import Answer
from tests._support import CHANNEL_ID, OPERATION_ID, knock_error, operation

T0 = 100.0
WALL = datetime(2024, 5, 22, 12, 0, tzinfo=UTC)
POLICY = PollPolicy(jitter=0.0, error_budget=2)


def rng() -> float:
    return 0.5


def op(**changes: Any) -> ka.BulkOperation:
    return structure_operation(operation(**changes))


def ok(headers: dict[str, str] | None = None, **changes: Any) -> Answer:
    """A 200 answer carrying the operation with ``changes``."""
    return Answer(200, headers or {}, json.dumps(operation(**changes)).encode())


def failing(status: int = 503, headers: dict[str, str] | None = None) -> Answer:
    """An error answer with Knock's error body."""
    return Answer(status, headers or {}, json.dumps(knock_error(status, "boom")).encode())


RUNNING_WIRE: dict[str, Any] = {"status": "processing", "processed_rows": 10}
RUNNING = op(**RUNNING_WIRE)
RUNNING_MORE: dict[str, Any] = {"status": "processing", "processed_rows": 20}
DONE = op(status="completed", processed_rows=1000, success_count=1000)
FAILED = op(status="failed", processed_rows=5)


def started(timeout: float | None = 60.0, policy: PollPolicy = POLICY) -> Follow:
    follow = Follow(OPERATION_ID, limits=limits(timeout, None), policy=policy)
    follow.begin(T0, WALL, RUNNING, rng=rng)
    return follow


def feed(follow: Follow, now: float, outcome: Answer | BaseException) -> Decision:
    """What a follower does with one poll: the answer, or the error raised instead."""
    if isinstance(outcome, Answer):
        return follow.answered(now, outcome, rng=rng)
    return follow.unanswered(now, outcome, rng=rng)


# -- table: (one poll's outcome at a time) -> the decision's kind and its time ----------------

CASES: list[tuple[str, Answer | BaseException, type, float | None]] = [
    ("unchanged: wait the schedule", ok(**RUNNING_WIRE), WaitUntil, 1.5),
    ("changed: a snapshot, then wait", ok(**RUNNING_MORE), Changed, 1.5),
    ("completed: finished", ok(status="completed", processed_rows=1000), Finished, None),
    ("failed: finished too (data)", ok(status="failed", processed_rows=5), Finished, None),
    ("5xx within budget: wait", failing(503), WaitUntil, 1.5),
    ("404: give up with it", failing(404), GiveUp, None),
    ("schema break: give up", Answer(200, {}, b'{"processed_rows": 1}'), GiveUp, None),
    ("a body cut short: transient", Answer(200, {}, b'{"id": "123e4567-e89b'), WaitUntil, 1.5),
    ("an empty 200: transient", Answer(200, {}, b""), WaitUntil, 1.5),
    ("not UTF-8: transient", Answer(200, {}, b"\xff\xfe{}"), WaitUntil, 1.5),
    ("JSON of the wrong kind: give up", Answer(200, {}, b"[1, 2]"), GiveUp, None),
    (
        "connection error: transient",
        ka.APIConnectionError("down", failure=ka.Failure.CONNECTION),
        WaitUntil,
        1.5,
    ),
    (
        "Retry-After on a 200 replaces the schedule",
        ok({"retry-after": "7"}, **RUNNING_WIRE),
        WaitUntil,
        7,
    ),
    ("a tiny hint is raised to min_hint", ok({"retry-after": "0"}, **RUNNING_WIRE), WaitUntil, 0.5),
    (
        "a 429's day-long hint waits max_hint",
        failing(429, {"retry-after": "86400"}),
        WaitUntil,
        POLICY.max_hint,
    ),
    ("a 429 without a hint follows the schedule", failing(429), WaitUntil, 1.5),
    ("a 503's hint is honoured", failing(503, {"retry-after": "4"}), WaitUntil, 4),
]


@pytest.mark.parametrize(("name", "outcome", "kind", "wait"), CASES, ids=[c[0] for c in CASES])
def test_one_poll_outcome_gives_one_decision(
    name: str, outcome: Answer | BaseException, kind: type, wait: float | None
) -> None:
    """Each outcome of a poll maps to the decision the policy says, with its wait (the plain
    backoff's: the ETA-aware waits are tested in test_schedule and below); a server's hint is
    bounded by the policy's min_hint and max_hint here, in the follow state."""
    policy = PollPolicy(jitter=0.0, error_budget=2, max_hint=120, eta=False)
    follow = started(timeout=None, policy=policy)
    now = T0 + 1.0  # the second poll (the first was the start): x1.5 of initial_delay next
    decision = feed(follow, now, outcome)
    assert type(decision) is kind
    if wait is not None:
        assert isinstance(decision, WaitUntil | Changed)
        assert decision.until == pytest.approx(now + wait)
    if isinstance(decision, GiveUp):
        assert isinstance(decision.error, ka.KnockError)
        if isinstance(outcome, Answer):
            assert decision.error.status == outcome.status
    assert follow.last is not None  # the last snapshot is never lost


def test_unreadable_is_not_json_at_all() -> None:
    """The line between transient and fatal: a body that is not JSON (empty, cut short, not
    UTF-8, a proxy's page) is unreadable; any well-formed JSON, whatever its shape, is read."""
    for body in (b"", b"{", b'{"id": "x", "stat', b"<html>502</html>", b"\xff", b"nul"):
        assert unreadable(body), body
    for body in (b"{}", b"[]", b"null", b"3", b'{"id": "x"}', b"[" * 100_000 + b"]" * 100_000):
        assert not unreadable(body), body[:20]


def test_unreadable_bodies_spend_the_error_budget() -> None:
    """Unreadable 200s are ridden out like 503s, up to error_budget in a row, then the last
    one ends the follow as the ResponseValidationError it is."""
    follow = started(timeout=None)
    cut = Answer(200, {"x-request-id": "req_9"}, b'{"id": "123')
    for now in (T0 + 1, T0 + 2):
        assert isinstance(follow.answered(now, cut, rng=rng), WaitUntil)
    decision = follow.answered(T0 + 3, cut, rng=rng)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, ka.ResponseValidationError)
    assert decision.error.request_id == "req_9"


def test_error_budget_counts_errors_in_a_row_and_resets() -> None:
    """Transient errors are ridden out up to error_budget in a row; a success resets the
    count; one more than the budget gives up with that error, and a resumed poll starts with a
    fresh budget."""
    follow = started(timeout=None)
    now = T0
    for _ in range(2):
        now += 1
        assert isinstance(follow.answered(now, failing(), rng=rng), WaitUntil)
    assert isinstance(follow.answered(now + 1, ok(**RUNNING_WIRE), rng=rng), WaitUntil)
    for _ in range(2):
        now += 1
        assert isinstance(follow.answered(now, failing(), rng=rng), WaitUntil)
    decision = follow.answered(now + 1, failing(502), rng=rng)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, ka.InternalServerError)
    assert decision.error.status == 502
    assert isinstance(follow.answered(now + 2, failing(), rng=rng), WaitUntil)


def test_deadline_clamps_the_wait_and_then_gives_up_with_a_timeout() -> None:
    """The next poll never lands after the deadline; a poll at or past it ends the follow
    with PollTimeoutError carrying the last snapshot and the id to resume."""
    follow = started(timeout=10.0, policy=PollPolicy(jitter=0.0, initial_delay=8, max_delay=30))
    decision = follow.answered(T0 + 5, ok(**RUNNING_WIRE), rng=rng)
    assert decision == WaitUntil(T0 + 10)
    assert follow.deadline == T0 + 10
    decision = follow.answered(T0 + 10, failing(), rng=rng)
    assert isinstance(decision, GiveUp)
    error = decision.error
    assert isinstance(error, ka.PollTimeoutError)
    assert error.operation_id == OPERATION_ID
    assert error.progress is not None
    assert error.progress.operation == RUNNING
    assert "did not finish within 10.0s (last seen processing)" in str(error)
    assert error.stalled_for is None  # the total deadline, not a stall
    # Resuming past the deadline gives up again, at once.
    assert isinstance(follow.resume(T0 + 11, rng=rng), GiveUp)


def test_a_limiter_past_the_deadline_ends_the_follow_as_a_timeout() -> None:
    """When the client's own limiter cannot send the poll before the deadline, the follow
    ends with PollTimeoutError at once, spending no error budget on it."""
    follow = started(timeout=10.0)
    decision = follow.unanswered(T0 + 1, DeadlineError("queued past it"), rng=rng)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, ka.PollTimeoutError)


def test_an_answer_about_another_operation_is_refused() -> None:
    """A poll answered with another operation's id gives up with a ResponseValidationError
    naming both ids; the other operation is never reported as this one."""
    follow = started()
    other = ok(id="another-operation", status="completed", processed_rows=5)
    decision = follow.answered(T0 + 1, other, rng=rng)
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
    decision = follow.unanswered(T0 + 1, OverflowError("too big"), rng=rng)
    assert isinstance(decision, GiveUp)
    assert type(decision.error) is ka.KnockError
    assert "OverflowError: too big" in str(decision.error)


def test_start_without_a_known_operation_waits_or_times_out() -> None:
    """Started from an id, the first poll is scheduled; with a zero timeout it gives up."""
    follow = Follow(OPERATION_ID, limits=limits(None, None), policy=POLICY)
    assert follow.begin(T0, WALL, None, rng=rng) == WaitUntil(T0 + 1.0)
    follow = Follow(OPERATION_ID, limits=limits(0.0, None), policy=POLICY)
    decision = follow.begin(T0, WALL, None, rng=rng)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, ka.PollTimeoutError)


def test_start_with_a_finished_operation_is_finished() -> None:
    """Following an operation already completed needs no poll; one that ended failed gives
    the error that says so."""
    follow = Follow(OPERATION_ID, limits=limits(None, None), policy=POLICY)
    decision = follow.begin(T0, WALL, DONE, rng=rng)
    assert isinstance(decision, Finished)
    assert follow.done
    assert follow.failure_error() is None
    failed = Follow(OPERATION_ID, limits=limits(None, None), policy=POLICY)
    failed.begin(T0, WALL, FAILED, rng=rng)
    assert isinstance(failed.failure_error(), ka.BulkOperationFailedError)


def test_yield_unchanged_makes_every_poll_a_snapshot() -> None:
    """With yield_unchanged an unchanged answer is still a Changed decision."""
    follow = started(policy=PollPolicy(yield_unchanged=True, jitter=0.0))
    assert isinstance(follow.answered(T0 + 1, ok(**RUNNING_WIRE), rng=rng), Changed)


def test_the_context_is_stamped_onto_every_operation_once() -> None:
    """A follow knows its channel and action: the operation it started from and every one it
    reads from an answer carry them, and its errors name the channel."""
    follow = Follow(
        OPERATION_ID,
        limits=limits(0.0, None),
        policy=POLICY,
        channel_id=CHANNEL_ID,
        action="archive",
    )
    decision = follow.begin(T0, WALL, RUNNING, rng=rng)
    assert isinstance(decision, Changed | GiveUp)
    assert follow.last is not None
    assert (follow.last.operation.channel_id, follow.last.operation.action) == (
        CHANNEL_ID,
        "archive",
    )
    follow = Follow(
        OPERATION_ID, limits=limits(None, None), policy=POLICY, channel_id=CHANNEL_ID, action="read"
    )
    follow.begin(T0, WALL, None, rng=rng)
    decision = follow.answered(T0 + 1, ok(status="failed"), rng=rng)
    assert isinstance(decision, Finished)
    assert decision.progress.handle.channel_id == CHANNEL_ID
    assert decision.progress.handle.action == "read"
    assert f"on channel {CHANNEL_ID}" in str(follow.failure_error())


hints = st.none() | st.floats(0, 1e12).map(lambda h: f"{h:.3f}")


def _with_hint(answer: Answer, hint: str | None) -> Answer:
    return Answer(answer.status, {} if hint is None else {"retry-after": hint}, answer.body)


outcomes = st.one_of(
    st.builds(lambda: ok(**RUNNING_WIRE)),
    st.builds(lambda: ok(**RUNNING_MORE)),
    st.builds(lambda h: _with_hint(ok(**RUNNING_WIRE), h), hints),
    st.builds(lambda: failing(503)),
    st.builds(lambda h: _with_hint(failing(429), h), hints),
    st.builds(lambda: Answer(200, {}, b"{")),
)


@given(
    timeout=st.none() | st.floats(0.0, 1e6),
    steps=st.lists(st.tuples(st.floats(0.0, 1e4), outcomes), max_size=30),
)
def test_waits_stay_within_the_deadline_and_max_hint(
    timeout: float | None, steps: list[tuple[float, Answer]]
) -> None:
    """Whatever the answers and their hints, the next poll is never in the past, never past
    the deadline, and never further away than the longest of max_delay, max_eta_delay and
    max_hint."""
    policy = PollPolicy(error_budget=100)
    follow = Follow(OPERATION_ID, limits=limits(timeout, None), policy=policy)
    follow.begin(T0, WALL, RUNNING, rng=rng)
    now = T0
    for advance, outcome in steps:
        now += advance
        decision = follow.answered(now, outcome, rng=rng)
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
