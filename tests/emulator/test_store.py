"""Seeding the emulator and reading it back, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knock_async._models import DeliveryStatus
from knock_async.testing import ChannelType, KnockEmulator, ManualClock, Message
from knock_async.testing._seed import RECIPIENTS, TENANTS, WORKFLOWS
from knock_async.testing._store import MessageStore, UnknownChannelError


def content(message: Message) -> tuple[object, ...]:
    """A message without its ids: what the seed decides."""
    return attrs.astuple(attrs.evolve(message, id="", channel_id=""))


def test_seeded_messages_are_reproducible() -> None:
    """The same seed and clock give the same messages; another seed gives others."""
    first, second = KnockEmulator(clock=ManualClock()), KnockEmulator(clock=ManualClock())
    a = first.add_messages(first.add_channel(), 50, seed=3)
    b = second.add_messages(second.add_channel(), 50, seed=3)
    assert [content(m) for m in a] == [content(m) for m in b]
    c = second.add_messages(second.add_channel(), 50, seed=4)
    assert [content(m) for m in a] != [content(m) for m in c]


def test_seeded_messages_are_realistic() -> None:
    """Seeded messages cover the values filters select on, inside the last 60 days, with
    engagement timestamps in a plausible order."""
    emu = KnockEmulator(clock=ManualClock())
    email = emu.add_channel(type="email")
    messages = emu.add_messages(email, 2000, seed=0)
    now = emu.clock.now()
    assert {m.recipient_id for m in messages} == set(RECIPIENTS)
    assert {m.workflow for m in messages} == set(WORKFLOWS)
    assert {m.tenant for m in messages} == {*TENANTS, None}
    assert {m.delivery_status for m in messages} == set(DeliveryStatus)
    assert all(now - timedelta(days=60) <= m.inserted_at <= now for m in messages)
    for field in ("seen_at", "read_at", "archived_at", "interacted_at", "link_clicked_at"):
        assert any(getattr(m, field) for m in messages), field
        assert any(getattr(m, field) is None for m in messages), field
    for m in messages:
        if m.read_at is not None:
            assert m.seen_at is not None
            assert m.inserted_at <= m.seen_at <= m.read_at <= now
        assert {"account_id", "priority", "count", "urgent"} <= set(m.data)
    assert all(m.channel_type is ChannelType.EMAIL for m in messages)


def test_ids_are_unique_even_with_the_same_seed() -> None:
    """Seeding one channel twice with the same seed adds new messages with new ids."""
    emu = KnockEmulator()
    channel = emu.add_channel()
    ids = [m.id for m in emu.add_messages(channel, 10) + emu.add_messages(channel, 10)]
    assert len(set(ids)) == 20
    assert len(emu.messages(channel)) == 20


def test_explicit_messages() -> None:
    """add_message stores exactly what it is given, with defaults for the rest."""
    clock = ManualClock(datetime(2024, 6, 1, tzinfo=UTC))
    emu = KnockEmulator(clock=clock)
    channel = emu.add_channel(type=ChannelType.SMS)
    message = emu.add_message(
        channel,
        recipient_id="u9",
        tenant="acme",
        delivery_status="bounced",
        data={"k": 1},
        message_id="msg_1",
    )
    assert emu.message("msg_1") == message
    assert (message.recipient_id, message.tenant, message.workflow) == ("u9", "acme", "new-comment")
    assert message.delivery_status is DeliveryStatus.BOUNCED
    assert message.inserted_at == clock.now()
    assert message.channel_type is ChannelType.SMS
    assert emu.messages(channel) == [message]
    assert emu.message("nope") is None


def test_seeding_mistakes_are_refused() -> None:
    """Unknown channels, types, statuses, naive datetimes and duplicate ids are errors."""
    emu = KnockEmulator()
    channel = emu.add_channel()
    with pytest.raises(UnknownChannelError, match="add_channel"):
        emu.add_messages("6f1d2c3b-0000-4000-8000-000000000000", 1)
    with pytest.raises(KeyError):
        emu.messages("6f1d2c3b-0000-4000-8000-000000000000")
    with pytest.raises(ValueError, match="type must be one of"):
        emu.add_channel(type="fax")
    with pytest.raises(ValueError, match="UUID"):
        emu.add_channel(channel_id="chan_1")
    with pytest.raises(ValueError, match="already exists"):
        emu.add_channel(channel_id=channel)
    with pytest.raises(ValueError, match="delivery_status"):
        emu.add_message(channel, delivery_status="lost")
    with pytest.raises(ValueError, match="timezone-aware"):
        emu.add_message(channel, inserted_at=datetime(2024, 1, 1))
    emu.add_message(channel, message_id="dup")
    with pytest.raises(ValueError, match="already exists"):
        emu.add_message(channel, message_id="dup")
    with pytest.raises(ValueError, match="count"):
        emu.add_messages(channel, -1)


def test_channels_are_listed_in_order() -> None:
    """channels() lists every channel with its type; a given id is normalised to lower case."""
    emu = KnockEmulator()
    first = emu.add_channel(type="push")
    second = emu.add_channel(channel_id="6F1D2C3B-0000-4000-8000-00000000000A")
    assert second == "6f1d2c3b-0000-4000-8000-00000000000a"
    assert [(c.id, c.type) for c in emu.channels()] == [
        (first, ChannelType.PUSH),
        (second, ChannelType.IN_APP_FEED),
    ]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"api_keys": "sk_one"}, TypeError),
        ({"max_list_items": 0}, ValueError),
        ({"rows_per_second": 0}, ValueError),
        ({"batch_size": 0}, ValueError),
        ({"queue_delay": -1}, ValueError),
        ({"default_archived": "sometimes"}, ValueError),
        ({"progress_origin": "ftp://x"}, ValueError),
        ({"progress_origin": "https://x/path"}, ValueError),
    ],
)
def test_settings_are_checked(kwargs: dict[str, object], error: type[Exception]) -> None:
    """Bad emulator settings fail when the emulator is built."""
    with pytest.raises(error):
        KnockEmulator(**kwargs)  # type: ignore[arg-type]


def test_time_helpers_need_a_manual_clock() -> None:
    """advance() and settle() refuse to run on the system clock."""
    emu = KnockEmulator()
    with pytest.raises(TypeError, match="ManualClock"):
        emu.advance(1)
    with pytest.raises(TypeError, match="ManualClock"):
        emu.settle()


def test_settle_refuses_to_run_forever() -> None:
    """settle(max_seconds=...) raises when operations need longer than that."""
    from knock_async._models import BulkAction, BulkUpdateMessagesForChannelRequest

    emu = KnockEmulator(clock=ManualClock(), rows_per_second=1, batch_size=1)
    channel = emu.add_channel()
    emu.add_messages(channel, 10)
    emu._engine.submit(channel, BulkAction.READ, BulkUpdateMessagesForChannelRequest())
    with pytest.raises(RuntimeError, match="still running"):
        emu.settle(max_seconds=5)
    assert emu.settle() == pytest.approx(10.05 - 5, abs=1.0)
    with pytest.raises(KeyError):
        emu.operation("nope")


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.sampled_from(["u1", "u2", "u3"])), max_size=40),
    st.sets(st.sampled_from(["u1", "u2", "u3", "u4"])),
)
def test_recipient_index_agrees_with_a_scan(
    steps: list[tuple[bool, str]], wanted: set[str]
) -> None:
    """Reading a channel through the recipient index gives what a full scan would, in the same
    order, whatever was added and deleted before."""
    store = MessageStore()
    channel = store.add_channel("6f1d2c3b-0000-4000-8000-00000000000a", ChannelType.EMAIL)
    other = store.add_channel("6f1d2c3b-0000-4000-8000-00000000000b", ChannelType.EMAIL)
    for add, recipient in steps:
        current = store.messages(channel.id)
        if add or not current:
            for target in (channel, other):
                store.add(
                    Message(
                        id=store.next_message_id(target.id),
                        channel_id=target.id,
                        channel_type=target.type,
                        recipient_id=recipient,
                        workflow="w",
                        tenant=None,
                        delivery_status=DeliveryStatus.SENT,
                        inserted_at=datetime(2025, 1, 1, tzinfo=UTC),
                    )
                )
        else:
            victims = [m for m in current if m.recipient_id == recipient] or current
            store.delete(victims[0].id)
    scanned = [m for m in store.iter_messages(channel.id) if m.recipient_id in wanted]
    assert list(store.iter_messages(channel.id, recipient_ids=wanted)) == scanned
