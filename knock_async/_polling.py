"""Moved to ``_follow``; this name stays importable for code that still imports it from here
(the CLI, which another change owns), and goes once nothing does."""

from ._follow import PollPolicy, has_changed, poll_delay

__all__ = ["PollPolicy", "has_changed", "poll_delay"]
