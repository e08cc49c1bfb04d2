"""The message store: channels and the messages delivered on them. Pure data, no I/O."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from .._models import DeliveryStatus

__all__ = ["Channel", "ChannelType", "Message", "MessageStore", "UnknownChannelError"]


class ChannelType(enum.StrEnum):
    """A channel's type. Only ``in_app_feed`` channels ignore the retention window."""

    IN_APP_FEED = "in_app_feed"
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    CHAT = "chat"


def _aware(_: object, attribute: attrs.Attribute[Any], value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{attribute.name} must be a timezone-aware datetime, got {value}")


def _frozen_data(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return {} if value is None else dict(value)


@attrs.frozen(kw_only=True)
class Message:
    """One message as the emulator stores it: a snapshot; updates replace it with a new one.

    ``data`` is the data the workflow was triggered with (what ``trigger_data`` filters match);
    ``tenant`` is ``None`` for a message sent without one. An engagement status holds while its
    timestamp is set (``seen_at`` for ``seen``, ``None`` for ``unseen``, and so on).
    """

    id: str
    channel_id: str
    channel_type: ChannelType
    recipient_id: str
    workflow: str
    tenant: str | None
    delivery_status: DeliveryStatus
    inserted_at: datetime = attrs.field(validator=_aware)
    data: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_data)
    seen_at: datetime | None = attrs.field(default=None, validator=_aware)
    read_at: datetime | None = attrs.field(default=None, validator=_aware)
    archived_at: datetime | None = attrs.field(default=None, validator=_aware)
    interacted_at: datetime | None = attrs.field(default=None, validator=_aware)
    link_clicked_at: datetime | None = attrs.field(default=None, validator=_aware)

    @property
    def is_archived(self) -> bool:
        """Whether the message is archived (``archived_at`` is set)."""
        return self.archived_at is not None


@attrs.frozen(kw_only=True)
class Channel:
    """A channel in the emulator's store: its ``id`` and ``type`` (``in_app_feed``, ...)."""

    id: str
    type: ChannelType


class UnknownChannelError(KeyError):
    """No channel with this id was added to the emulator."""

    def __init__(self, channel_id: str) -> None:
        super().__init__(channel_id)
        self.channel_id = channel_id

    def __str__(self) -> str:
        return f"unknown channel {self.channel_id!r}; add it with add_channel() first"


_MESSAGE_NAMESPACE = uuid.UUID("5b0c3f39-3d8c-4f57-9f4e-1f2f8a3f6c11")


class MessageStore:
    """Channels and their messages, in insertion order. Ids are unique across channels."""

    def __init__(self) -> None:
        self._channels: dict[str, Channel] = {}
        self._messages: dict[str, dict[str, Message]] = {}
        self._channel_of: dict[str, str] = {}
        self._sequence: dict[str, int] = {}
        # channel -> recipient -> message ids, in insertion order; and each message's position.
        self._by_recipient: dict[str, dict[str, dict[str, None]]] = {}
        self._position: dict[str, int] = {}
        # channel -> every message id ever added, in order (deleted ones stay: readers skip
        # them), so that an operation can walk "the channel as it stood" without copying it.
        self._order: dict[str, list[str]] = {}
        self._added = 0

    # Channels ----------------------------------------------------------------------------

    def add_channel(self, channel_id: str, type: ChannelType) -> Channel:
        if channel_id in self._channels:
            raise ValueError(f"channel {channel_id!r} already exists")
        channel = Channel(id=channel_id, type=type)
        self._channels[channel_id] = channel
        self._messages[channel_id] = {}
        self._sequence[channel_id] = 0
        self._by_recipient[channel_id] = {}
        self._order[channel_id] = []
        return channel

    def channel(self, channel_id: str) -> Channel:
        try:
            return self._channels[channel_id]
        except KeyError:
            raise UnknownChannelError(channel_id) from None

    def has_channel(self, channel_id: str) -> bool:
        return channel_id in self._channels

    @property
    def channels(self) -> list[Channel]:
        return list(self._channels.values())

    # Messages ----------------------------------------------------------------------------

    def next_message_id(self, channel_id: str) -> str:
        """A fresh id, deterministic from the channel id and how many ids it has handed out."""
        self.channel(channel_id)
        number = self._sequence[channel_id]
        self._sequence[channel_id] = number + 1
        return str(uuid.uuid5(_MESSAGE_NAMESPACE, f"{channel_id}/{number}"))

    def add(self, message: Message) -> Message:
        channel = self.channel(message.channel_id)
        if message.channel_type is not channel.type:
            raise ValueError(
                f"message {message.id!r} has channel_type {message.channel_type}, "
                f"but channel {channel.id!r} is {channel.type}"
            )
        if message.id in self._channel_of:
            raise ValueError(f"a message with id {message.id!r} already exists")
        self._messages[channel.id][message.id] = message
        self._channel_of[message.id] = channel.id
        self._by_recipient[channel.id].setdefault(message.recipient_id, {})[message.id] = None
        self._position[message.id] = self._added
        self._order[channel.id].append(message.id)
        self._added += 1
        return message

    def get(self, message_id: str) -> Message | None:
        channel_id = self._channel_of.get(message_id)
        return None if channel_id is None else self._messages[channel_id][message_id]

    def replace(self, message: Message) -> None:
        """Store ``message`` in place of the stored message with the same id."""
        current = self._messages[self._channel_of[message.id]]
        if current[message.id].recipient_id != message.recipient_id:
            raise ValueError("a message's recipient cannot change")
        current[message.id] = message

    def delete(self, message_id: str) -> None:
        channel_id = self._channel_of.pop(message_id)
        message = self._messages[channel_id].pop(message_id)
        bucket = self._by_recipient[channel_id][message.recipient_id]
        del bucket[message_id]
        if not bucket:
            del self._by_recipient[channel_id][message.recipient_id]
        del self._position[message_id]

    def messages(self, channel_id: str) -> list[Message]:
        self.channel(channel_id)
        return list(self._messages[channel_id].values())

    def iter_messages(
        self, channel_id: str, *, recipient_ids: Collection[str] | None = None
    ) -> Iterator[Message]:
        """The channel's messages in insertion order; only those of ``recipient_ids`` if given
        (read from an index instead of scanning the channel)."""
        messages = self._messages[channel_id]
        if recipient_ids is None:
            return iter(messages.values())
        buckets = self._by_recipient[channel_id]
        ids: list[str] = []
        for recipient in set(recipient_ids):
            ids.extend(buckets.get(recipient, ()))
        ids.sort(key=self._position.__getitem__)
        return (messages[message_id] for message_id in ids)

    def row_ids(
        self, channel_id: str, recipient_ids: Collection[str] | None = None
    ) -> Sequence[str]:
        """The ids an operation walks, in insertion order: every id the channel ever had (a
        list that only grows: read it up to its length now), or the current messages of
        ``recipient_ids`` only (from the index). Deleted ids read as ``None`` from ``get``."""
        if recipient_ids is None:
            return self._order[channel_id]
        return [m.id for m in self.iter_messages(channel_id, recipient_ids=recipient_ids)]

    def count_candidates(
        self, channel_id: str, recipient_ids: Collection[str] | None = None
    ) -> int:
        """How many messages the channel has (of ``recipient_ids`` only, if given), without
        scanning it."""
        if recipient_ids is None:
            return len(self._messages[channel_id])
        buckets = self._by_recipient[channel_id]
        return sum(len(buckets.get(recipient, ())) for recipient in set(recipient_ids))

    def count(self, channel_id: str | None = None) -> int:
        if channel_id is None:
            return len(self._channel_of)
        return len(self._messages[channel_id])
