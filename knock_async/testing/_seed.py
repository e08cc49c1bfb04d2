"""Realistic random messages, reproducible from a seed. Pure: no clock, no store."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from .._models import DeliveryStatus
from ._store import Channel, ChannelType, Message

__all__ = ["RECIPIENTS", "TENANTS", "WORKFLOWS", "generate_messages"]

WORKFLOWS = ("new-comment", "mention", "welcome", "weekly-digest", "password-reset")
TENANTS = ("acme", "globex", "initech")
RECIPIENTS = tuple(f"user_{n}" for n in range(1, 21))
_ACCOUNTS = ("acct_1", "acct_2", "acct_3", "acct_4")
_HISTORY = timedelta(days=60)

# Feeds deliver almost always; the other channels see the whole delivery lifecycle.
_FEED_DELIVERY = (
    (DeliveryStatus.DELIVERED, 90),
    (DeliveryStatus.SENT, 6),
    (DeliveryStatus.QUEUED, 4),
)
_OTHER_DELIVERY = (
    (DeliveryStatus.DELIVERED, 55),
    (DeliveryStatus.SENT, 15),
    (DeliveryStatus.QUEUED, 5),
    (DeliveryStatus.DELIVERY_ATTEMPTED, 8),
    (DeliveryStatus.UNDELIVERED, 7),
    (DeliveryStatus.NOT_SENT, 5),
    (DeliveryStatus.BOUNCED, 5),
)


def _pick_weighted(
    rng: random.Random, table: tuple[tuple[DeliveryStatus, int], ...]
) -> DeliveryStatus:
    values = [value for value, _ in table]
    weights = [weight for _, weight in table]
    return rng.choices(values, weights=weights)[0]


def _later(rng: random.Random, after: datetime, now: datetime) -> datetime:
    """A time between ``after`` and ``now``, on a whole second."""
    span = max(0, int((now - after).total_seconds()))
    return after + timedelta(seconds=rng.randint(0, span))


def generate_messages(
    channel: Channel,
    count: int,
    *,
    seed: int,
    now: datetime,
    new_id: Callable[[], str],
) -> list[Message]:
    """``count`` messages for ``channel`` inserted during the 60 days before ``now``.

    Everything but the ids is a function of ``seed``, ``count``, ``now`` and the channel type:
    recipients ``user_1``..``user_20``, five workflows, a tenant on about 70% of messages, a
    delivery status drawn from the channel type's lifecycle, engagement timestamps that follow
    one another (read implies seen for these), and trigger data with scalar keys
    (``account_id``, ``priority``, ``count``, ``urgent``) plus one nested key.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = random.Random(seed)
    in_app = channel.type is ChannelType.IN_APP_FEED
    messages: list[Message] = []
    for _ in range(count):
        inserted_at = now - timedelta(seconds=rng.randint(0, int(_HISTORY.total_seconds())))
        status = _pick_weighted(rng, _FEED_DELIVERY if in_app else _OTHER_DELIVERY)
        delivered = status in (DeliveryStatus.DELIVERED, DeliveryStatus.SENT)
        seen_at = read_at = archived_at = interacted_at = clicked_at = None
        if delivered and rng.random() < 0.6:
            seen_at = _later(rng, inserted_at, now)
            if rng.random() < 0.5:
                read_at = _later(rng, seen_at, now)
                if rng.random() < 0.2:
                    interacted_at = _later(rng, read_at, now)
                if rng.random() < 0.15:
                    clicked_at = _later(rng, read_at, now)
        if rng.random() < 0.2:
            archived_at = _later(rng, inserted_at, now)
        tenant = rng.choice(TENANTS) if rng.random() < 0.7 else None
        data: dict[str, Any] = {
            "account_id": rng.choice(_ACCOUNTS),
            "priority": rng.choice(("high", "normal", "low")),
            "count": rng.randint(0, 5),
            "urgent": rng.random() < 0.25,
            "comment": {"id": f"c_{rng.randint(1, 10_000)}"},
        }
        messages.append(
            Message(
                id=new_id(),
                channel_id=channel.id,
                channel_type=channel.type,
                recipient_id=rng.choice(RECIPIENTS),
                workflow=rng.choice(WORKFLOWS),
                tenant=tenant,
                delivery_status=status,
                inserted_at=inserted_at,
                data=data,
                seen_at=seen_at,
                read_at=read_at,
                archived_at=archived_at,
                interacted_at=interacted_at,
                link_clicked_at=clicked_at,
            )
        )
    return messages
