"""Fixtures shared by the client tests (defined in ``tests/_support.py``)."""

from tests._support import broken_http, fake_knock, make_client, vtime

__all__ = ["broken_http", "fake_knock", "make_client", "vtime"]
