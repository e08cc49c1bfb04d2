"""``BulkOperationHandle``: a small, secret-free reference to a bulk operation.

A web request can start an update, put ``handle.to_json()`` on a queue, and a worker in this
or another process can ``poll(BulkOperationHandle.from_json(text))``. It holds no key, no URL
origin to trust and no session: the worker's own client decides where requests go.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

__all__ = ["BulkOperationHandle"]

_VERSION = 1


def _non_empty(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _optional_str(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str or None, got {type(value).__name__}")


@attrs.frozen(kw_only=True)
class BulkOperationHandle:
    """What is needed to follow a bulk operation later: its id and its ``progress_path``.

    ``channel_id`` and ``action`` are kept when known, for the worker's logs and displays.
    """

    operation_id: str = attrs.field(validator=_non_empty)
    progress_path: str | None = attrs.field(default=None, validator=_optional_str)
    channel_id: str | None = attrs.field(default=None, validator=_optional_str)
    action: str | None = attrs.field(default=None, validator=_optional_str)

    def to_dict(self) -> dict[str, Any]:
        """The handle as a JSON-ready dict: ``v`` (the format's version), ``operation_id`` and
        whichever of ``progress_path``, ``channel_id`` and ``action`` are set."""
        data: dict[str, Any] = {"v": _VERSION, "operation_id": self.operation_id}
        for name in ("progress_path", "channel_id", "action"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    def to_json(self) -> str:
        """Compact JSON, stable across versions of this library that share ``"v": 1``."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: object) -> BulkOperationHandle:
        """The handle from ``data``, a dict that ``to_dict`` gave.

        Raises ``TypeError`` if ``data`` is not a dict and ``ValueError`` naming what is wrong
        for another version, an unknown field, or a missing or empty ``operation_id``."""
        if not isinstance(data, dict):
            raise TypeError(f"a handle must be a JSON object, got {type(data).__name__}")
        version = data.get("v", _VERSION)
        if version != _VERSION:
            raise ValueError(f"unsupported handle version {version!r} (this library reads 1)")
        unknown = set(data) - {"v", "operation_id", "progress_path", "channel_id", "action"}
        if unknown:
            raise ValueError(f"unknown handle fields: {', '.join(sorted(unknown))}")
        if "operation_id" not in data:
            raise ValueError("a handle needs an operation_id")
        return cls(
            operation_id=data["operation_id"],
            progress_path=data.get("progress_path"),
            channel_id=data.get("channel_id"),
            action=data.get("action"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> BulkOperationHandle:
        """The handle ``to_json`` wrote; ``ValueError`` saying what is wrong with any other text
        (text from a queue is data, whatever its shape: never a ``TypeError`` or a
        ``RecursionError`` because of what it holds)."""
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("a handle must be JSON: nested too deeply") from None
        except ValueError as exc:  # UnicodeDecodeError included
            raise ValueError(f"a handle must be JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
