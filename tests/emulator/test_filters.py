"""Filter semantics of the bulk update body, applied to message snapshots in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from knock_async._models import (
    ArchivedFilter,
    BulkUpdateMessagesForChannelRequest,
    DeliveryStatus,
    EngagementStatus,
)
from knock_async.testing import ChannelType, Message
from knock_async.testing._filters import (
    json_scalar_equal,
    matches,
    selects,
    trigger_data_matches,
    within_retention,
)

R = BulkUpdateMessagesForChannelRequest
T0 = datetime(2025, 1, 1, tzinfo=UTC)
CHANNEL = "7b0a1c4e-8a36-4d38-9d2c-0a6f1e1f0c01"


def message(**overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "id": "m1",
        "channel_id": CHANNEL,
        "channel_type": ChannelType.IN_APP_FEED,
        "recipient_id": "user_1",
        "workflow": "welcome",
        "tenant": None,
        "delivery_status": DeliveryStatus.DELIVERED,
        "inserted_at": T0,
        "data": {},
    }
    fields.update(overrides)
    return Message(**fields)


# Strategies -----------------------------------------------------------------------------------

timestamps = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)
)
maybe_time = st.none() | timestamps
scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "b", "1"])
data_values = scalars | st.lists(st.integers(), max_size=2) | st.just({"nested": 1})
keys = st.sampled_from(["k1", "k2", "k3", "k4"])

messages = st.builds(
    Message,
    id=st.just("m"),
    channel_id=st.just(CHANNEL),
    channel_type=st.sampled_from(list(ChannelType)),
    recipient_id=st.sampled_from(["u1", "u2", "u3"]),
    workflow=st.sampled_from(["w1", "w2", "w3"]),
    tenant=st.none() | st.sampled_from(["t1", "t2"]),
    delivery_status=st.sampled_from(list(DeliveryStatus)),
    inserted_at=timestamps,
    data=st.dictionaries(keys, data_values, max_size=4),
    seen_at=maybe_time,
    read_at=maybe_time,
    archived_at=maybe_time,
    interacted_at=maybe_time,
    link_clicked_at=maybe_time,
)

FILTER_FIELDS = [field.name for field in attrs.fields(R)]
filter_values: dict[str, st.SearchStrategy[Any]] = {
    "archived": st.sampled_from(list(ArchivedFilter)),
    "delivery_status": st.sampled_from(list(DeliveryStatus)),
    "engagement_status": st.sampled_from(list(EngagementStatus)),
    "has_tenant": st.booleans(),
    "newer_than": timestamps,
    "older_than": timestamps,
    "recipient_ids": st.lists(st.sampled_from(["u1", "u2", "u3", "u4"]), max_size=3),
    "tenants": st.lists(st.sampled_from(["t1", "t2", "t3"]), max_size=3),
    "workflows": st.lists(st.sampled_from(["w1", "w2", "w3", "w4"]), max_size=3),
    "trigger_data": st.dictionaries(keys, scalars, max_size=2),
}


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments for a request with a random subset of filters set."""
    chosen = draw(st.sets(st.sampled_from(FILTER_FIELDS)))
    return {name: draw(filter_values[name]) for name in chosen}


# Properties -----------------------------------------------------------------------------------


def test_every_model_field_has_a_strategy() -> None:
    """The property tests cover every filter the model (and so the spec) defines."""
    assert set(filter_values) == set(FILTER_FIELDS)


@given(messages, requests(), requests())
def test_filters_combine_with_and(
    msg: Message, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """A request with two sets of filters selects a message iff each set alone selects it."""
    second = {k: v for k, v in second.items() if k not in first}
    both = R(**first, **second)
    assert matches(msg, both) == (matches(msg, R(**first)) and matches(msg, R(**second)))


@given(messages)
def test_no_filter_selects_everything(msg: Message) -> None:
    """An empty body selects every message (``archived`` defaults to ``include``)."""
    assert matches(msg, R())


@given(messages)
def test_archived_filter_partitions(msg: Message) -> None:
    """``exclude`` and ``only`` split the messages in two; ``include`` takes both halves."""
    excluded = matches(msg, R(archived="exclude"))
    only = matches(msg, R(archived="only"))
    assert excluded != only
    assert only == (msg.archived_at is not None)
    assert matches(msg, R(archived="include"))


@given(messages)
def test_default_archived_is_configurable(msg: Message) -> None:
    """Without ``archived`` in the body the emulator's ``default_archived`` applies."""
    assert matches(msg, R(), default_archived=ArchivedFilter.EXCLUDE) == (msg.archived_at is None)


@pytest.mark.parametrize(
    ("positive", "negative", "field"),
    [
        ("seen", "unseen", "seen_at"),
        ("read", "unread", "read_at"),
        ("archived", "unarchived", "archived_at"),
    ],
)
@given(msg=messages)
def test_engagement_status_pairs_are_complements(
    msg: Message, positive: str, negative: str, field: str
) -> None:
    """``seen``/``unseen`` (and read, archived) split messages on whether the timestamp is set."""
    is_set = getattr(msg, field) is not None
    assert matches(msg, R(engagement_status=positive)) == is_set
    assert matches(msg, R(engagement_status=negative)) == (not is_set)


@given(messages)
def test_interacted_and_link_clicked_follow_their_timestamps(msg: Message) -> None:
    """``interacted`` and ``link_clicked`` hold while their timestamps are set."""
    assert matches(msg, R(engagement_status="interacted")) == (msg.interacted_at is not None)
    assert matches(msg, R(engagement_status="link_clicked")) == (msg.link_clicked_at is not None)


@given(messages, timestamps)
def test_newer_and_older_than_are_strict_and_disjoint(msg: Message, when: datetime) -> None:
    """At one instant, a message is newer, older, or inserted exactly then: never two of these."""
    newer = matches(msg, R(newer_than=when))
    older = matches(msg, R(older_than=when))
    exact = msg.inserted_at == when
    assert [newer, older, exact].count(True) == 1


@given(messages, st.booleans())
def test_has_tenant(msg: Message, wanted: bool) -> None:
    """``has_tenant`` selects on whether the message has a tenant."""
    assert matches(msg, R(has_tenant=wanted)) == ((msg.tenant is not None) == wanted)


@given(messages)
def test_list_filters_are_membership(msg: Message) -> None:
    """recipient_ids, tenants and workflows select members; an empty list selects nothing."""
    assert matches(msg, R(recipient_ids=[msg.recipient_id, "other"]))
    assert not matches(msg, R(recipient_ids=["other"]))
    assert matches(msg, R(workflows=[msg.workflow]))
    assert not matches(msg, R(workflows=[]))
    assert not matches(msg, R(recipient_ids=[]))
    assert matches(msg, R(tenants=["t1", "t2"])) == (msg.tenant is not None)
    assert not matches(msg, R(tenants=[]))


@given(messages, st.data())
def test_trigger_data_matches_any_subset_of_scalar_keys(msg: Message, data: st.DataObject) -> None:
    """A filter made of some of the message's scalar top-level pairs selects it; adding a key
    it lacks, or a different value, does not."""
    scalar_items = {k: v for k, v in msg.data.items() if not isinstance(v, list | dict)}
    subset_keys = data.draw(
        st.sets(st.sampled_from(sorted(scalar_items))) if scalar_items else st.just(set())
    )
    subset = {k: scalar_items[k] for k in subset_keys}
    assert matches(msg, R(trigger_data=subset))
    assert not matches(msg, R(trigger_data={**subset, "missing_key": 1}))
    for key in subset:  # "zz" is never among the generated values
        assert not matches(msg, R(trigger_data={**subset, key: "zz"}))


def test_trigger_data_ignores_non_scalar_values() -> None:
    """Only scalar top-level values can match: nested objects and lists never do."""
    msg = message(data={"obj": {"a": 1}, "list": [1], "n": 1})
    assert not trigger_data_matches({"obj": {"a": 1}}, msg.data)
    assert not trigger_data_matches({"list": [1]}, msg.data)
    assert trigger_data_matches({"n": 1}, msg.data)
    assert trigger_data_matches({}, msg.data)


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        (1, 1, True),
        (1, 1.0, True),
        (1, True, False),
        (0, False, False),
        (True, True, True),
        ("1", 1, False),
        (None, None, True),
        (None, 0, False),
        ("a", "a", True),
        ([1], [1], False),
    ],
)
def test_json_scalar_equality(left: object, right: object, equal: bool) -> None:
    """Trigger data compares with JSON's types: booleans, numbers, strings and null differ."""
    assert json_scalar_equal(left, right) is equal
    assert json_scalar_equal(right, left) is equal


@pytest.mark.parametrize(
    ("kind", "age_days", "kept"),
    [
        (ChannelType.IN_APP_FEED, 400, True),
        (ChannelType.EMAIL, 29, True),
        (ChannelType.EMAIL, 30, True),
        (ChannelType.EMAIL, 31, False),
        (ChannelType.SMS, 31, False),
        (ChannelType.PUSH, 31, False),
        (ChannelType.CHAT, 31, False),
    ],
)
def test_retention_window_spares_only_in_app_feeds(
    kind: ChannelType, age_days: int, kept: bool
) -> None:
    """Outside in-app feeds, messages older than the retention window are never selected."""
    now = T0 + timedelta(days=400)
    msg = message(channel_type=kind, inserted_at=now - timedelta(days=age_days))
    assert within_retention(msg, at=now, retention=timedelta(days=30)) is kept
    assert selects(msg, R(), at=now, retention=timedelta(days=30)) is kept
    assert within_retention(msg, at=now, retention=None)


def test_each_filter_on_explicit_messages() -> None:
    """Each filter picks exactly the expected messages out of a hand-built set."""
    a = message(id="a", recipient_id="u1", tenant="acme", workflow="w1", data={"k": "v"})
    b = message(
        id="b",
        recipient_id="u2",
        tenant=None,
        workflow="w2",
        delivery_status=DeliveryStatus.BOUNCED,
        inserted_at=T0 + timedelta(days=1),
        seen_at=T0,
        archived_at=T0,
        data={"k": "w"},
    )
    pool = [a, b]

    def pick(**filters: Any) -> set[str]:
        return {m.id for m in pool if matches(m, R(**filters))}

    assert pick(recipient_ids=["u2"]) == {"b"}
    assert pick(tenants=["acme"]) == {"a"}
    assert pick(has_tenant=False) == {"b"}
    assert pick(workflows=["w1"]) == {"a"}
    assert pick(delivery_status="bounced") == {"b"}
    assert pick(engagement_status="unseen") == {"a"}
    assert pick(archived="exclude") == {"a"}
    assert pick(archived="only") == {"b"}
    assert pick(newer_than=T0) == {"b"}
    assert pick(older_than=T0 + timedelta(hours=1)) == {"a"}
    assert pick(trigger_data='{"k": "v"}') == {"a"}
    assert pick(trigger_data={"k": "w"}, recipient_ids=["u1"]) == set()
