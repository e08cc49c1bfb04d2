"""What each bulk action does to one message, in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from knock_async._models import BulkAction, BulkUpdateMessagesForChannelRequest, DeliveryStatus
from knock_async.testing import ChannelType, Message
from knock_async.testing._actions import apply_action
from knock_async.testing._filters import matches

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)


def fresh(
    *,
    seen_at: datetime | None = None,
    read_at: datetime | None = None,
    archived_at: datetime | None = None,
    interacted_at: datetime | None = None,
    link_clicked_at: datetime | None = None,
) -> Message:
    return Message(
        id="m",
        channel_id="c",
        channel_type=ChannelType.IN_APP_FEED,
        recipient_id="u",
        workflow="w",
        tenant=None,
        delivery_status=DeliveryStatus.DELIVERED,
        inserted_at=T0,
        seen_at=seen_at,
        read_at=read_at,
        archived_at=archived_at,
        interacted_at=interacted_at,
        link_clicked_at=link_clicked_at,
    )


SETTERS = [
    ("seen", "seen_at"),
    ("read", "read_at"),
    ("archived", "archived_at"),
    ("archive", "archived_at"),
    ("interacted", "interacted_at"),
]
CLEARERS = [
    ("unseen", "seen_at"),
    ("unread", "read_at"),
    ("unarchived", "archived_at"),
    ("unarchive", "archived_at"),
]
TIMESTAMPS = ["seen_at", "read_at", "archived_at", "interacted_at", "link_clicked_at"]


@pytest.mark.parametrize(("action", "field"), SETTERS)
def test_setting_actions_stamp_one_timestamp(action: str, field: str) -> None:
    """seen/read/archive(d)/interacted set their own timestamp to the time applied, and only it."""
    updated = apply_action(fresh(), BulkAction(action), LATER)
    assert updated is not None
    assert getattr(updated, field) == LATER
    for other in TIMESTAMPS:
        if other != field:
            assert getattr(updated, other) is None


@pytest.mark.parametrize(("action", "field"), SETTERS)
def test_setting_again_keeps_the_first_timestamp(action: str, field: str) -> None:
    """Marking a message that is already seen (read, ...) keeps its original timestamp."""
    message = fresh(**{field: T0})
    assert apply_action(message, BulkAction(action), LATER) is message


@pytest.mark.parametrize(("action", "field"), CLEARERS)
def test_clearing_actions_clear_one_timestamp(action: str, field: str) -> None:
    """unseen/unread/unarchive(d) clear their own timestamp and leave the others alone."""
    stamped = fresh(**dict.fromkeys(TIMESTAMPS, T0))
    updated = apply_action(stamped, BulkAction(action), LATER)
    assert updated is not None
    assert getattr(updated, field) is None
    for other in TIMESTAMPS:
        if other != field:
            assert getattr(updated, other) == T0


def test_delete_removes_the_message() -> None:
    """``delete`` answers None: the store drops the message."""
    assert apply_action(fresh(), BulkAction.DELETE, LATER) is None


def test_unknown_action_is_refused() -> None:
    """An action value the spec does not list is a ValueError, not a silent no-op."""
    with pytest.raises(ValueError, match="unknown bulk action"):
        apply_action(fresh(), BulkAction("explode"), LATER)


# After the action, the engagement filter that names its result selects the message.
RESULT = {
    "seen": "seen",
    "unseen": "unseen",
    "read": "read",
    "unread": "unread",
    "archived": "archived",
    "archive": "archived",
    "unarchived": "unarchived",
    "unarchive": "unarchived",
    "interacted": "interacted",
}
maybe = st.none() | st.just(T0)


@given(
    action=st.sampled_from(sorted(RESULT)),
    seen=maybe,
    read=maybe,
    archived=maybe,
    interacted=maybe,
)
def test_action_result_matches_its_engagement_status(
    action: str,
    seen: datetime | None,
    read: datetime | None,
    archived: datetime | None,
    interacted: datetime | None,
) -> None:
    """Whatever the message's state, after an action the matching engagement filter selects it."""
    message = fresh(seen_at=seen, read_at=read, archived_at=archived, interacted_at=interacted)
    updated = apply_action(message, BulkAction(action), LATER)
    assert updated is not None
    wanted = BulkUpdateMessagesForChannelRequest(engagement_status=RESULT[action])
    assert matches(updated, wanted)
