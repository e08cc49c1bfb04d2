"""Models: open enums and the request body's validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import knock_async as ka
from knock_async._models import (
    _checked_member,
    _checked_strings,
    _parse_datetime,
    _parse_strings,
    _strict_member,
    parse_action,
)


def test_actions_are_the_ten_of_the_spec() -> None:
    """BulkAction lists exactly the ten actions the spec's path parameter allows."""
    assert {a.value for a in ka.BulkAction} == {
        "seen", "unseen", "read", "unread", "archived",
        "unarchived", "interacted", "archive", "unarchive", "delete",
    }  # fmt: skip


def test_unknown_status_is_kept_and_not_terminal() -> None:
    """A status the spec does not list is kept as its raw string and counts as unfinished."""
    status = ka.BulkOperationStatus("paused")
    assert status == "paused"
    assert status.value == "paused"
    assert not status.is_known
    assert not status.is_terminal


@pytest.mark.parametrize(
    ("status", "terminal"),
    [("queued", False), ("processing", False), ("completed", True), ("failed", True)],
)
def test_terminal_statuses(status: str, terminal: bool) -> None:
    """Only completed and failed end a poll."""
    assert ka.BulkOperationStatus(status).is_terminal is terminal


def test_parse_action_accepts_str_and_enum() -> None:
    """An action may be given as a string or as the enum member."""
    assert parse_action("archive") is ka.BulkAction.ARCHIVE
    assert parse_action(ka.BulkAction.DELETE) is ka.BulkAction.DELETE


@pytest.mark.parametrize(
    ("action", "error", "text"),
    [
        ("archive_all", ValueError, "action must be one of seen, unseen"),
        (ka.BulkAction("new_thing"), ValueError, "'new_thing'"),
        (3, TypeError, "action must be a str"),
        (None, TypeError, "action must be a str"),
    ],
)
def test_parse_action_rejects_unknown(action: object, error: type[Exception], text: str) -> None:
    """An unknown action fails with an error that names the argument and the allowed values."""
    with pytest.raises(error, match=text):
        parse_action(action)


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"archived": "all"}, ValueError, "archived must be one of exclude, include, only"),
        ({"delivery_status": "lost"}, ValueError, "delivery_status must be one of"),
        ({"engagement_status": "clicked"}, ValueError, "engagement_status must be one of"),
        ({"has_tenant": 1}, TypeError, "has_tenant must be a bool"),
        ({"newer_than": datetime(2024, 1, 1)}, ValueError, "newer_than must be timezone-aware"),
        ({"older_than": "2024-01-01T00:00:00"}, ValueError, "older_than must be timezone-aware"),
        ({"older_than": "yesterday"}, ValueError, "older_than must be an ISO 8601"),
        ({"older_than": 1700000000}, TypeError, "older_than must be a timezone-aware"),
        ({"recipient_ids": "u1"}, TypeError, "recipient_ids must be a list of strings"),
        ({"tenants": ["t1", 2]}, TypeError, r"tenants\[1\] must be a str"),
        ({"workflows": 5}, TypeError, "workflows must be a list of strings"),
        ({"trigger_data": "[1, 2]"}, ValueError, "trigger_data must be a JSON object"),
        ({"trigger_data": "{not json"}, ValueError, "not JSON"),
        ({"trigger_data": ["a"]}, TypeError, "trigger_data must be a mapping"),
        ({"trigger_data": {"a": object()}}, TypeError, "JSON-serialisable"),
        ({"trigger_data": {1: "a"}}, TypeError, "trigger_data keys must be strings"),
    ],
)
def test_bad_filters_name_the_argument(
    kwargs: dict[str, object], error: type[Exception], text: str
) -> None:
    """Every bad filter value raises ValueError/TypeError whose message names the filter."""
    with pytest.raises(error, match=text):
        ka.BulkUpdateMessagesForChannelRequest(**kwargs)


def test_filters_are_normalised() -> None:
    """Strings become enum members, lists tuples, ISO strings aware datetimes, JSON a mapping."""
    body = ka.BulkUpdateMessagesForChannelRequest(
        archived="only",
        recipient_ids=["u1", "u2"],
        newer_than="2024-01-01T00:00:00+02:00",
        trigger_data='{"k": "v"}',
    )
    assert body.archived is ka.ArchivedFilter.ONLY
    assert body.recipient_ids == ("u1", "u2")
    assert body.newer_than == datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    assert body.trigger_data == {"k": "v"}


def test_request_body_equality_and_hash_cover_trigger_data() -> None:
    """Two bodies with equal trigger data are equal and hash alike; different data differs."""
    a = ka.BulkUpdateMessagesForChannelRequest(trigger_data={"a": 1, "b": 2})
    b = ka.BulkUpdateMessagesForChannelRequest(trigger_data='{"b": 2, "a": 1}')
    c = ka.BulkUpdateMessagesForChannelRequest(trigger_data={"a": 2})
    assert a == b
    assert hash(a) == hash(b)
    assert a != c


def test_operation_is_frozen() -> None:
    """Models are immutable: a snapshot cannot be changed after the fact."""
    from knock_async._convert import structure_operation
    from tests._support import operation

    op = structure_operation(operation())
    with pytest.raises(AttributeError):
        op.status = ka.BulkOperationStatus.COMPLETED  # type: ignore[misc]


# -- the common-case shortcuts against the thorough checks ------------------------------------

_ENUMS = [ka.BulkAction, ka.ArchivedFilter, ka.DeliveryStatus, ka.EngagementStatus]
_anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=12),
    st.sampled_from([m for cls in _ENUMS for m in cls]),
    st.sampled_from(_ENUMS).flatmap(lambda cls: st.text(max_size=6).map(cls)),  # pseudo-members
    st.sampled_from(["include", "archived", "seen", "sent", "read", "ARCHIVE"]),
    st.lists(st.text(max_size=4) | st.integers(), max_size=3),
    st.lists(st.text(max_size=4), max_size=3).map(tuple),
    st.binary(max_size=4),
)


def _outcome(check: Any, *args: object) -> object:
    try:
        result = check(*args)
    except (TypeError, ValueError) as exc:
        return (type(exc), str(exc))
    return ("ok", type(result), result)


@given(st.sampled_from(_ENUMS), _anything)
def test_member_shortcut_agrees_with_the_thorough_check(cls: Any, value: object) -> None:
    """A filter or action value is accepted or refused exactly as the thorough check does."""
    assert _outcome(_strict_member, cls, "f", value) == _outcome(_checked_member, cls, "f", value)


@given(_anything)
def test_strings_shortcut_agrees_with_the_thorough_check(value: object) -> None:
    """A list-of-strings filter is accepted or refused exactly as the thorough check does."""
    assert _outcome(_parse_strings, "ids", value) == _outcome(_checked_strings, "ids", value)


@given(
    st.datetimes(timezones=st.none() | st.timezones() | st.just(UTC))
    | st.datetimes().map(datetime.isoformat)
)
def test_datetime_shortcut_keeps_the_value_or_refuses_it_as_before(value: object) -> None:
    """A fixed-offset aware datetime is kept as is; anything else meets the full checks."""
    outcome = _outcome(_parse_datetime, "newer_than", value)
    if isinstance(value, datetime) and value.utcoffset() is not None:
        assert outcome == ("ok", datetime, value)
    elif isinstance(value, datetime):
        assert isinstance(outcome, tuple)
        assert outcome[0] is ValueError
