"""Bulk operations processed over time, in memory, on a manual clock."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knock_async._models import (
    BulkAction,
    BulkOperation,
    BulkOperationStatus,
    BulkUpdateMessagesForChannelRequest,
    DeliveryStatus,
    ErrorItem,
)
from knock_async.testing import ChannelType, ManualClock, Message, ProcessingSettings
from knock_async.testing._operations import OperationEngine, OperationPlan
from knock_async.testing._seed import generate_messages
from knock_async.testing._store import MessageStore

R = BulkUpdateMessagesForChannelRequest
START = datetime(2025, 1, 1, tzinfo=UTC)
CH_A = "00000000-0000-4000-8000-00000000000a"
CH_B = "00000000-0000-4000-8000-00000000000b"


@attrs.define
class World:
    store: MessageStore
    clock: ManualClock
    engine: OperationEngine
    failing: set[str]

    def add(self, channel_id: str, count: int, *, seed: int = 0, **overrides: Any) -> list[Message]:
        channel = self.store.channel(channel_id)
        out = []
        for message in generate_messages(
            channel,
            count,
            seed=seed,
            now=self.clock.now(),
            new_id=lambda: self.store.next_message_id(channel_id),
        ):
            out.append(self.store.add(attrs.evolve(message, **overrides)))
        return out

    def at(self, seconds: float) -> None:
        self.clock.set(START + timedelta(seconds=seconds))
        self.engine.advance()


def world(
    *, kinds: tuple[ChannelType, ...] = (ChannelType.IN_APP_FEED,), **settings_: Any
) -> World:
    store = MessageStore()
    clock = ManualClock(START)
    for channel_id, kind in zip((CH_A, CH_B), kinds, strict=False):
        store.add_channel(channel_id, kind)
    failing: set[str] = set()
    defaults: dict[str, Any] = {"rows_per_second": 100.0, "batch_size": 10, "queue_delay": 0.05}
    engine = OperationEngine(
        store,
        clock,
        ProcessingSettings(**{**defaults, **settings_}),
        message_fails=failing.__contains__,
    )
    return World(store, clock, engine, failing)


def snapshot(w: World, op: BulkOperation) -> BulkOperation:
    got = w.engine.get(op.id)
    assert got is not None
    return got


def test_timeline_queued_processing_completed() -> None:
    """25 rows at 100 rows/s in batches of 10 after a 50 ms queue: exact counts and times."""
    w = world()
    w.add(CH_A, 25, archived_at=None)
    op = w.engine.submit(CH_A, BulkAction.ARCHIVE, R(), progress_base="http://h:1")
    assert op.status is BulkOperationStatus.QUEUED
    assert op.estimated_total_rows == 25
    assert op.progress_path == f"http://h:1/v1/bulk_operations/{op.id}"
    assert op.inserted_at == op.updated_at == START
    assert op.started_at is None

    w.at(0.049)
    assert snapshot(w, op).status is BulkOperationStatus.QUEUED
    w.at(0.05)
    got = snapshot(w, op)
    assert got.status is BulkOperationStatus.PROCESSING
    assert got.started_at == START + timedelta(seconds=0.05)
    assert got.processed_rows == 0
    w.at(0.149)
    assert snapshot(w, op).processed_rows == 0
    w.at(0.15)
    got = snapshot(w, op)
    assert (got.processed_rows, got.success_count) == (10, 10)
    assert got.updated_at == START + timedelta(seconds=0.15)
    w.at(0.25)
    assert snapshot(w, op).processed_rows == 20
    w.at(10)
    got = snapshot(w, op)
    assert got.status is BulkOperationStatus.COMPLETED
    assert (got.processed_rows, got.success_count, got.error_count) == (25, 25, 0)
    assert got.completed_at == got.updated_at == START + timedelta(seconds=0.30)
    assert got.failed_at is None
    assert all(
        m.archived_at == START + timedelta(seconds=0.15) for m in w.store.messages(CH_A)[:10]
    )
    assert all(
        m.archived_at == START + timedelta(seconds=0.30) for m in w.store.messages(CH_A)[20:]
    )
    assert w.engine.next_event_time() is None


def test_zero_rows_complete_when_started() -> None:
    """An operation that matches nothing completes as soon as it leaves the queue."""
    w = world()
    w.add(CH_A, 5)
    op = w.engine.submit(CH_A, BulkAction.READ, R(recipient_ids=[]))
    assert op.estimated_total_rows == 0
    w.at(0.05)
    got = snapshot(w, op)
    assert got.status is BulkOperationStatus.COMPLETED
    assert got.started_at == got.completed_at
    assert got.processed_rows == 0


def test_infinite_speed_completes_at_start() -> None:
    """rows_per_second=inf applies every batch the moment processing starts."""
    w = world(rows_per_second=math.inf, queue_delay=0)
    w.add(CH_A, 50)
    op = w.engine.submit(CH_A, BulkAction.DELETE, R())
    w.at(0)
    assert snapshot(w, op).status is BulkOperationStatus.COMPLETED
    assert w.store.count(CH_A) == 0


def test_delete_removes_messages_and_counts_them() -> None:
    """A delete operation removes every selected message; the others stay."""
    w = world()
    w.add(CH_A, 40)
    expected = sum(m.archived_at is not None for m in w.store.messages(CH_A))
    op = w.engine.submit(CH_A, BulkAction.DELETE, R(archived="only"))
    w.at(100)
    assert snapshot(w, op).success_count == expected
    assert all(m.archived_at is None for m in w.store.messages(CH_A))
    assert w.store.count(CH_A) == 40 - expected


def test_operations_on_different_channels_do_not_block_each_other() -> None:
    """A large operation on one channel does not delay a small one on another."""
    w = world(kinds=(ChannelType.IN_APP_FEED, ChannelType.IN_APP_FEED))
    w.add(CH_A, 1000)
    w.add(CH_B, 10)
    big = w.engine.submit(CH_A, BulkAction.READ, R())
    small = w.engine.submit(CH_B, BulkAction.READ, R())
    w.at(0.15)
    assert snapshot(w, small).status is BulkOperationStatus.COMPLETED
    assert snapshot(w, big).processed_rows == 10
    assert snapshot(w, big).status is BulkOperationStatus.PROCESSING


def test_retention_window_skips_old_messages_on_email() -> None:
    """On an email channel, messages older than the retention window are not updated."""
    w = world(kinds=(ChannelType.EMAIL, ChannelType.IN_APP_FEED), retention=timedelta(days=30))
    w.add(CH_A, 200, read_at=None)
    w.add(CH_B, 200, read_at=None)
    cutoff = START - timedelta(days=30)
    email = w.engine.submit(CH_A, BulkAction.READ, R())
    feed = w.engine.submit(CH_B, BulkAction.READ, R())
    w.at(100)
    recent = [m for m in w.store.messages(CH_A) if m.inserted_at >= cutoff]
    old = [m for m in w.store.messages(CH_A) if m.inserted_at < cutoff]
    assert recent
    assert old
    assert all(m.read_at is not None for m in recent)
    assert all(m.read_at is None for m in old)
    assert snapshot(w, email).success_count == len(recent)
    assert snapshot(w, feed).success_count == 200
    assert all(m.read_at is not None for m in w.store.messages(CH_B))


def test_estimate_starts_at_the_channel_size_and_ends_exact() -> None:
    """The estimate at submission is the channel's size (no scan); messages added while
    queued are processed, and the final estimate is the rows processed."""
    w = world()
    w.add(CH_A, 10)
    op = w.engine.submit(CH_A, BulkAction.SEEN, R())
    assert op.estimated_total_rows == 10
    w.add(CH_A, 5, seed=1)
    w.at(100)
    got = snapshot(w, op)
    assert got.estimated_total_rows == got.processed_rows == got.success_count == 15


def test_estimate_is_fixed_when_processing_starts() -> None:
    """With a filter, the estimate at submission is every candidate row; once processing
    starts it is the number of matching rows, and it stays so, batch after batch, to the end."""
    w = world(batch_size=10)
    w.add(CH_A, 60, seed=3)
    matching = sum(m.tenant is not None for m in w.store.messages(CH_A))
    op = w.engine.submit(CH_A, BulkAction.READ, R(has_tenant=True))
    assert op.estimated_total_rows == 60
    estimates = set()
    processed = []
    for step in range(1, 40):
        w.at(0.05 + step * 0.01)
        got = snapshot(w, op)
        estimates.add(got.estimated_total_rows)
        processed.append(got.processed_rows)
    assert estimates == {matching}
    assert len(set(processed)) > 2  # seen over several batches
    w.at(100)
    final = snapshot(w, op)
    assert final.status == "completed"
    assert final.success_count == final.estimated_total_rows == matching < 60


def test_a_row_changed_meanwhile_keeps_the_estimate_until_the_end() -> None:
    """A matching row deleted after the start is skipped: the estimate holds while the
    operation runs, and the completed operation reports the rows it processed."""
    w = world(batch_size=5)
    messages = w.add(CH_A, 20)
    op = w.engine.submit(CH_A, BulkAction.READ, R())
    w.at(0.06)
    assert snapshot(w, op).estimated_total_rows == 20
    w.store.delete(messages[-1].id)
    w.at(0.1)
    running = snapshot(w, op)
    assert running.status == "processing"
    assert running.estimated_total_rows == 20
    w.at(100)
    final = snapshot(w, op)
    assert final.estimated_total_rows == final.processed_rows == 19


def test_a_budget_processes_in_slices_with_the_same_result() -> None:
    """advance(budget=N) stops after about N rows and says more is due; slices add up to the
    same counts and timestamps as one advance."""
    results = []
    for budget in (None, 7):
        w = world(batch_size=25)
        w.add(CH_A, 100)
        op = w.engine.submit(CH_A, BulkAction.READ, R())
        w.clock.advance(100)
        slices = 0
        while w.engine.advance(budget=budget):
            slices += 1
        results.append((slices, attrs.evolve(snapshot(w, op), id="")))
    (unbounded, whole), (sliced, parts) = results
    assert unbounded == 0
    assert sliced >= 100 // 7
    assert whole == parts


def test_estimate_jitter_is_bounded_and_seeded() -> None:
    """With estimate_jitter=0.2 the estimate is within 20% of the count and reproducible."""
    estimates = []
    for _ in range(2):
        w = world(estimate_jitter=0.2)
        w.add(CH_A, 500)
        estimates.append(
            [w.engine.submit(CH_A, BulkAction.SEEN, R()).estimated_total_rows for _ in range(5)]
        )
    assert estimates[0] == estimates[1]
    assert all(400 <= e <= 600 for e in estimates[0])
    assert len(set(estimates[0])) > 1


def test_planned_failure_part_way() -> None:
    """fail_after_rows=15: 15 rows updated, the 16th reported in error_items, status failed."""
    w = world()
    messages = w.add(CH_A, 40, read_at=None)
    op = w.engine.submit(CH_A, BulkAction.READ, R(), plan=OperationPlan(fail_after_rows=15))
    w.at(100)
    got = snapshot(w, op)
    assert got.status is BulkOperationStatus.FAILED
    assert got.failed_at == START + timedelta(seconds=0.05 + 15 / 100)
    assert got.completed_at is None
    assert (got.processed_rows, got.success_count, got.error_count) == (16, 15, 1)
    assert got.error_items == (ErrorItem(id=messages[15].id),)
    read = [m.read_at is not None for m in w.store.messages(CH_A)]
    assert read == [True] * 15 + [False] * 25
    assert w.engine.next_event_time() is None


def test_planned_stuck_operation_never_finishes() -> None:
    """stuck_after_rows=20: processing stops at 20 rows and the status stays processing."""
    w = world()
    w.add(CH_A, 40)
    op = w.engine.submit(CH_A, BulkAction.SEEN, R(), plan=OperationPlan(stuck_after_rows=20))
    w.at(10_000)
    got = snapshot(w, op)
    assert got.status is BulkOperationStatus.PROCESSING
    assert got.processed_rows == 20
    assert got.updated_at == START + timedelta(seconds=0.25)
    assert w.engine.next_event_time() is None


def test_plans_apply_even_with_fewer_rows() -> None:
    """A planned failure after more rows than there are still ends the operation failed."""
    w = world()
    w.add(CH_A, 5)
    op = w.engine.submit(CH_A, BulkAction.SEEN, R(), plan=OperationPlan(fail_after_rows=50))
    w.at(10)
    got = snapshot(w, op)
    assert got.status is BulkOperationStatus.FAILED
    assert (got.processed_rows, got.error_count, got.error_items) == (5, 0, ())


def test_failing_messages_are_error_items_and_the_operation_completes() -> None:
    """Messages set to fail are counted in error_count/error_items; the others are updated."""
    w = world()
    messages = w.add(CH_A, 30, seen_at=None)
    w.failing.update({messages[3].id, messages[17].id})
    op = w.engine.submit(CH_A, BulkAction.SEEN, R())
    w.at(100)
    got = snapshot(w, op)
    assert got.status is BulkOperationStatus.COMPLETED
    assert (got.processed_rows, got.success_count, got.error_count) == (30, 28, 2)
    assert [item.id for item in got.error_items] == [messages[3].id, messages[17].id]
    assert w.store.get(messages[3].id) == messages[3]


def test_rows_changed_meanwhile_are_rechecked() -> None:
    """A row another operation deleted before this one reached it is skipped, not updated,
    and not processed either: processed_rows = success_count + error_count, as Knock counts."""
    w = world()
    w.add(CH_A, 30)
    deleting = w.engine.submit(CH_A, BulkAction.DELETE, R())
    w.at(0.01)
    reading = w.engine.submit(CH_A, BulkAction.READ, R())
    w.at(100)
    assert snapshot(w, deleting).success_count == 30
    got = snapshot(w, reading)
    assert got.status is BulkOperationStatus.COMPLETED
    assert got.success_count < 30
    assert got.processed_rows == got.success_count + got.error_count
    assert got.name == "messages.read"
    assert w.store.count(CH_A) == 0


def test_unknown_channel_and_operation() -> None:
    """Submitting to an unknown channel raises KeyError; an unknown id reads as None."""
    w = world()
    with pytest.raises(KeyError):
        w.engine.submit("00000000-0000-4000-8000-000000000000", BulkAction.READ, R())
    assert w.engine.get("nope") is None


def run(reads: list[float]) -> tuple[list[tuple[Any, ...]], list[Message]]:
    """Three overlapping operations, looked at at ``reads`` seconds, then at the end."""
    w = world(kinds=(ChannelType.EMAIL, ChannelType.IN_APP_FEED), batch_size=7)
    w.add(CH_A, 60, seed=3)
    w.add(CH_B, 60, seed=4)
    ops = [
        w.engine.submit(CH_A, BulkAction.READ, R(archived="exclude")),
        w.engine.submit(CH_A, BulkAction.ARCHIVE, R(engagement_status="read")),
        w.engine.submit(CH_B, BulkAction.DELETE, R(has_tenant=False)),
    ]
    for when in sorted(reads):
        w.at(when)
    w.at(100)
    final = [attrs.astuple(attrs.evolve(snapshot(w, op), id="", progress_path=None)) for op in ops]
    return final, w.store.messages(CH_A) + w.store.messages(CH_B)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=2, allow_nan=False), max_size=8))
def test_results_do_not_depend_on_when_anyone_looks(reads: list[float]) -> None:
    """Processing is computed from the clock alone: looking often or never changes nothing."""
    assert run(reads) == run([])


def test_explicit_message_is_selected_by_its_delivery_status() -> None:
    """A message stored by hand is counted by a filter on the delivery status it was given."""
    w = world()
    msg = Message(
        id="x",
        channel_id=CH_A,
        channel_type=ChannelType.IN_APP_FEED,
        recipient_id="u",
        workflow="w",
        tenant=None,
        delivery_status=DeliveryStatus.BOUNCED,
        inserted_at=START,
    )
    w.store.add(msg)
    op = w.engine.submit(CH_A, BulkAction.SEEN, R(delivery_status="bounced"))
    assert op.estimated_total_rows == 1
