"""The spec extract as Prism can check it: the one rewrite Prism needs, and nothing else.

Knock's published document writes "or null" as a schema holding only ``nullable: true`` (no
``type``), e.g. ``oneOf: [{$ref: InlinePreferenceSetRequest}, {nullable: true}]``, and twice
as ``{allOf: [...], nullable: true}``. Ajv, which Prism validates with, refuses to compile
``nullable`` without ``type`` ("nullable" cannot be used without "type"), and Prism swallows
that error and lets the request through unchecked: with the extract as it is, Prism checks no
request body of users identify and preferences, objects set and subscriptions add, tenants set
and schedules create (tests/prism/test_prism.py proves that each body IS checked here).

So each such schema is rewritten to what it plainly means, a null alternative: the bare one to
``{enum: [null]}``, one with other keywords to ``{anyOf: [<those keywords>, {enum: [null]}]}``.
Ajv refuses a type-less ``nullable: false`` too (twice in the extract, on ``oneOf`` schemas);
that one is OpenAPI's default, so it is dropped.
Every other byte of meaning is the extract's, which stays as committed (``rewritten`` lists
the places, so a new one in a refreshed extract shows up in the test that pins them).
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["prism_ready"]

# Keys that annotate a schema without constraining a value.
_ANNOTATIONS = frozenset({"description", "example", "title"})


def _rewrite(node: Any, path: str, rewritten: list[str]) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, f"{path}/{i}", rewritten) for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out = {key: _rewrite(value, f"{path}/{key}", rewritten) for key, value in node.items()}
    if "nullable" not in out or "type" in out:
        return out
    rewritten.append(path)
    if out.pop("nullable") is not True:
        return out  # `nullable: false` is the default: dropping it changes nothing
    kept = {k: v for k, v in out.items() if k in _ANNOTATIONS or k.startswith("x-")}
    rest = {k: v for k, v in out.items() if k not in kept}
    null = {"enum": [None]}
    return {**kept, **({"anyOf": [rest, null]} if rest else null)}


def prism_ready(spec: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``spec`` with each type-less ``nullable: true`` schema rewritten as a null
    alternative, and the JSON pointers of the schemas rewritten."""
    rewritten: list[str] = []
    ready = _rewrite(copy.deepcopy(spec), "#", rewritten)
    return ready, rewritten
