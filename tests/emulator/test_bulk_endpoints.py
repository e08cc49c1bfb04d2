"""The ten users, objects, tenants and schedules bulk endpoints: knock_async's starters and
knockapi's, unmodified, against the emulator, followed to the end; what knock_async sends
checked against the spec extract (tests/spec/knock-bulk-operations.openapi.yaml)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import yaml
from knockapi import AsyncKnock

import knock_async as ka
from knock_async._endpoints import ENDPOINTS
from knock_async.testing import KnockEmulator, ManualClock
from knock_async.testing._bulk_endpoints import BULK_ROUTES

API_KEY = "sk_test_emulator"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SPEC_PATH = Path(__file__).resolve().parent.parent / "spec" / "knock-bulk-operations.openapi.yaml"

Call = Callable[[Any], Awaitable[Any]]


def _seed(emu: KnockEmulator) -> None:
    """What the calls below change: users, objects, subscriptions and tenants to delete."""
    emu.add_users("u1", "u2", "gone1", "gone2")
    emu.add_objects("projects", "p1", "p2", "old1", "old2")
    emu.add_objects("teams", "t-a")


# (what the call is, the call (same for both clients: knockapi's names), Knock's operation
# name, rows it counts)
CASES: list[tuple[str, Call, str, int]] = [
    (
        "users.identify",
        lambda k: k.users.bulk.identify(users=[{"id": "n1", "name": "Ann"}, {"id": "n2"}]),
        "users.identify",
        2,
    ),
    (
        "users.delete",
        lambda k: k.users.bulk.delete(user_ids=["gone1", "gone2"]),
        "users.delete",
        2,
    ),
    (
        "users.set_preferences",
        lambda k: k.users.bulk.set_preferences(
            preferences={"channel_types": {"email": False}}, user_ids=["u1", "u2"]
        ),
        "users.set_preferences",
        2,
    ),
    (
        "objects.set",
        lambda k: k.objects.bulk.set(
            "projects", objects=[{"id": "p3", "name": "P3"}, {"id": "p4"}]
        ),
        "objects.projects.set",
        2,
    ),
    (
        "objects.delete",
        lambda k: k.objects.bulk.delete("projects", object_ids=["old1", "old2"]),
        "objects.projects.delete",
        2,
    ),
    (
        "objects.add_subscriptions",
        lambda k: k.objects.bulk.add_subscriptions(
            "projects",
            subscriptions=[
                {"id": "p1", "recipients": ["u1", {"id": "t-a", "collection": "teams"}]},
                {"id": "p2", "recipients": [{"id": "new-user", "name": "Inline"}]},
            ],
        ),
        "objects.projects.upsert_subscriptions",
        3,
    ),
    (
        "objects.delete_subscriptions",
        lambda k: k.objects.bulk.delete_subscriptions(
            "projects", subscriptions=[{"id": "p1", "recipients": ["u1", "u2"]}]
        ),
        "objects.projects.delete_subscriptions",
        2,
    ),
    (
        "tenants.set",
        lambda k: k.tenants.bulk.set(tenants=["acme", {"id": "globex", "name": "Globex"}]),
        "tenants.set",
        2,
    ),
    (
        "tenants.delete",
        lambda k: k.tenants.bulk.delete(tenant_ids=["acme", "initech"]),
        "tenants.delete",
        2,
    ),
    (
        "schedules.create",
        lambda k: k.schedules.bulk.create(
            schedules=[
                {
                    "workflow": "digest",
                    "recipient": "u1",
                    "repeats": [{"frequency": "daily", "hours": 9}],
                },
                {"workflow": "digest", "recipient": {"id": "u9", "email": "u9@example.com"}},
            ]
        ),
        "schedules.create_schedules",
        2,
    ),
]
IDS = [case[0] for case in CASES]


@pytest.fixture(scope="module")
def bulk_spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


def _json_schema(schema: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema: ``nullable`` becomes a ``null`` type (alone: only null)."""
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: _json_schema(v)
        for k, v in schema.items()
        if not k.startswith("x-") and k not in ("example", "nullable")
    }
    if schema.get("nullable") is True:
        out["type"] = [out["type"], "null"] if "type" in out else "null"
    return out


def _request_validator(spec: dict[str, Any], route: str) -> Callable[[Any], None]:
    """Validates a body against the spec's request schema of ``route``."""
    body = spec["paths"][route]["post"]["requestBody"]["content"]["application/json"]
    schemas = _json_schema(spec["components"]["schemas"])
    # The spec's RecipientRequest is a oneOf whose branches overlap: an inline user allows
    # any extra property, so an object ({"id", "collection"}) matches both it and the inline
    # object. Knock reads it as "one of these shapes"; so do we.
    recipient = schemas["RecipientRequest"]
    recipient["anyOf"] = recipient.pop("oneOf")
    root = {**_json_schema(body["schema"]), "components": {"schemas": schemas}}
    validator = jsonschema.Draft202012Validator(root)

    def validate(instance: Any) -> None:
        errors = [e.message for e in validator.iter_errors(instance)]
        assert not errors, (route, errors)

    return validate


@pytest.mark.parametrize(("what", "call", "name", "rows"), CASES, ids=IDS)
async def test_knock_async_starts_and_follows_each(
    emu: KnockEmulator, what: str, call: Call, name: str, rows: int
) -> None:
    """Each starter returns the queued operation with Knock's name; polling follows it to
    ``completed`` with one success per item (per object and recipient pair)."""
    _seed(emu)
    async with emu.client() as knock:
        operation = await call(knock)
        assert isinstance(operation, ka.BulkOperation)
        assert operation.name == name
        assert operation.estimated_total_rows == rows
        final = await knock.bulk_operations.poll(operation)
    assert final.status == ka.BulkOperationStatus.COMPLETED
    assert (final.success_count, final.error_count, final.processed_rows) == (rows, 0, rows)
    assert final.name == name


@pytest.mark.parametrize(("what", "call", "name", "rows"), CASES, ids=IDS)
async def test_knockapi_runs_each_unmodified(
    emu: KnockEmulator, what: str, call: Call, name: str, rows: int
) -> None:
    """knockapi's AsyncKnock, pointed at the emulator, runs the same call; the operation it
    reads back is completed with one success per item and Knock's name."""
    _seed(emu)
    async with AsyncKnock(api_key=API_KEY, base_url=emu.base_url, max_retries=0) as knock:
        operation = await call(knock)
        assert operation.name == name
        emu.settle()
        final = await knock.bulk_operations.get(operation.id)
    assert final.status == "completed"
    assert (final.success_count, final.error_count) == (rows, 0)


async def test_what_each_call_changes(emu: KnockEmulator) -> None:
    """The emulator's views show each call's effect: users identified and deleted,
    preferences replaced, objects set and deleted, subscriptions upserted (inline recipients
    identified) and deleted, tenants set and deleted, schedules created."""
    _seed(emu)
    async with emu.client() as knock:
        for _, call, _, _ in CASES:
            await knock.bulk_operations.poll(await call(knock))
    users = emu.users()
    assert users["n1"] == {"id": "n1", "name": "Ann"}
    assert not {"gone1", "gone2"} & set(users)
    assert users["new-user"]["name"] == "Inline"
    assert users["u9"]["email"] == "u9@example.com"
    assert emu.preferences("u1") == {"channel_types": {"email": False}}
    projects = emu.objects("projects")
    assert projects["p3"] == {"id": "p3", "name": "P3"}
    assert "old1" not in projects
    # u1 and u2 unsubscribed from p1 afterwards (u2 never was: skipped, a success).
    assert emu.subscriptions("projects", "p1") == {("teams", "t-a"): {}}
    assert emu.subscriptions("projects", "p2") == {"new-user": {}}
    assert set(emu.tenants()) == {"globex"}
    schedules = emu.schedules()
    assert [s["recipient"] for s in schedules] == ["u1", "u9"]
    assert schedules[0]["repeats"] == [{"frequency": "daily", "hours": 9}]


async def test_requests_conform_to_the_spec(emu: KnockEmulator, bulk_spec: dict[str, Any]) -> None:
    """Every request knock_async sends to the ten endpoints has a body the spec extract's
    schema accepts (tenants/bulk/delete: no body, the ids as ``tenant_ids[]``), and is paced
    on its endpoint's tier."""
    _seed(emu)
    async with emu.client() as knock:
        for _, call, _, _ in CASES:
            await call(knock)
    sent = [r for r in emu.requests if r.method == "POST"]
    assert len(sent) == len(CASES)
    for request in sent:
        assert request.status == 200, request
        assert request.route is not None
        if request.route == "/v1/tenants/bulk/delete":
            assert request.body == b""
            assert request.query == "tenant_ids[]=acme&tenant_ids[]=initech"
            continue
        assert request.headers["content-type"] == "application/json"
        _request_validator(bulk_spec, request.route)(json.loads(request.body))


async def test_typed_records_send_what_mappings_send(emu: KnockEmulator) -> None:
    """Items given as records go out as the same JSON as mappings (custom properties at the
    top level; datetimes in ISO 8601)."""
    from datetime import UTC, datetime

    async with emu.client() as knock:
        await knock.users.bulk.identify(
            users=[ka.UserRecord(id="r1", email="r@example.com", properties={"plan": "pro"})]
        )
        await knock.objects.bulk.set("projects", objects=[ka.ObjectRecord(id="p", name="P")])
        await knock.tenants.bulk.set(tenants=[ka.TenantRecord(id="t", name="T")])
        await knock.objects.bulk.add_subscriptions(
            "projects", subscriptions=[ka.SubscriptionRecord(id="p", recipients=("r1",))]
        )
        at = datetime(2030, 1, 1, 9, tzinfo=UTC)
        await knock.schedules.bulk.create(
            schedules=[ka.ScheduleRecord(workflow="w", recipient="r1", scheduled_at=at)]
        )
    bodies = [r.json() for r in emu.requests]
    assert bodies[0] == {"users": [{"plan": "pro", "id": "r1", "email": "r@example.com"}]}
    assert bodies[1] == {"objects": [{"id": "p", "name": "P"}]}
    assert bodies[2] == {"tenants": [{"id": "t", "name": "T"}]}
    assert bodies[3] == {"subscriptions": [{"id": "p", "recipients": ["r1"]}]}
    assert bodies[4] == {
        "schedules": [
            {"workflow": "w", "recipient": "r1", "scheduled_at": "2030-01-01T09:00:00+00:00"}
        ]
    }


# ------------------------------------------------------------------------------------------
# Refused before anything is sent

BAD_ITEMS: list[tuple[str, Call, type[Exception], str]] = [
    ("user without id", lambda k: k.users.bulk.identify(users=[{"id": "a"}, {"name": "x"}]),
     ValueError, "users[1] has no id"),
    ("empty user id", lambda k: k.users.bulk.delete(user_ids=["a", ""]), ValueError,
     "user_ids[1]"),
    ("user id not a str", lambda k: k.users.bulk.delete(user_ids=[1]), TypeError, "user_ids[0]"),
    ("a str for a list", lambda k: k.users.bulk.delete(user_ids="abc"), TypeError, "user_ids"),
    ("preferences not a mapping",
     lambda k: k.users.bulk.set_preferences(preferences=[], user_ids=["a"]), TypeError,
     "preferences"),
    ("object without id", lambda k: k.objects.bulk.set("c", objects=[{"name": "x"}]),
     ValueError, "objects[0] has no id"),
    ("empty collection", lambda k: k.objects.bulk.delete("", object_ids=["a"]), ValueError,
     "collection"),
    ("collection with a slash", lambda k: k.objects.bulk.delete("a/b", object_ids=["a"]),
     ValueError, "collection"),
    ("subscription without recipients",
     lambda k: k.objects.bulk.add_subscriptions("c", subscriptions=[{"id": "o"}]), ValueError,
     "subscriptions[0] has no recipients"),
    ("recipient without id",
     lambda k: k.objects.bulk.add_subscriptions(
         "c", subscriptions=[{"id": "o", "recipients": [{"name": "x"}]}]),
     ValueError, "subscriptions[0].recipients[0] has no id"),
    ("tenant without id", lambda k: k.tenants.bulk.set(tenants=[{"name": "x"}]), ValueError,
     "tenants[0] has no id"),
    ("schedule without workflow",
     lambda k: k.schedules.bulk.create(schedules=[{"recipient": "u"}]), ValueError,
     "schedules[0] has no workflow"),
    ("schedule without recipient",
     lambda k: k.schedules.bulk.create(schedules=[{"workflow": "w"}]), ValueError,
     "schedules[0] has no recipient"),
]  # fmt: skip

MANY = [f"id{i}" for i in range(1001)]  # one over Knock's cap

OVER_CAP: list[tuple[str, Call, str]] = [
    ("users.identify", lambda k: k.users.bulk.identify(users=[{"id": i} for i in MANY]),
     "knock.users.bulk.identify_all(users)"),
    ("users.delete", lambda k: k.users.bulk.delete(user_ids=MANY),
     "knock.users.bulk.delete_all(user_ids)"),
    ("users.set_preferences", lambda k: k.users.bulk.set_preferences(
        preferences={}, user_ids=MANY),
     "knock.users.bulk.set_preferences_all(user_ids)"),
    ("objects.set", lambda k: k.objects.bulk.set("c", objects=[{"id": i} for i in MANY]),
     "knock.objects.bulk.set_all(objects)"),
    ("objects.delete", lambda k: k.objects.bulk.delete("c", object_ids=MANY),
     "knock.objects.bulk.delete_all(object_ids)"),
    ("objects.add_subscriptions", lambda k: k.objects.bulk.add_subscriptions(
        "c", subscriptions=[{"id": i, "recipients": ["u"]} for i in MANY]),
     "knock.objects.bulk.add_subscriptions_all(subscriptions)"),
    ("objects.delete_subscriptions", lambda k: k.objects.bulk.delete_subscriptions(
        "c", subscriptions=[{"id": i, "recipients": ["u"]} for i in MANY]),
     "knock.objects.bulk.delete_subscriptions_all(subscriptions)"),
    ("tenants.set", lambda k: k.tenants.bulk.set(tenants=MANY),
     "knock.tenants.bulk.set_all(tenants)"),
    ("tenants.delete", lambda k: k.tenants.bulk.delete(tenant_ids=MANY),
     "knock.tenants.bulk.delete_all(tenant_ids)"),
    ("schedules.create", lambda k: k.schedules.bulk.create(
        schedules=[{"workflow": "w", "recipient": "u"}] * 1001),
     "knock.schedules.bulk.create_all(schedules)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "call", "error", "names"), BAD_ITEMS, ids=[c[0] for c in BAD_ITEMS]
)
async def test_bad_items_are_refused_before_sending(
    emu: KnockEmulator, what: str, call: Call, error: type[Exception], names: str
) -> None:
    """A bad item raises ValueError (TypeError for a wrong type) naming its index and what is
    wrong, and nothing reaches the server."""
    async with emu.client() as knock:
        with pytest.raises(error, match=names.replace("[", r"\[").replace("]", r"\]")):
            await call(knock)
    assert emu.requests == []


@pytest.mark.parametrize(("what", "call", "method"), OVER_CAP, ids=[c[0] for c in OVER_CAP])
async def test_over_the_cap_is_refused_naming_the_all_method(
    emu: KnockEmulator, what: str, call: Call, method: str
) -> None:
    """1,001 items are refused before sending, with the ``_all`` method to use instead."""
    async with emu.client() as knock:
        with pytest.raises(ValueError, match="more than 1,000") as info:
            await call(knock)
    assert method in str(info.value)
    assert emu.requests == []


async def test_a_tenant_list_over_the_request_line_is_refused(emu: KnockEmulator) -> None:
    """tenants.bulk.delete puts the ids in the query string: a list whose request line would
    pass Knock's 8,000 bytes is refused before sending, naming delete_all; one just under is
    sent whole."""
    async with emu.client() as knock:
        with pytest.raises(ValueError, match="8,000") as info:
            await knock.tenants.bulk.delete(tenant_ids=[f"tenant-{i:05d}" for i in range(400)])
        assert "delete_all(tenant_ids)" in str(info.value)
        assert emu.requests == []
        fits = [f"tenant-{i:05d}" for i in range(250)]
        operation = await knock.tenants.bulk.delete(tenant_ids=fits)
    assert operation.estimated_total_rows == 250
    assert emu.requests[0].status == 200
    # As sent: the brackets percent-encoded, as Knock's SDKs send them.
    query = emu.requests[0].query.replace("[]", "%5B%5D")
    assert len("POST ") + len(emu.requests[0].path) + 1 + len(query) + len(" HTTP/1.1") <= 8000


# ------------------------------------------------------------------------------------------
# Pacing: a budget per endpoint at its tier


async def test_client_paces_each_endpoint_on_its_own_budget(
    emu: KnockEmulator, clock: ManualClock
) -> None:
    """Two calls to one tier-1 endpoint leave 1 s apart; a call to another endpoint goes at
    once (each endpoint has its own budget)."""
    async with emu.client() as knock:
        start = clock.monotonic()
        await knock.users.bulk.identify(users=[{"id": "a"}])
        await knock.users.bulk.delete(user_ids=["a"])
        assert clock.monotonic() - start < 0.5
        await knock.users.bulk.identify(users=[{"id": "b"}])
        assert clock.monotonic() - start >= 1.0


async def test_emulator_limits_each_endpoint_at_tier_one(clock: ManualClock) -> None:
    """The emulator allows each tier-1 endpoint 1 request/s per environment (bursting to one):
    a second identify within the second is a 429, a delete at the same moment is not."""
    async with (
        KnockEmulator(clock=clock) as emu,
        aiohttp.ClientSession() as http,
    ):
        identify = f"{emu.base_url}/v1/users/bulk/identify"
        body = {"users": [{"id": "a"}]}
        async with http.post(identify, json=body, headers=AUTH) as first:
            assert first.status == 200
        async with http.post(identify, json=body, headers=AUTH) as second:
            assert second.status == 429
        url = f"{emu.base_url}/v1/users/bulk/delete"
        async with http.post(url, json={"user_ids": ["a"]}, headers=AUTH) as other:
            assert other.status == 200
        clock.advance(1.0)
        async with http.post(identify, json=body, headers=AUTH) as later:
            assert later.status == 200


def test_rate_limits_have_the_tier_one_rate() -> None:
    """RateLimits paces each tier-1 endpoint at tier1_per_second (default 0.95/s: a margin
    under Knock's 1/s) and names each endpoint's budget after knockapi's method; the channel
    POST and polling keep theirs."""
    limits = ka.RateLimits()
    assert limits.per_second(ka.Tier.USERS_IDENTIFY) == 0.95
    assert limits.per_second(ka.Tier.POST) == 5.0
    assert limits.per_second(ka.Tier.GET) == 200.0
    assert ka.RateLimits(tier1_per_second=0.5).per_second(ka.Tier.SCHEDULES_CREATE) == 0.5
    assert {tier.level for tier in ka.Tier} == {1, 2, 4}
    assert sum(tier.level == 1 for tier in ka.Tier) == 10


# ------------------------------------------------------------------------------------------
# The emulator's checks and error items


async def test_emulator_refuses_bodies_the_spec_refuses(
    emu: KnockEmulator, http: aiohttp.ClientSession
) -> None:
    """A body without its list, an item without its required field, a wrong type, a
    schedule time without an offset, a repeat rule outside the spec's enums: 422
    ``invalid_params`` with an ``errors`` entry naming the field."""
    cases = [
        ("/v1/users/bulk/identify", {}, "users"),
        ("/v1/users/bulk/identify", {"users": [{"name": "x"}]}, "users[0].id"),
        ("/v1/users/bulk/delete", {"user_ids": [1]}, "user_ids[0]"),
        ("/v1/users/bulk/preferences", {"user_ids": ["a"]}, "preferences"),
        ("/v1/objects/c/bulk/subscriptions/add", {"subscriptions": [{"id": "o"}]},
         "subscriptions[0].recipients"),
        ("/v1/schedules/bulk/create", {"schedules": [{"recipient": "u"}]},
         "schedules[0].workflow"),
        ("/v1/tenants/bulk/set", {"tenants": "acme"}, "tenants"),
        ("/v1/schedules/bulk/create", {"schedules": [
            {"workflow": "w", "recipient": "u", "scheduled_at": "2026-01-01T09:00:00"}]},
         "schedules[0].scheduled_at"),  # format: date-time has an offset
        ("/v1/schedules/bulk/create", {"schedules": [
            {"workflow": "w", "recipient": "u", "repeats": [{"frequency": "fortnightly"}]}]},
         "schedules[0].repeats[0].frequency"),
        ("/v1/schedules/bulk/create", {"schedules": [{"workflow": "w", "recipient": "u",
            "repeats": [{"frequency": "weekly", "days": ["monday"]}]}]},
         "schedules[0].repeats[0].days"),
        ("/v1/schedules/bulk/create", {"schedules": [
            {"workflow": "w", "recipient": "u", "ending_at": "20260101T090000Z"}]},
         "schedules[0].ending_at"),  # ISO 8601's basic form is not RFC 3339
        ("/v1/schedules/bulk/create", {"schedules": [{"workflow": "w", "recipient": "u",
            "repeats": [{"frequency": "daily", "interval": "two"}]}]},
         "schedules[0].repeats[0].interval"),
    ]  # fmt: skip
    for path, body, field in cases:
        async with http.post(emu.base_url + path, json=body, headers=AUTH) as response:
            assert response.status == 422, (path, body)
            answer = await response.json()
        assert answer["code"] == "invalid_params"
        assert field in [e["field"] for e in answer["errors"]], (path, answer)
    async with http.post(emu.base_url + "/v1/tenants/bulk/delete", headers=AUTH) as response:
        assert response.status == 422
        assert (await response.json())["errors"][0]["field"] == "tenant_ids"


async def test_error_items_for_what_cannot_be_applied(clock: ManualClock) -> None:
    """Items that cannot be applied are reported in ``error_items`` and the rest applied:
    a workflow the emulator was not given, a subscription to a missing object (one row per
    object and recipient pair), preferences of a user that does not exist, an id scripted
    to fail."""
    async with (
        KnockEmulator(clock=clock, workflows=["digest"], rate_limits=False) as emu,
        emu.client() as knock,
    ):
        emu.add_users("u1")
        emu.add_objects("projects", "p1")
        emu.faults.fail_messages(["t-bad"])
        schedules = await knock.bulk_operations.poll(
            await knock.schedules.bulk.create(
                schedules=[
                    {"workflow": "digest", "recipient": "u1"},
                    {"workflow": "nope", "recipient": {"id": "p1", "collection": "projects"}},
                ]
            )
        )
        subscriptions = await knock.bulk_operations.poll(
            await knock.objects.bulk.add_subscriptions(
                "projects",
                subscriptions=[
                    {"id": "p1", "recipients": ["u1"]},
                    {"id": "missing", "recipients": ["u1", "u2"]},
                ],
            )
        )
        preferences = await knock.bulk_operations.poll(
            await knock.users.bulk.set_preferences(preferences={}, user_ids=["u1", "ghost"])
        )
        tenants = await knock.bulk_operations.poll(
            await knock.tenants.bulk.set(tenants=["t-ok", "t-bad"])
        )
    assert (schedules.success_count, schedules.error_count) == (1, 1)
    assert [(e.id, e.collection) for e in schedules.error_items] == [("p1", "projects")]
    assert (subscriptions.success_count, subscriptions.error_count) == (1, 2)
    assert [e.id for e in subscriptions.error_items] == ["missing", "missing"]
    assert [e.id for e in preferences.error_items] == ["ghost"]
    assert [e.id for e in tenants.error_items] == ["t-bad"]
    assert all(op.status == ka.BulkOperationStatus.COMPLETED for op in (schedules, tenants))


@pytest.mark.parametrize(("what", "call", "name", "rows"), CASES, ids=IDS)
async def test_faults_on_every_route(
    emu: KnockEmulator, what: str, call: Call, name: str, rows: int
) -> None:
    """A fault scripted on each route template is used there; a 5xx to the POST is not sent
    again (it may have started an operation), while a 429 is retried (it certainly did not)
    and goes through."""
    _seed(emu)
    route = ENDPOINTS[what.replace(".", ".bulk.", 1)].route
    emu.faults.add("POST", route, status=500)
    async with emu.client() as knock:
        with pytest.raises(ka.InternalServerError) as info:
            await call(knock)
        assert info.value.operation_may_have_started
        assert len(emu.requests) == 1
        emu.faults.add("POST", route, status=429)
        operation = await call(knock)
    assert operation.name == name
    assert [r.status for r in emu.requests] == [500, 429, 200]


async def test_hooks_name_the_route_template_and_budget(emu: KnockEmulator) -> None:
    """Hooks see each new request by its route template (no collection or ids) and its
    endpoint's budget."""
    events: list[object] = []
    async with emu.client(hooks=[events.append]) as knock:
        await knock.objects.bulk.set("projects", objects=[{"id": "p"}])
    sent = [e for e in events if isinstance(e, ka.RequestSent)]
    assert [(e.method, e.route, e.tier) for e in sent] == [
        ("POST", "/v1/objects/{collection}/bulk/set", "objects.bulk.set")
    ]


async def test_operations_are_processed_over_time(emu: KnockEmulator) -> None:
    """An operation is queued, then processed batch by batch at the emulator's rate (the
    same engine as channel updates): 100 users at 100 rows/s take about a second."""
    async with emu.client() as knock:
        operation = await knock.users.bulk.identify(users=[{"id": f"u{i}"} for i in range(100)])
    assert operation.status == ka.BulkOperationStatus.QUEUED
    emu.advance(0.5)
    halfway = emu.operation(operation.id)
    assert halfway.status == ka.BulkOperationStatus.PROCESSING
    assert 0 < halfway.processed_rows < 100
    assert 0 < len(emu.users()) < 100
    emu.settle()
    assert emu.operation(operation.id).success_count == 100
    assert len(emu.users()) == 100


async def test_channel_user_ids_restrict_the_update(
    emu: KnockEmulator, http: aiohttp.ClientSession
) -> None:
    """The channel endpoint's ``user_ids`` (sent by Knock's mobile SDKs, not in the spec)
    restricts the update to those recipients (inferred), in strict mode too; with
    ``recipient_ids`` the two lists intersect."""
    channel = emu.add_channel(type="in_app_feed")
    messages = emu.add_messages(channel, 40, seed=3)
    recipients = sorted({m.recipient_id for m in messages})
    chosen = recipients[:2]
    url = f"{emu.base_url}/v1/channels/{channel}/messages/bulk/archive"
    async with http.post(url, json={"user_ids": chosen}, headers=AUTH) as response:
        assert response.status == 200, await response.text()
    emu.settle()
    after = {m.id: m for m in emu.messages(channel)}
    for message in messages:
        archived = after[message.id].archived_at is not None
        if message.recipient_id in chosen:
            assert archived
        else:
            assert archived == (message.archived_at is not None)
    body = {"user_ids": chosen, "recipient_ids": recipients[1:3]}
    async with http.post(url.replace("archive", "unarchive"), json=body, headers=AUTH) as answer:
        assert answer.status == 200
    emu.settle()
    for message in emu.messages(channel):
        if message.recipient_id == chosen[1]:
            assert message.archived_at is None
        elif message.recipient_id == chosen[0]:
            assert message.archived_at is not None


async def test_unknown_body_fields(emu: KnockEmulator, clock: ManualClock) -> None:
    """An unknown top-level body field is a 422 in strict mode and otherwise ignored, named
    on the request log's ``ignored_fields``, as on the channel endpoint."""
    body = {"users": [{"id": "a"}], "extra": 1}
    async with aiohttp.ClientSession() as http:
        url = f"{emu.base_url}/v1/users/bulk/identify"
        async with http.post(url, json=body, headers=AUTH) as response:
            assert response.status == 422
            assert (await response.json())["errors"][0]["field"] == "extra"
        async with KnockEmulator(clock=clock, rate_limits=False) as lenient:
            url = f"{lenient.base_url}/v1/users/bulk/identify"
            async with http.post(url, json=body, headers=AUTH) as response:
                assert response.status == 200
            assert lenient.requests[0].ignored_fields == ("extra",)


async def test_spec_examples_are_accepted_and_answers_conform(
    clock: ManualClock,
    http: aiohttp.ClientSession,
    bulk_spec: dict[str, Any],
    valid_operation: Callable[[Any], None],
) -> None:
    """Every request example in the spec extract is accepted by the emulator (strict mode),
    and every answer and every polled snapshot is a spec-valid BulkOperation."""
    async with KnockEmulator(clock=clock, rate_limits=False, strict=True) as emu:
        emu.add_users("user_1", "user_2")
        emu.add_objects("projects", "project-1", "subscribed-to-object-1", "subscribed-to-object-2")
        seen = 0
        for route, item in bulk_spec["paths"].items():
            if route not in BULK_ROUTES:
                continue
            operation = item["post"]
            content = operation.get("requestBody", {}).get("content", {})
            example = content.get("application/json", {}).get("example")
            path = route.replace("{collection}", "projects")
            if example is None:
                assert operation["operationId"] in {"bulkDeleteUsers", "bulkDeleteTenants"}
                example = {"user_ids": ["user_1"]} if "users" in route else None
            url = emu.base_url + path
            if example is None:
                url += "?tenant_ids[]=acme"
            async with http.post(url, json=example, headers=AUTH) as response:
                assert response.status == 200, (route, await response.text())
                answer = await response.json()
            valid_operation(answer)
            emu.settle()
            async with http.get(
                f"{emu.base_url}/v1/bulk_operations/{answer['id']}", headers=AUTH
            ) as polled:
                final = await polled.json()
            valid_operation(final)
            assert final["status"] == "completed", (route, final)
            seen += 1
    assert seen == 10


async def test_emulator_refuses_a_request_line_over_8000_bytes(
    emu: KnockEmulator, http: aiohttp.ClientSession
) -> None:
    """tenants/bulk/delete with a query past Knock's 8,000-byte request line is answered 414
    in Knock's error shape and deletes nothing; the plain ``tenant_ids=a`` spelling is read as
    one id."""
    async with emu.client() as knock:
        await knock.bulk_operations.poll(await knock.tenants.bulk.set(tenants=["a", "b"]))
    # 8,097 bytes as sent (brackets encoded): over Knock's 8,000, under aiohttp's 8,190.
    query = "&".join(f"tenant_ids[]=tenant-{i:06d}" for i in range(260))
    url = f"{emu.base_url}/v1/tenants/bulk/delete?{query}"
    async with http.post(url, headers=AUTH) as response:
        assert response.status == 414
        assert (await response.json())["code"] == "uri_too_long"
    async with http.post(
        f"{emu.base_url}/v1/tenants/bulk/delete?tenant_ids=a", headers=AUTH
    ) as response:
        assert response.status == 200
        assert (await response.json())["estimated_total_rows"] == 1
    emu.settle()
    assert set(emu.tenants()) == {"b"}
