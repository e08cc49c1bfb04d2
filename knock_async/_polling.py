"""One poll of a followed operation: the I/O step that ``Poller`` and ``FanOut`` share.

The transport sends the follow's GET (bounded by the follow's deadline) and the follow state
turns what came back into its decision; neither follower interprets an answer itself.
"""

from __future__ import annotations

from ._errors import KnockError
from ._follow import Decision, Follow
from ._transport import Transport

__all__ = ["poll_once"]


async def poll_once(transport: Transport, follow: Follow) -> Decision:
    """Poll ``follow``'s operation once through ``transport``; the follow's decision."""
    assert follow.request is not None  # only a follow with a poll request is polled
    try:
        answer = await transport.exchange(follow.request, deadline=follow.deadline)
    except KnockError as exc:
        return follow.unanswered(transport.clock(), exc, rng=transport.rng)
    return follow.answered(transport.clock(), answer, rng=transport.rng)
