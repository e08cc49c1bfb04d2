"""The converter: wire JSON <-> models, and typed errors for bodies that break the schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import knock_async as ka
from knock_async._convert import converter, format_datetime, loads_operation, validation_messages
from knock_async._requests import encode_body
from tests._support import sample


@pytest.mark.parametrize(
    "name",
    [
        "bulk_operation_queued",
        "bulk_operation_spec_example",
        "bulk_operation_completed_with_errors",
    ],
)
def test_samples_parse(name: str) -> None:
    """Each sample response parses into a BulkOperation with the wire's values."""
    body = sample(name)
    op = loads_operation(json.dumps(body).encode())
    assert op.id == body["id"]
    assert op.typename == "BulkOperation"
    assert op.status == body["status"]
    assert op.processed_rows == body["processed_rows"]
    assert op.inserted_at.tzinfo is not None


def test_completed_with_errors_keeps_error_items_and_ignores_extra_fields() -> None:
    """error_items become ErrorItem objects; an unknown extra field is ignored, not an error."""
    op = loads_operation(json.dumps(sample("bulk_operation_completed_with_errors")).encode())
    assert op.error_count == 2
    assert op.error_items == (
        ka.ErrorItem(id="msg_1", collection="messages"),
        ka.ErrorItem(id="msg_2", collection=None),
    )
    assert op.completed_at == datetime(2024, 5, 22, 12, 1, 30, 123456, tzinfo=UTC)


def test_optional_fields_may_be_absent() -> None:
    """Only the spec's required fields are needed; the rest default to what absence means."""
    body = {k: v for k, v in sample("bulk_operation_queued").items() if k in _REQUIRED}
    op = loads_operation(json.dumps(body).encode())
    assert op.error_count == 0
    assert op.error_items == ()
    assert op.progress_path is None
    assert op.started_at is None


_REQUIRED = {
    "__typename", "id", "name", "status", "estimated_total_rows",
    "processed_rows", "success_count", "updated_at", "inserted_at",
}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "invalid JSON @ $"),
        (b"", "invalid JSON @ $"),
        (b"\xff\xfe", "invalid JSON @ $"),
        (b"[1, 2]", "expected an object @ $, got list"),
        (b"null", "expected an object @ $, got NoneType"),
        (json.dumps({"__typename": "BulkOperation"}).encode(), "required field missing @ $.id"),
        (
            json.dumps({**sample("bulk_operation_queued"), "processed_rows": "12"}).encode(),
            "expected int, got str @ $.processed_rows",
        ),
        (
            json.dumps({**sample("bulk_operation_queued"), "success_count": True}).encode(),
            "expected int, got bool @ $.success_count",
        ),
        (
            json.dumps({**sample("bulk_operation_queued"), "inserted_at": "soon"}).encode(),
            "@ $.inserted_at",
        ),
        (
            json.dumps({**sample("bulk_operation_queued"), "error_items": [{"x": 1}]}).encode(),
            "required field missing @ $.error_items[0].id",
        ),
        (
            json.dumps({**sample("bulk_operation_queued"), "status": None}).encode(),
            "@ $.status",
        ),
    ],
)
def test_bad_bodies_raise_response_validation_error(body: bytes, expected: str) -> None:
    """A body that breaks the schema raises ResponseValidationError with cattrs' error path."""
    with pytest.raises(ka.ResponseValidationError) as info:
        loads_operation(body)
    assert any(expected in line for line in info.value.errors), info.value.errors
    assert isinstance(info.value, ka.KnockError)
    assert not isinstance(info.value, KeyError | ValueError)


def test_naive_wire_datetime_is_read_as_utc() -> None:
    """A timestamp without an offset (a proxy dropped it) is taken as UTC, not local time."""
    op = loads_operation(
        json.dumps(
            {**sample("bulk_operation_queued"), "updated_at": "2024-05-22T12:00:00"}
        ).encode()
    )
    assert op.updated_at == datetime(2024, 5, 22, 12, tzinfo=UTC)


def test_request_body_wire_form_with_all_ten_filters() -> None:
    """All ten filters serialise as the spec's example shows: trigger_data as a JSON string."""
    body = ka.BulkUpdateMessagesForChannelRequest(
        archived="include",
        delivery_status="delivered",
        engagement_status="seen",
        has_tenant=True,
        newer_than=datetime(2024, 1, 1, tzinfo=UTC),
        older_than=datetime(2024, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        recipient_ids=["recipient1", "recipient2"],
        tenants=["tenant1", "tenant2"],
        trigger_data={"key": "value"},
        workflows=["workflow1", "workflow2"],
    )
    assert json.loads(encode_body(body)) == {
        "archived": "include",
        "delivery_status": "delivered",
        "engagement_status": "seen",
        "has_tenant": True,
        "newer_than": "2024-01-01T00:00:00Z",
        "older_than": "2024-01-01T05:30:00+05:30",
        "recipient_ids": ["recipient1", "recipient2"],
        "tenants": ["tenant1", "tenant2"],
        "trigger_data": '{"key":"value"}',
        "workflows": ["workflow1", "workflow2"],
    }


def test_omitted_filters_are_left_out() -> None:
    """A filter left as None is absent from the body, not sent as null."""
    assert encode_body(ka.BulkUpdateMessagesForChannelRequest()) == b"{}"
    assert json.loads(encode_body(ka.BulkUpdateMessagesForChannelRequest(has_tenant=False))) == {
        "has_tenant": False
    }


# -- property tests ----------------------------------------------------------------------

aware_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=9))]),
)
texts = st.text(min_size=1, max_size=20)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10)
statuses = st.sampled_from(list(ka.BulkOperationStatus)) | st.text(
    alphabet=st.characters(categories=["Ll"]), min_size=1, max_size=12
).map(ka.BulkOperationStatus)

operations = st.builds(
    ka.BulkOperation,
    id=st.uuids().map(str),
    typename=st.just("BulkOperation"),
    name=texts,
    status=statuses,
    estimated_total_rows=st.integers(0, 10**9),
    processed_rows=st.integers(0, 10**9),
    success_count=st.integers(0, 10**9),
    inserted_at=aware_datetimes,
    updated_at=aware_datetimes,
    error_count=st.integers(0, 10**6),
    error_items=st.lists(
        st.builds(ka.ErrorItem, id=texts, collection=st.none() | texts), max_size=3
    ).map(tuple),
    progress_path=st.none() | st.uuids().map(lambda u: f"/v1/bulk_operations/{u}"),
    started_at=st.none() | aware_datetimes,
    completed_at=st.none() | aware_datetimes,
    failed_at=st.none() | aware_datetimes,
)


@given(operations)
def test_operation_round_trips_through_the_wire(op: ka.BulkOperation) -> None:
    """unstructure -> JSON -> structure gives back an equal BulkOperation."""
    wire = json.dumps(converter.unstructure(op))
    again = loads_operation(wire.encode())
    assert again == op
    assert type(again.status) is ka.BulkOperationStatus
    assert again.status.is_terminal is op.status.is_terminal
    assert "__typename" in json.loads(wire)


requests = st.builds(
    ka.BulkUpdateMessagesForChannelRequest,
    archived=st.none() | st.sampled_from(list(ka.ArchivedFilter)),
    delivery_status=st.none() | st.sampled_from(list(ka.DeliveryStatus)),
    engagement_status=st.none() | st.sampled_from(list(ka.EngagementStatus)),
    has_tenant=st.none() | st.booleans(),
    newer_than=st.none() | aware_datetimes,
    older_than=st.none() | aware_datetimes,
    recipient_ids=st.none() | st.lists(texts, max_size=4),
    tenants=st.none() | st.lists(texts, max_size=4),
    trigger_data=st.none() | st.dictionaries(texts, json_scalars, max_size=4),
    workflows=st.none() | st.lists(texts, max_size=4),
)


@given(requests)
def test_request_round_trips_through_the_wire(body: ka.BulkUpdateMessagesForChannelRequest) -> None:
    """A request body survives encode -> JSON -> structure, and None filters never appear."""
    wire: dict[str, Any] = json.loads(encode_body(body))
    assert all(value is not None for value in wire.values())
    if body.trigger_data is not None:
        assert isinstance(wire["trigger_data"], str)
    assert converter.structure(wire, ka.BulkUpdateMessagesForChannelRequest) == body


@given(aware_datetimes)
def test_datetimes_always_carry_an_offset(value: datetime) -> None:
    """Every datetime written to the wire has an explicit offset (Z for UTC)."""
    text = format_datetime(value)
    assert text.endswith("Z") or text[-6] in "+-"
    assert datetime.fromisoformat(text) == value


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"recipient_ids": "abc"}, "recipient_ids must be a list of strings"),
        ({"archived": None}, "archived must not be null"),
        ({"older_than": "2024-01-01"}, "older_than must be timezone-aware"),
        ({"older_than": 1704067200}, "older_than must be a string"),
        ({"trigger_data": {"a": 1}}, "trigger_data must be a string"),
        ({"has_tenant": "true"}, "has_tenant must be a bool"),
        ({"bogus": 1}, "extra fields found (bogus)"),
        ([], "expected a JSON object"),
    ],
)
def test_request_bodies_from_the_wire_are_read_strictly(body: object, message: str) -> None:
    """A request body from JSON is checked as the spec reads: no nulls, no coercion."""
    with pytest.raises(Exception) as info:  # noqa: PT011 - cattrs wraps the model's errors
        converter.structure(body, ka.BulkUpdateMessagesForChannelRequest)
    assert any(message in line for line in validation_messages(info.value)), info.value
