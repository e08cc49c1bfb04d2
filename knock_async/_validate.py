"""One set of argument checks for every policy, the client and the emulator's settings. Pure.

The same mistake gets the same exception and the same message shape everywhere:
``"NAME must be REQUIREMENT, got VALUE"``. A value of the wrong type (a string, ``None``
where a number is required, or a bool: ``True`` is an int to Python but a bug here) raises
``TypeError``; a number of the right type but out of range (NaN and infinities included)
raises ``ValueError``. Each check returns the value, so it can be used inline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

__all__ = [
    "attrs_check",
    "boolean",
    "fraction",
    "non_negative",
    "non_negative_int",
    "number_where",
    "optional",
    "positive",
    "positive_int",
]

T = TypeVar("T")


def _fail(name: str, requirement: str, value: object, error: type[Exception]) -> Exception:
    return error(f"{name} must be {requirement}, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number_where(name: str, value: object, requirement: str, ok: Callable[[float], bool]) -> float:
    """A finite number for which ``ok`` holds; ``requirement`` says so in the message."""
    if not _is_number(value):
        raise _fail(name, requirement, value, TypeError)
    number = float(value)  # type: ignore[arg-type]  # checked just above
    if not (math.isfinite(number) and ok(number)):
        raise _fail(name, requirement, value, ValueError)
    return value  # type: ignore[return-value]  # an int stays an int


def _integer(name: str, value: object, requirement: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(name, requirement, value, TypeError)
    if value < minimum:
        raise _fail(name, requirement, value, ValueError)
    return value


def positive(name: str, value: object) -> float:
    """A finite number > 0."""
    return number_where(name, value, "a finite number > 0", lambda v: v > 0)


def non_negative(name: str, value: object) -> float:
    """A finite number >= 0."""
    return number_where(name, value, "a finite number >= 0", lambda v: v >= 0)


def fraction(name: str, value: object) -> float:
    """A number in ``(0, 1]``."""
    return number_where(name, value, "a number in (0, 1]", lambda v: 0 < v <= 1)


def positive_int(name: str, value: object) -> int:
    """An int >= 1 (not a bool, not a float)."""
    return _integer(name, value, "an int >= 1", 1)


def non_negative_int(name: str, value: object) -> int:
    """An int >= 0 (not a bool, not a float)."""
    return _integer(name, value, "an int >= 0", 0)


def boolean(name: str, value: object) -> bool:
    """``True`` or ``False``, not merely something truthy."""
    if not isinstance(value, bool):
        raise _fail(name, "a bool", value, TypeError)
    return value


def optional(check: Callable[[str, object], T]) -> Callable[[str, object], T | None]:
    """``check``, with ``None`` also allowed (and returned)."""

    def checked(name: str, value: object) -> T | None:
        if value is None:
            return None
        try:
            return check(name, value)
        except (TypeError, ValueError) as exc:
            # Say that None was an option too, keeping the message's shape.
            text = str(exc).replace(" must be ", " must be None or ", 1)
            raise type(exc)(text) from None

    return checked


def attrs_check(check: Callable[[str, object], Any]) -> Callable[[Any, Any, Any], None]:
    """An attrs validator running ``check`` under the name ``Class.field``."""

    def validator(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check(f"{type(instance).__name__}.{attribute.name}", value)

    return validator
