"""The table of Knock's bulk endpoints (client side) against the spec extract and the
emulator's own table, and the pure request building: bodies, query strings, refusals."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

import knock_async as ka
from knock_async._endpoints import ENDPOINTS, MAX_REQUEST_LINE, build
from knock_async.testing._bulk_endpoints import BULK_ROUTES

SPEC = Path(__file__).resolve().parent / "spec" / "knock-bulk-operations.openapi.yaml"
BASE = URL("https://api.knock.app")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    with SPEC.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


def test_table_matches_the_spec_and_the_emulator(spec: dict[str, Any]) -> None:
    """Every row's route is a POST in the spec at tier 1 (the spec's x-ratelimit-tier) with
    the row's items field (required in the body, or the query parameter); the emulator's own
    table has the same routes, fields and operation names."""
    assert len(ENDPOINTS) == 10
    for row in ENDPOINTS.values():
        operation = spec["paths"][row.route]["post"]
        assert operation["x-ratelimit-tier"] == row.tier.level == 1
        if row.in_query:
            assert [p["name"] for p in operation["parameters"]] == [row.items]
            assert "requestBody" not in operation
        else:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            schema = spec["components"]["schemas"][ref.rpartition("/")[2]]
            assert row.items in schema["required"]
        mirror = BULK_ROUTES[row.route]
        assert (mirror.items, mirror.operation, mirror.in_query) == (
            row.items,
            row.operation,
            row.in_query,
        )
    assert set(BULK_ROUTES) == {row.route for row in ENDPOINTS.values()}
    assert {row.tier for row in ENDPOINTS.values()} == {t for t in ka.Tier if t.level == 1}


def test_requests_carry_route_and_tier_as_class_attributes() -> None:
    """A request's class names its route template (no ids: what hooks and metrics label it
    by) and its budget; the URL fills the collection in, encoded."""
    request = build(
        ENDPOINTS["objects.bulk.add_subscriptions"],
        BASE,
        {},
        [{"id": "o", "recipients": ["u"]}],
        collection="my projects",
    )
    assert request.method == "POST"
    assert request.route == "/v1/objects/{collection}/bulk/subscriptions/add"
    assert request.tier is ka.Tier.OBJECTS_ADD_SUBSCRIPTIONS
    assert request.url.raw_path == "/v1/objects/my%20projects/bulk/subscriptions/add"
    assert json.loads(request.body or b"") == {"subscriptions": [{"id": "o", "recipients": ["u"]}]}


IDS = st.lists(st.text(min_size=1, max_size=12).filter(str.strip), min_size=1, max_size=40)


@given(ids=IDS)
def test_tenant_ids_round_trip_through_the_query(ids: list[str]) -> None:
    """Any ids (spaces, '&', '=', non-ASCII) go out as ``tenant_ids[]=...`` that a server
    reads back as the same list, in order, with no body."""
    request = build(ENDPOINTS["tenants.bulk.delete"], BASE, {}, ids)
    assert request.body is None
    query = urlsplit(str(request.url)).query
    assert parse_qs(query, keep_blank_values=True) == {"tenant_ids[]": ids}


@given(ids=IDS)
def test_id_lists_go_out_as_json(ids: list[str]) -> None:
    """A list of ids is sent as the spec's body, unchanged and in order."""
    request = build(ENDPOINTS["users.bulk.delete"], BASE, {}, ids)
    assert json.loads(request.body or b"") == {"user_ids": ids}


def test_request_line_limit_is_exact() -> None:
    """The longest tenant list whose request line fits 8,000 bytes is sent; one more id is
    refused, naming delete_all."""
    row = ENDPOINTS["tenants.bulk.delete"]
    ids: list[str] = []
    line = 0
    while True:
        candidate = [*ids, f"t{len(ids):07d}"]
        probe = len("POST /v1/tenants/bulk/delete?") + len(" HTTP/1.1")
        probe += sum(len("tenant_ids%5B%5D=&") + len(i) for i in candidate) - 1
        if probe > MAX_REQUEST_LINE:
            break
        request = build(row, BASE, {}, candidate)
        line = len("POST ") + len(request.url.raw_path_qs) + len(" HTTP/1.1")
        assert line == probe
        ids = candidate
    assert line > MAX_REQUEST_LINE - 30
    with pytest.raises(ValueError, match=r"knock\.tenants\.bulk\.delete_all\(tenant_ids\)"):
        build(row, BASE, {}, candidate)


def test_items_are_read_lazily_up_to_the_cap() -> None:
    """An iterator of items is read only one past the cap before the refusal (a generator of
    a million users is never held whole by a starter)."""
    taken = 0

    def users() -> Any:
        nonlocal taken
        for i in range(1_000_000):
            taken += 1
            yield {"id": str(i)}

    with pytest.raises(ValueError, match="identify_all"):
        build(ENDPOINTS["users.bulk.identify"], BASE, {}, users())
    assert taken == 1001


def test_schedule_times_must_be_aware() -> None:
    """A naive scheduled_at is refused (the client does not guess a timezone); an aware one
    goes out in ISO 8601."""
    from datetime import UTC, datetime

    row = ENDPOINTS["schedules.bulk.create"]
    with pytest.raises(ValueError, match=r"schedules\[0\]\.scheduled_at"):
        build(
            row,
            BASE,
            {},
            [{"workflow": "w", "recipient": "u", "scheduled_at": datetime(2030, 1, 1)}],
        )
    at = datetime(2030, 1, 1, tzinfo=UTC)
    request = build(row, BASE, {}, [{"workflow": "w", "recipient": "u", "scheduled_at": at}])
    assert json.loads(request.body or b"")["schedules"][0]["scheduled_at"] == at.isoformat()


def test_a_record_of_the_wrong_kind_is_a_type_error() -> None:
    """A record meant for another endpoint is refused by type, naming the index."""
    with pytest.raises(TypeError, match=r"users\[0\] must be a mapping or a UserRecord"):
        build(ENDPOINTS["users.bulk.identify"], BASE, {}, [ka.TenantRecord(id="t")])


def test_a_nan_in_an_item_is_refused_before_sending() -> None:
    """JSON has no NaN (Knock's parser refuses it): a body holding one is a ValueError naming
    the item, not a request sent with ``NaN`` in it."""
    users = [{"id": f"u{i}"} for i in range(5)]
    users[3]["score"] = float("nan")  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"^users\[3\] cannot be sent as JSON: Out of range float"):
        build(ENDPOINTS["users.bulk.identify"], BASE, {}, users)


class _NoOffset(tzinfo):
    """A tzinfo that knows no offset: the datetime is naive in all but name."""

    def utcoffset(self, dt: datetime | None) -> None:
        return None

    def dst(self, dt: datetime | None) -> None:
        return None

    def tzname(self, dt: datetime | None) -> str:
        return "unknown"


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"scheduled_at": "2026-01-01T09:00:00"}, ValueError, r"scheduled_at must be an RFC 3339"),
        ({"ending_at": "not a date"}, ValueError, r"ending_at must be an RFC 3339 date-time"),
        ({"ending_at": "20260101T090000Z"}, ValueError, r"ending_at must be an RFC 3339"),
        ({"ending_at": "2026-01-01T09:00Z"}, ValueError, r"ending_at must be an RFC 3339"),
        ({"ending_at": "2026-13-01T09:00:00Z"}, ValueError, r"ending_at must be an RFC 3339"),
        (
            {"scheduled_at": datetime(2026, 1, 1, tzinfo=_NoOffset())},
            ValueError,
            r"scheduled_at must be timezone-aware",
        ),
        (
            {"repeats": [{"frequency": "daily", "days": [["mon"]]}]},
            ValueError,
            r"repeats\[0\]\.days",
        ),
        (
            {"repeats": [{"frequency": "daily", "interval": "two"}]},
            TypeError,
            r"repeats\[0\]\.interval must be an integer",
        ),
        (
            {"scheduled_at": 1767258000},
            TypeError,
            r"scheduled_at must be a timezone-aware datetime",
        ),
        ({"repeats": [{"frequency": "fortnightly"}]}, ValueError, r"repeats\[0\]\.frequency"),
        (
            {"repeats": [{"frequency": "weekly", "days": ["monday"]}]},
            ValueError,
            r"repeats\[0\]\.days must",
        ),
        ({"repeats": [{"days": ["mon"]}]}, ValueError, r"repeats\[0\]\.frequency must be"),
        ({"repeats": {"frequency": "daily"}}, TypeError, r"repeats must be a list"),
    ],
)
def test_schedule_times_and_repeats_are_checked_before_sending(
    change: dict[str, Any], error: type[Exception], message: str
) -> None:
    """A schedule's time given as a string needs an offset (the spec's ``date-time``), and
    its repeat rules the spec's frequencies and weekdays: refused naming the field."""
    item = {"workflow": "w", "recipient": "u", **change}
    with pytest.raises(error, match=r"schedules\[0\]\." + message):
        build(ENDPOINTS["schedules.bulk.create"], BASE, {}, [item])


@pytest.mark.parametrize(
    "at",
    [
        "2026-01-01T09:00:00Z",
        "2026-06-01T09:00:00+02:00",
        "2026-01-01t09:00:00z",  # RFC 3339 allows lower case
        "2026-01-01 09:00:00-05:00",  # and a space
        "2026-01-01T09:00:00.123456Z",
    ],
)
def test_schedule_times_with_an_offset_and_known_repeats_go_out_as_given(at: str) -> None:
    """An RFC 3339 string (``Z`` or an offset) is sent as written; rules pass through."""
    rules = [{"frequency": "weekly", "days": ["mon", "fri"], "hours": 9, "interval": 2}]
    item = {"workflow": "w", "recipient": "u", "scheduled_at": at, "ending_at": at,
            "repeats": rules}  # fmt: skip
    sent = json.loads(build(ENDPOINTS["schedules.bulk.create"], BASE, {}, [item]).body or b"")
    assert sent["schedules"][0] == item
