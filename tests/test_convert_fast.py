"""The hot paths of the converter against its thorough cattrs path, with and without orjson.

``structure_operation`` builds a well-formed answer by hand and leaves anything else to cattrs;
``dumps_request`` writes a body by hand. These tests prove that neither changes a result or an
error message, and that orjson (the ``speedups`` extra) changes neither either.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import orjson
import pytest
from cattrs.gen import make_dict_unstructure_fn, override
from hypothesis import given, settings
from hypothesis import strategies as st

import knock_async as ka
from knock_async import _convert
from knock_async._convert import (
    _thorough_operation,
    _trigger_data_to_wire,
    converter,
    dumps_request,
    loads_operation,
    structure_operation,
)
from tests._support import sample
from tests.test_convert import requests


@pytest.fixture(params=["stdlib", "orjson"])
def json_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once on the stdlib's JSON and once through orjson (the speedups extra)."""
    if request.param == "stdlib":
        monkeypatch.setattr(_convert, "_loads", _convert._stdlib_loads)
        monkeypatch.setattr(_convert, "_dumps", _convert._stdlib_dumps)
        assert not _convert.speedups_enabled()
    else:
        monkeypatch.setattr(_convert, "_loads", _convert._speedy_loads)
        monkeypatch.setattr(_convert, "_dumps", orjson.dumps)
        assert _convert.speedups_enabled()
    return str(request.param)


# -- answers: the fast path against cattrs ---------------------------------------------------

# A complete answer, with what the fast path must also handle: an error item without its
# collection, a timestamp at another offset and one without any.
_WELL_FORMED: dict[str, Any] = {
    **sample("bulk_operation_completed_with_errors"),
    "status": "processing",
    "error_items": [{"id": "msg_1", "collection": "messages"}, {"id": "msg_2"}],
    "updated_at": "2024-05-22T12:00:04.123456+02:00",
    "started_at": "2024-05-22T12:00:01",
    "completed_at": None,
}

# Values a field may take in an answer: right ones, and every kind of wrong one.
_odd_scalars: st.SearchStrategy[Any] = st.sampled_from(
    [None, True, False, 0, -1, 1, 2**63 - 1, 2**63, -(2**63), 1.0, 1.5, "", "12", [], {}, [1]]
)
_counts = st.integers(-(2**64), 2**64) | _odd_scalars
_stamps = (
    st.datetimes(timezones=st.none() | st.just(UTC) | st.just(timezone(timedelta(hours=-3)))).map(
        datetime.isoformat
    )
    | st.sampled_from(["2024-05-22", "soon", "2024-13-01T00:00:00Z", "2024-05-22T12:00:00Z"])
    | _odd_scalars
)
_texts = st.text(max_size=8) | _odd_scalars
_statuses = (
    st.sampled_from(["queued", "processing", "completed", "failed", "paused", "QUEUED"])
    | _odd_scalars
)
_error_items = (
    st.lists(
        st.fixed_dictionaries({}, optional={"id": _texts, "collection": _texts, "x": _texts})
        | _odd_scalars,
        max_size=3,
    )
    | _odd_scalars
)
_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "__typename": _texts,
    "typename": _texts,
    "id": _texts,
    "name": _texts,
    "status": _statuses,
    "estimated_total_rows": _counts,
    "processed_rows": _counts,
    "success_count": _counts,
    "error_count": _counts,
    "error_items": _error_items,
    "progress_path": _texts,
    "inserted_at": _stamps,
    "updated_at": _stamps,
    "started_at": _stamps,
    "completed_at": _stamps,
    "failed_at": _stamps,
    "channel_id": _texts,
    "unknown_extra": _texts,
}


@st.composite
def answers(draw: st.DrawFn) -> Any:
    """A well-formed answer with a few fields changed, dropped or added."""
    data = dict(_WELL_FORMED)
    for name in draw(st.lists(st.sampled_from(sorted(_FIELDS)), max_size=4, unique=True)):
        if draw(st.booleans()):
            data[name] = draw(_FIELDS[name])
        else:
            data.pop(name, None)
    return data


def _shown(op: ka.BulkOperation) -> list[tuple[str, type, str]]:
    # repr, not ==: a datetime equal at another offset, or a str where an enum belongs, differs.
    return [
        (f.name, type(v), repr(v))
        for f in attrs.fields(ka.BulkOperation)
        for v in [getattr(op, f.name)]
    ]


def _outcome(parse: Any, *args: Any) -> Any:
    try:
        op = parse(*args)
    except ka.ResponseValidationError as exc:
        return ("error", str(exc), exc.errors)
    return ("ok", _shown(op))


@settings(max_examples=500)
@given(answers(), st.sampled_from([None, "7a2d2b3e-5a1f-4c3b-9a8e-0d4f6f0b9c11"]))
def test_fast_path_agrees_with_cattrs(data: Any, channel_id: str | None) -> None:
    """For any answer, the fast path gives what cattrs gives: the same operation (same values,
    types and offsets, channel and action included) or the same error with the same messages."""
    action = None if channel_id is None else "archive"
    fast = _outcome(lambda: structure_operation(data, channel_id=channel_id, action=action))
    thorough = _outcome(_thorough_operation, data, channel_id, action)
    assert fast == thorough


@given(st.integers(-(2**63), 2**63 - 1))
def test_any_signed_64_bit_count_is_judged_as_cattrs_judges_it(count: int) -> None:
    """Counts of either sign (negative ones are left to cattrs' range check) agree too."""
    data = {**_WELL_FORMED, "processed_rows": count, "error_count": count}
    assert _outcome(lambda: structure_operation(data)) == _outcome(
        _thorough_operation, data, None, None
    )


def test_well_formed_answer_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A complete, well-formed answer never reaches cattrs (the point of the fast path)."""

    def refuse(*_: object) -> None:
        raise AssertionError("cattrs path used")

    monkeypatch.setattr(_convert, "_thorough_operation", refuse)
    op = structure_operation(_WELL_FORMED, channel_id="c", action="archive")
    assert (op.channel_id, op.action, op.error_items[1]) == (
        "c",
        "archive",
        ka.ErrorItem(id="msg_2"),
    )
    assert op.started_at == datetime(2024, 5, 22, 12, 0, 1, tzinfo=UTC)


def test_unknown_status_goes_to_cattrs_and_is_kept() -> None:
    """A status the spec does not list yet is kept as an open-enum value (via the thorough path)."""
    op = structure_operation({**_WELL_FORMED, "status": "paused"})
    assert op.status == "paused"
    assert not op.status.is_known


# -- JSON in: orjson or not, the same results and the same errors ------------------------------


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(_WELL_FORMED).encode(),
        b"{not json",
        b"",
        b"\xff\xfe",
        b"[1, 2]",
        b"null",
        json.dumps({**_WELL_FORMED, "processed_rows": 2**70}).encode(),
        json.dumps({**_WELL_FORMED, "estimated_total_rows": float("nan")}).encode(),  # NaN
        json.dumps({**_WELL_FORMED, "name": "\ud800"}).encode(),  # a lone surrogate
        json.dumps(_WELL_FORMED).encode("utf-16"),
        b"\xef\xbb\xbf" + json.dumps(_WELL_FORMED).encode(),  # a UTF-8 BOM
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_loads_operation_is_the_same_with_and_without_orjson(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every body, good or bad, gives the same operation or the same error messages whether
    orjson decodes it or the stdlib does (orjson's refusals are decoded again by the stdlib)."""
    outcomes = []
    for loads in (_convert._stdlib_loads, _convert._speedy_loads):
        monkeypatch.setattr(_convert, "_loads", loads)
        outcomes.append(_outcome(loads_operation, body))
    assert outcomes[0] == outcomes[1]


@given(answers())
def test_any_answer_decodes_alike_with_and_without_orjson(data: Any) -> None:
    """Any answer gives the same operation or the same errors through orjson as through the
    stdlib. (orjson reads an integer past 64 bits as a float: such an answer leaves the fast
    path and is judged on the stdlib's reading, so even then nothing differs.)"""
    body = json.dumps(data).encode()
    outcomes = []
    with pytest.MonkeyPatch.context() as patch:
        for loads in (_convert._stdlib_loads, _convert._speedy_loads):
            patch.setattr(_convert, "_loads", loads)
            outcomes.append(_outcome(loads_operation, body))
    assert outcomes[0] == outcomes[1]


def test_an_integer_past_64_bits_is_judged_on_the_stdlib_reading() -> None:
    """The answer that found the difference: a count of -2**63-1, a float to orjson, gives the
    stdlib path's error through either decoder."""
    body = json.dumps({**sample("bulk_operation_queued"), "success_count": -(2**63) - 1})
    outcomes = []
    with pytest.MonkeyPatch.context() as patch:
        for loads in (_convert._stdlib_loads, _convert._speedy_loads):
            patch.setattr(_convert, "_loads", loads)
            outcomes.append(_outcome(loads_operation, body.encode()))
    assert outcomes[0] == outcomes[1]


# -- JSON out: the hand-written body against cattrs' generated hook ----------------------------

_cattrs_request = make_dict_unstructure_fn(
    ka.BulkUpdateMessagesForChannelRequest,
    converter,
    _cattrs_omit_if_default=True,
    trigger_data=override(unstruct_hook=_trigger_data_to_wire),
)


@given(requests)
def test_request_wire_is_what_cattrs_would_write(
    body: ka.BulkUpdateMessagesForChannelRequest,
) -> None:
    """The hand-written unstructure hook gives cattrs' dict, key order included."""
    ours, theirs = converter.unstructure(body), _cattrs_request(body)
    assert list(ours.items()) == list(theirs.items())


@given(requests)
def test_dumps_request_bytes(body: ka.BulkUpdateMessagesForChannelRequest) -> None:
    """Without orjson the bytes are json.dumps' compact form exactly; with it, the same JSON."""
    stdlib = _convert._stdlib_dumps(_cattrs_request(body))
    assert stdlib == json.dumps(_cattrs_request(body), separators=(",", ":")).encode()
    assert json.loads(orjson.dumps(_convert._request_to_wire(body))) == json.loads(stdlib)


def test_dumps_request_uses_the_chosen_backend(json_backend: str) -> None:
    """dumps_request writes the ten filters as compact JSON on either backend."""
    body = ka.BulkUpdateMessagesForChannelRequest(
        archived="include",
        recipient_ids=["é", "b"],
        newer_than=datetime(2024, 1, 1, tzinfo=UTC),
        trigger_data={"k": "v"},
    )
    wire = dumps_request(body)
    assert json.loads(wire) == {
        "archived": "include",
        "newer_than": "2024-01-01T00:00:00Z",
        "recipient_ids": ["é", "b"],
        "trigger_data": '{"k":"v"}',
    }
    if json_backend == "stdlib":
        assert wire.isascii()
    assert b" " not in wire
