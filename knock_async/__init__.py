"""knock_async: asyncio-native client for Knock's channel bulk message-status API."""

from ._version import __version__

__all__ = ["__version__"]
