"""Every public name says what it is: the exports of ``knock_async`` and
``knock_async.testing``, and their public methods and properties, carry their own docstrings."""

from __future__ import annotations

import enum
import inspect
import types
from collections.abc import Iterator

import pytest

import knock_async
import knock_async.testing

MODULES = (knock_async, knock_async.testing)


def _own_doc(obj: object) -> str:
    if isinstance(obj, type):
        return str(vars(obj).get("__doc__") or "")
    return inspect.getdoc(obj) or ""


def _documented_things() -> Iterator[tuple[str, object]]:
    for module in MODULES:
        for name in module.__all__:
            if name.startswith("__"):
                continue  # __version__
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # type aliases: documented where they are defined and in the README
            yield f"{module.__name__}.{name}", obj
            if not inspect.isclass(obj) or issubclass(obj, enum.Enum):
                continue
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    member = member.fget
                if isinstance(member, types.FunctionType):
                    yield f"{module.__name__}.{name}.{attr}", member


THINGS = dict(_documented_things())


def test_the_walk_finds_the_public_api() -> None:
    """The walk covers the client, the emulator and their methods (it is not vacuous)."""
    assert "knock_async.KnockClient" in THINGS
    assert "knock_async.testing.KnockEmulator.add_messages" in THINGS
    assert "knock_async.BulkOperationHandle.from_json" in THINGS
    assert len(THINGS) > 100


@pytest.mark.parametrize("name", sorted(THINGS))
def test_public_name_has_a_docstring(name: str) -> None:
    """The object has a docstring of its own (not one inherited from a base class) that is a
    sentence, not a placeholder."""
    doc = _own_doc(THINGS[name]).strip()
    assert len(doc) >= 15, f"{name} has no docstring saying what it is"
