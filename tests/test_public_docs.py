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


# Made by the client (``poll``, ``update_many``), never by the caller: their constructor
# arguments are internal.
_BUILT_BY_THE_CLIENT = {"knock_async.Poller", "knock_async.FanOut"}


def _parameters(function: object) -> list[str]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [
        p.name
        for p in signature.parameters.values()
        if p.name not in ("self", "cls")
        and not p.name.startswith("_")
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _argument_docs() -> Iterator[tuple[str, list[str], str]]:
    """(name, its arguments, the text that must name them) for every public callable."""
    for name, obj in THINGS.items():
        if isinstance(obj, type):
            init = vars(obj).get("__init__")
            if init is None or hasattr(obj, "__attrs_attrs__") or name in _BUILT_BY_THE_CLIENT:
                continue  # attrs records: their fields are in the README's reference
            if issubclass(obj, BaseException):
                continue  # errors are raised by the library, not built by the caller
            yield name, _parameters(init), _own_doc(obj) + (init.__doc__ or "")
        else:
            yield name, _parameters(obj), _own_doc(obj)


ARGUMENT_DOCS = {name: (params, doc) for name, params, doc in _argument_docs() if params}


def test_the_walk_finds_arguments() -> None:
    """Constructors and methods with arguments are among those checked."""
    assert "knock_async.KnockClient" in ARGUMENT_DOCS
    assert "knock_async.testing.KnockEmulator.add_message" in ARGUMENT_DOCS


@pytest.mark.parametrize("name", sorted(ARGUMENT_DOCS))
def test_docstring_names_every_argument(name: str) -> None:
    """Each argument of a public function, method or constructor is named in its docstring."""
    params, doc = ARGUMENT_DOCS[name]
    missing = [p for p in params if p not in doc]
    assert not missing, f"{name}: the docstring does not mention {', '.join(missing)}"
