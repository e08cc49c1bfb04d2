"""Calls a type checker must accept, and calls it must reject.

Never imported or run: ``tests/typing/test_typing.py`` runs mypy over this file. A line that
must fail ends with ``# E: <error code> <text the message holds>``; every other line must pass.
"""

from __future__ import annotations

import knock_async as ka


async def accepted(knock: ka.KnockClient, channel_id: str) -> None:
    bulk = knock.channels.bulk
    await bulk.update_message_status(channel_id, "archive", engagement_status="read")
    await bulk.update_message_status(channel_id, "delete", archived="include")
    await bulk.update_message_status(channel_id, "read", delivery_status="not_sent")
    await bulk.update_message_status(
        channel_id,
        ka.BulkAction.ARCHIVE,
        archived=ka.ArchivedFilter.ONLY,
        delivery_status=ka.DeliveryStatus.BOUNCED,
        engagement_status=ka.EngagementStatus.LINK_CLICKED,
    )
    action: ka.BulkActionValue = "seen"
    engagement: ka.EngagementStatusValue = "unread"
    await bulk.update_message_status(channel_id, action, engagement_status=engagement)
    await bulk.update_many([channel_id], "unarchive", archived="only").aclose()
    await bulk.update_many([channel_id], ka.BulkAction.READ).aclose()


async def rejected(knock: ka.KnockClient, ch: str, name: str) -> None:
    update = knock.channels.bulk.update_message_status
    many = knock.channels.bulk.update_many
    await update(ch, "archivee")  # E: arg-type 'archivee'
    await update(ch, "read", engagement_status="reed")  # E: arg-type 'reed'
    await update(ch, "read", archived="yes")  # E: arg-type 'yes'
    await update(ch, "read", delivery_status="lost")  # E: arg-type 'lost'
    await update(ch, name)  # E: arg-type incompatible type "str"
    await many([ch], "mark_read").aclose()  # E: arg-type 'mark_read'
    await many([ch], "read", engagement_status="clicked").aclose()  # E: arg-type 'clicked'
    await update(ch, "read", archive="include")  # E: call-arg keyword argument "archive"
