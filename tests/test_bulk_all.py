"""The ``_all`` methods (any number of items, chunked, paced at tier 1 and followed) against
the emulator with Knock's rate limits on.

The emulator and the client share a FastClock, so tier 1's one request a second per endpoint
is enforced and paced over loopback while the emulated seconds pass ten times faster.
"""

from __future__ import annotations

import itertools
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import knock_async as ka
from knock_async.testing import FastClock, KnockEmulator
from tests._paced import KEY, client, emu, fast

__all__ = ["emu", "fast"]  # fixtures


def starts(emu: KnockEmulator) -> list[Any]:
    """The requests that started an operation (accepted POSTs)."""
    return [r for r in emu.requests if r.method == "POST" and r.status == 200]


class Counted:
    """A generator of users that counts how many it has handed out."""

    def __init__(self, count: int, *, bad_at: int | None = None) -> None:
        self.count = count
        self.bad_at = bad_at
        self.read = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in range(self.count):
            self.read += 1
            yield {"name": "no id"} if index == self.bad_at else {"id": f"u{index}"}


async def test_identify_all_2500_users_three_requests_a_second_apart(
    emu: KnockEmulator, fast: FastClock
) -> None:
    """2,500 users go in three requests (1,000, 1,000, 500) at least a second apart on the
    emulated clock, and the one summary counts 2,500 successes over three completed
    operations named ``users.identify``, each result naming the input's indices it carried."""
    granted: list[float] = []

    class Recording(ka.AdaptiveRateLimiter):
        """The client's limiter, noting the slot it books for each identify request (the
        grant's moment on the clock: the request leaves just after)."""

        def _note(self, tier: ka.Tier | str) -> None:
            if tier == ka.Tier.USERS_IDENTIFY:
                state = self.state(tier)
                granted.append(state.tat - state.interval)

        async def acquire(self, tier: ka.Tier | str, *, deadline: float | None = None) -> None:
            await super().acquire(tier, deadline=deadline)
            self._note(tier)

        def try_acquire(self, tier: ka.Tier | str) -> bool:  # the no-wait path
            taken = super().try_acquire(tier)
            if taken:
                self._note(tier)
            return taken

    limiter = Recording(ka.RateLimits(), clock=fast.monotonic, sleep=fast.sleep)
    async with ka.KnockClient(
        api_key=KEY, base_url=emu.base_url, clock=fast.monotonic, sleep=fast.sleep,
        rate_limits=limiter,
    ) as knock:  # fmt: skip
        users = ({"id": f"u{i}"} for i in range(2500))
        fan = knock.users.bulk.identify_all(users=users)
        events = [event async for event in fan]
        summary = await fan
    sent = starts(emu)
    items_by_operation = {r.operation_id: r.items for r in summary.results}
    assert all(e.items == items_by_operation[e.operation_id] for e in events)  # as its chunk
    assert [(r.route, r.status) for r in sent] == [("/v1/users/bulk/identify", 200)] * 3
    gaps = [b - a for a, b in itertools.pairwise(granted)]
    assert len(gaps) == 2
    assert all(gap >= 1.0 - 1e-9 for gap in gaps), gaps
    assert summary.ok
    assert [r.status for r in summary.results] == ["completed"] * 3
    assert [r.items for r in summary.results] == [range(1000), range(1000, 2000),
                                                  range(2000, 2500)]  # fmt: skip
    assert {r.operation.name for r in summary.results if r.operation} == {"users.identify"}
    assert sum(r.operation.success_count for r in summary.results if r.operation) == 2500
    assert summary.totals.completed == 3
    assert summary.totals.processed_rows == summary.totals.estimated_total_rows == 2500
    assert summary.by_status("completed") == summary.results
    assert len(emu.users()) == 2500


async def test_a_million_item_generator_is_read_a_chunk_ahead_at_most(
    emu: KnockEmulator, fast: FastClock
) -> None:
    """A generator of 1,000,000 users is read lazily: whenever a chunk is submitted, at most
    one more chunk has been read; stopping after three chunks stops the sending, the rest
    of the input is never read, and the summary counts the estimated unsent chunks as 0
    (the input's length is unknown) with every operation sent and its handle."""
    users = Counted(1_000_000)
    async with client(emu, fast) as knock:
        fan = knock.users.bulk.identify_all(users=users)
        submitted = 0
        async for event in fan:
            if event.kind == ka.FanOutEventKind.SUBMITTED:
                submitted += 1
                assert users.read <= (submitted + 1) * 1000, (submitted, users.read)
                if submitted == 3:
                    break
        await fan.aclose()
        summary = fan.summary()
    assert users.read <= 4000
    assert len(starts(emu)) == 3
    assert len(summary.results) == 3
    assert all(r.handle is not None for r in summary.results)
    assert summary.outcome in (ka.Outcome.RUNNING, ka.Outcome.COMPLETED)


async def test_a_sized_input_counts_its_unsent_chunks(emu: KnockEmulator, fast: FastClock) -> None:
    """With a list of 5,000 ids, the totals count the chunks not sent yet from the start:
    five in all, four unsubmitted after the first submission."""
    async with client(emu, fast) as knock:
        fan = knock.users.bulk.delete_all(user_ids=[f"u{i}" for i in range(5000)])
        async for event in fan:
            assert event.kind == ka.FanOutEventKind.SUBMITTED
            assert (event.totals.channels, event.totals.unsubmitted) == (5, 4)
            break
        await fan.aclose()


async def test_chunks_cancelled_in_the_limiter_stay_unsubmitted(
    emu: KnockEmulator, fast: FastClock
) -> None:
    """Closed after the first of five chunks is submitted, while the next waits in the rate
    limiter (never sent): the summary's totals still count all five, four unsubmitted."""
    async with client(emu, fast) as knock:
        fan = knock.users.bulk.delete_all(user_ids=[f"u{i}" for i in range(5000)])
        async for _ in fan:
            await fast.sleep(0.3)  # the next chunk is read and waits its turn (1 POST/s)
            break
        await fan.aclose()
        summary = await fan
    totals = summary.totals
    assert (totals.channels, totals.submitted, totals.unsubmitted) == (5, 1, 4), totals
    assert len(starts(emu)) == 1


async def test_an_item_without_id_mid_stream_is_refused_before_its_chunk(
    emu: KnockEmulator, fast: FastClock
) -> None:
    """User 1,500 has no id: the first chunk (0-999) is sent, the second never is; awaiting
    the fan-out raises a ValueError naming users[1500] and saying the 1,000 earlier items
    went in one operation, whose handle the summary keeps."""
    users = Counted(3000, bad_at=1500)
    async with client(emu, fast) as knock:
        fan = knock.users.bulk.identify_all(users=users)
        with pytest.raises(ValueError, match=r"users\[1500\] has no id") as caught:
            await fan
        summary = fan.summary()
    message = str(caught.value)
    assert "the 1,000 items before it went in 1 operation(s)" in message
    assert users.read == 1501
    assert len(starts(emu)) == 1
    (result,) = summary.results
    assert result.items == range(1000)
    assert result.handle is not None
    assert str(result.operation_id) in message


async def test_a_bad_first_item_sends_nothing(emu: KnockEmulator, fast: FastClock) -> None:
    """A wrong type at index 0 is a TypeError naming objects[0]; nothing is sent."""
    async with client(emu, fast) as knock:
        with pytest.raises(TypeError, match=r"objects\[0\].*nothing was sent"):
            await knock.objects.bulk.set_all("projects", objects=[42])
    assert starts(emu) == []


async def test_a_nan_is_named_by_its_index_in_the_whole_input(
    emu: KnockEmulator, fast: FastClock
) -> None:
    """An item that cannot be JSON (a NaN) in the second chunk is named by its index in the
    whole input, not in its chunk; its chunk is not sent."""
    users: list[dict[str, object]] = [{"id": f"u{i}"} for i in range(1500)]
    users[1200]["score"] = float("nan")
    async with client(emu, fast) as knock:
        with pytest.raises(ValueError, match=r"^users\[1200\] cannot be sent as JSON"):
            await knock.users.bulk.identify_all(users=users)
    assert len(starts(emu)) == 1


async def test_input_and_options_are_checked_before_anything_is_sent(
    emu: KnockEmulator, fast: FastClock
) -> None:
    """A single string, a mapping, a bad collection or a bad concurrency is refused when the
    method is called, before any request."""
    async with client(emu, fast) as knock:
        with pytest.raises(TypeError, match="user_ids must be an iterable"):
            knock.users.bulk.delete_all(user_ids="u1")
        with pytest.raises(TypeError, match="users must be an iterable"):
            knock.users.bulk.identify_all(users={"id": "u1"})
        with pytest.raises(ValueError, match="collection"):
            knock.objects.bulk.delete_all("a/b", object_ids=["o1"])
        with pytest.raises(ValueError, match="concurrency"):
            knock.tenants.bulk.set_all(tenants=["t1"], concurrency=0)
        with pytest.raises(TypeError, match="preferences must be a mapping"):
            knock.users.bulk.set_preferences_all(preferences=[], user_ids=["u1"])  # type: ignore[arg-type]
    assert starts(emu) == []


async def test_mappings_records_and_async_iterables(emu: KnockEmulator, fast: FastClock) -> None:
    """knockapi-style mappings and typed records mix in one async iterable; both are sent
    as Knock's JSON (a record's properties at the top level)."""

    async def users() -> AsyncIterator[object]:
        yield {"id": "m1", "name": "Mapping"}
        yield ka.UserRecord(id="r1", name="Record", properties={"plan": "pro"})

    async with client(emu, fast) as knock:
        summary = await knock.users.bulk.identify_all(users=users())
    assert summary.ok
    stored = emu.users()
    assert stored["m1"]["name"] == "Mapping"
    assert stored["r1"]["name"] == "Record"
    assert stored["r1"]["plan"] == "pro"


async def test_tenants_delete_all_keeps_each_request_line_under_8000_bytes(
    emu: KnockEmulator, fast: FastClock
) -> None:
    """1,000 tenant ids of 60 characters cannot go in one request line: they are split so
    every line stays under Knock's 8,000 bytes, every id is sent once, in order, and every
    tenant is deleted."""
    ids = [f"tenant-{i:04d}-" + "x" * 48 for i in range(1000)]
    emu_ids = ids  # seeded through a bulk set first
    async with client(emu, fast) as knock:
        assert (await knock.tenants.bulk.set_all(tenants=emu_ids)).ok
        emu.clear_requests()
        summary = await knock.tenants.bulk.delete_all(tenant_ids=iter(ids))
    sent = starts(emu)
    assert len(sent) > 1
    seen: list[str] = []
    for request in sent:
        line = len(f"POST {request.path}?{request.query} HTTP/1.1")
        assert line <= 8000
        seen += [v for _, v in urllib.parse.parse_qsl(request.query)]
    assert seen == ids
    assert summary.ok
    carried = [index for r in summary.results for index in (r.items or ())]
    assert carried == list(range(1000))
    assert emu.tenants() == {}


Start = Callable[[ka.KnockClient], ka.FanOut]

ALL: list[tuple[str, Start, str]] = [
    ("users.identify_all", lambda k: k.users.bulk.identify_all(users=[{"id": "n1"}]),
     "users.identify"),
    ("users.delete_all", lambda k: k.users.bulk.delete_all(user_ids=["u1"]), "users.delete"),
    ("users.set_preferences_all", lambda k: k.users.bulk.set_preferences_all(
        preferences={"channel_types": {"email": False}}, user_ids=["u1"]),
     "users.set_preferences"),
    ("objects.set_all", lambda k: k.objects.bulk.set_all("projects", objects=[{"id": "p3"}]),
     "objects.projects.set"),
    ("objects.delete_all", lambda k: k.objects.bulk.delete_all("projects", object_ids=["p1"]),
     "objects.projects.delete"),
    ("objects.add_subscriptions_all", lambda k: k.objects.bulk.add_subscriptions_all(
        "projects", subscriptions=[ka.SubscriptionRecord(id="p1", recipients=("u1",))]),
     "objects.projects.upsert_subscriptions"),
    ("objects.delete_subscriptions_all", lambda k: k.objects.bulk.delete_subscriptions_all(
        "projects", subscriptions=[{"id": "p1", "recipients": ["u1"]}]),
     "objects.projects.delete_subscriptions"),
    ("tenants.set_all", lambda k: k.tenants.bulk.set_all(tenants=["acme"]), "tenants.set"),
    ("tenants.delete_all", lambda k: k.tenants.bulk.delete_all(tenant_ids=["acme"]),
     "tenants.delete"),
    ("schedules.create_all", lambda k: k.schedules.bulk.create_all(
        schedules=[{"workflow": "digest", "recipient": "u1"}]), "schedules.create_schedules"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "call", "name"), ALL, ids=[case[0] for case in ALL])
async def test_each_all_method_follows_its_operation(
    emu: KnockEmulator, fast: FastClock, what: str, call: Start, name: str
) -> None:
    """Each of the ten ``_all`` methods sends its items, follows the operation to
    ``completed`` and ends in a summary whose one result carries Knock's operation name."""
    emu.add_users("u1")
    emu.add_objects("projects", "p1")
    async with client(emu, fast) as knock:
        summary = await call(knock)
    assert summary.ok, summary.results
    (result,) = summary.results
    assert result.operation is not None
    assert result.operation.name == name
    assert result.items == range(1)
    assert summary.error_items == ()


async def test_error_items_of_every_operation_are_in_the_summary(
    emu: KnockEmulator, fast: FastClock
) -> None:
    """Subscribing an unknown object's recipients gives error items; the summary gathers
    them from every operation."""
    async with client(emu, fast) as knock:
        summary = await knock.objects.bulk.delete_subscriptions_all(
            "projects", subscriptions=[{"id": "nope", "recipients": ["u1"]}]
        )
    total = sum(r.operation.error_count for r in summary.results if r.operation)
    assert len(summary.error_items) == total


async def test_stopped_run_is_resumed_elsewhere_from_its_handles(
    emu: KnockEmulator, fast: FastClock
) -> None:
    """Stopping after two chunks stops the sending (nothing sent twice); another client
    follows the two operations from the summary's handles to ``completed`` and sends the rest
    of the input from the end of the last ``items`` range: every user is identified once."""
    users = [{"id": f"u{i}"} for i in range(3500)]
    async with client(emu, fast) as knock:
        fan = knock.users.bulk.identify_all(users=iter(users))
        async with fan:
            async for event in fan:
                if event.kind is ka.FanOutEventKind.SUBMITTED and event.totals.submitted == 2:
                    break
        stopped = fan.summary()
    assert len(starts(emu)) == 2
    handles = [r.handle for r in stopped.results if r.handle is not None]
    resume_at = max(r.items.stop for r in stopped.results if r.items is not None)
    assert resume_at == 2000
    async with client(emu, fast) as other:
        followed = await other.bulk_operations.follow_many(handles)
        rest = await other.users.bulk.identify_all(users=users[resume_at:])
    assert followed.ok
    assert [r.status for r in followed.results] == ["completed", "completed"]
    assert rest.ok
    assert [r.items for r in rest.results] == [range(1000), range(1000, 1500)]
    assert len(starts(emu)) == 4
    assert len(emu.users()) == 3500


async def test_an_input_that_fails_stops_the_sending_with_its_own_error(
    emu: KnockEmulator, fast: FastClock
) -> None:
    """An async iterable that raises after 1,200 items: the first chunk is sent, the second
    never; the iterable's own exception comes out of the fan-out, with a note saying what was
    sent."""

    class CsvError(Exception):
        pass

    async def ids() -> AsyncIterator[str]:
        for i in range(1200):
            yield f"t{i}"
        raise CsvError("the CSV ended mid-line")

    async with client(emu, fast) as knock:
        fan = knock.tenants.bulk.set_all(tenants=ids())
        with pytest.raises(CsvError, match="the CSV ended mid-line") as caught:
            await fan
    assert len(starts(emu)) == 1
    assert any(
        "the 1,000 items before it went in 1 operation(s)" in n for n in caught.value.__notes__
    )
    assert fan.summary().results[0].items == range(1000)
