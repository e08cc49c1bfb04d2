"""Fixtures shared by the client tests (defined in ``tests/_support.py``)."""

from tests._support import fake_knock, make_client, vtime

__all__ = ["fake_knock", "make_client", "vtime"]
