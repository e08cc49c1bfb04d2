"""Stoplight Prism, mocking the spec extracts (tests/spec), finds no violation in any request
knock_async sends: each of the ten starters with typical and edge-case items, the channel
bulk update with each action and each filter (on both documents that define it), the GET of
a bulk operation, and an ``_all`` method's chunks and polls.

Each request goes from a ``KnockClient`` through a recorder to ``prism mock --errors`` and must
come back 200 with no violation (neither in a 422's ``validation`` list nor in the
``sl-violations`` header). The known deviations are listed with each case that shows them, as
the exact violations Prism must report, and nothing else:

- ``tenant_ids[]=`` (issue 24): Knock's SDKs and server take the ids as ``tenant_ids[]``; the
  spec names the parameter ``tenant_ids``, so Prism misses it.
- An object as a recipient to add or schedule (``{"id": ..., "collection": ...}``): the spec's
  ``RecipientRequest`` is a ``oneOf`` of a user id, ``InlineIdentifyUserRequest`` and
  ``InlineIdentifyObjectRequest``; the user schema allows any extra property and requires only
  ``id``, so an object (which Knock tells apart by its ``collection``, as the schema's own
  description says) matches both object schemas, and ``oneOf`` wants exactly one.
- ``type: object`` around a ``oneOf`` with a non-object branch, which no value of that branch
  can pass: a schedule's ``actor`` as a user id (a ``RecipientRequest``; Knock's SDKs send
  one), and a workflow or category preference as a boolean (the spec's own example for
  users/bulk/preferences has ``marketing: false``; the schema is
  ``PreferenceSetWorkflowCategorySetting``).
  These are the caller's values, passed through unchanged; the passing cases use the object
  forms.

The bodies Prism checks at all are the ones in ``_spec.prism_ready`` (see there: as the extract
is, Prism skips six endpoints' bodies); ``test_prism_flags_a_broken_request_on_each_endpoint``
proves each endpoint's request is checked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import attrs
import pytest
import yaml

import knock_async as ka
from knock_async import ObjectRecord, ScheduleRecord, SubscriptionRecord, TenantRecord, UserRecord
from tests.prism._prism import INSTALL, PRISM_VERSION, ROOT, Exchange
from tests.prism._spec import prism_ready
from tests.prism.conftest import BULK_SPEC, CHANNELS_SPEC, Checked

pytestmark = [pytest.mark.prism, pytest.mark.subprocess]

Call = Callable[[ka.KnockClient], Awaitable[object]]

CHANNEL = "5e3e9847-3183-3f18-a7e8-671c3a57d4b3"
DEVICE_CHANNEL = "97c5837d-c65c-4d54-aa39-080eeb81c69d"
AT = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def oneof_recipient(where: str) -> tuple[str, ...]:
    """What Prism says of an object recipient at ``where`` (``subscriptions.0.recipients.1``):
    not the user id string, and more than one of ``oneOf``'s object schemas (see above)."""
    return (
        f"body.{where}: Request body property {where} must be string",
        f"body.{where}: Request body property {where} must match exactly one schema in oneOf",
    )


@attrs.frozen
class Case:
    name: str
    call: Call
    # The violations Prism must report, each a known deviation (see the module docstring).
    expect: tuple[str, ...] = ()


CASES = [
    Case("users.identify typed, every field", lambda k: k.users.bulk.identify(users=[
        UserRecord(id="u1", name="Ada", email="ada@example.com", phone_number="+15555550100",
                   avatar="https://example.com/a.png", locale="en-GB", timezone="Europe/London",
                   properties={"plan": "pro", "seats": 3, "tags": ["a"]}),
    ])),
    Case("users.identify typed, id only", lambda k: k.users.bulk.identify(users=[
        UserRecord(id="u2"),
    ])),
    Case("users.identify mappings, inline preferences and channel data",
         lambda k: k.users.bulk.identify(users=[
             {"id": "u3", "email": None, "created_at": "2025-01-01T00:00:00Z",
              "preferences": {"default": {
                  "channel_types": {"email": True},
                  "workflows": {"welcome": {"channel_types": {"sms": False}}},
              }},
              "channel_data": {DEVICE_CHANNEL: {"tokens": ["token-1"]}}},
             {"id": "u4", "custom": {"nested": [1, 2]}},
         ])),
    Case("users.delete", lambda k: k.users.bulk.delete(user_ids=["u1", "u2"])),
    Case("users.delete, a full 1,000 from a generator",
         lambda k: k.users.bulk.delete(user_ids=(f"user-{i}" for i in range(1000)))),
    Case("users.set_preferences, a full set", lambda k: k.users.bulk.set_preferences(
        preferences={
            "id": "default", "channel_types": {"email": False, "sms": True},
            "categories": {"transactional": {"channel_types": {"email": True}}},
            "workflows": {"welcome": {"channels": {DEVICE_CHANNEL: False}}},
            "channels": {DEVICE_CHANNEL: True},
            "commercial_subscribed": True,
        },
        user_ids=["u1", "u2"],
    )),
    Case("users.set_preferences, a category as a boolean (the spec's own example)",
         lambda k: k.users.bulk.set_preferences(
             preferences={"id": "default", "categories": {"marketing": False}},
             user_ids=["u1"]),
         # The spec's `type: object` around a oneOf with a boolean branch (module docstring).
         expect=(
             "body.preferences.categories.marketing: Request body property "
             "preferences.categories.marketing must be object",
             "body.preferences.categories: Request body property preferences.categories must "
             "be equal to one of the allowed values: ",
             "body.preferences.categories: Request body property preferences.categories must "
             "match a schema in anyOf",
         )),
    Case("users.set_preferences, no id",
         lambda k: k.users.bulk.set_preferences(
             preferences={"channel_types": {"push": False}}, user_ids=("u1",))),
    Case("users.set_preferences, a tenant's set by id", lambda k: k.users.bulk.set_preferences(
        preferences={"id": "acme", "workflows": None}, user_ids=["u3"])),
    Case("objects.set typed and mappings", lambda k: k.objects.bulk.set("projects", objects=[
        ObjectRecord(id="p1", name="Apollo", properties={"budget": 10}),
        ObjectRecord(id="p2"),
        {"id": "p3", "preferences": {"default": {"channel_types": {"email": True}}},
         "channel_data": {DEVICE_CHANNEL: {"tokens": ["t"]}}},
    ])),
    Case("objects.set, a collection needing escapes", lambda k: k.objects.bulk.set(
        "équipes 2026", objects=[{"id": "e 1", "name": None}])),
    Case("objects.delete", lambda k: k.objects.bulk.delete("projects", object_ids=["p1", "p2"])),
    Case("objects.add_subscriptions, user ids and inline users",
         lambda k: k.objects.bulk.add_subscriptions("projects", subscriptions=[
             SubscriptionRecord(id="p1", recipients=("u1", "u2")),
             SubscriptionRecord(id="p2", recipients=("u3",), properties={"role": "owner"}),
             {"id": "p3", "recipients": [{"id": "u4", "name": "Inline"}], "properties": None},
         ])),
    Case("objects.add_subscriptions, an object as recipient",
         lambda k: k.objects.bulk.add_subscriptions("projects", subscriptions=[
             SubscriptionRecord(id="p1", recipients=("u1", {"id": "t-1", "collection": "teams"})),
         ]),
         # The spec's RecipientRequest oneOf (module docstring), not knock_async.
         expect=oneof_recipient("subscriptions.0.recipients.1")),
    Case("objects.delete_subscriptions, ids and object references",
         lambda k: k.objects.bulk.delete_subscriptions("projects", subscriptions=[
             SubscriptionRecord(id="p1", recipients=("u1", {"id": "t-1", "collection": "teams"})),
             {"id": "p2", "recipients": ["u2"]},
         ])),
    Case("tenants.set ids, typed and mappings", lambda k: k.tenants.bulk.set(tenants=[
        "t1",
        TenantRecord(id="t2", name="Acme",
                     properties={"settings": {"branding": {"primary_color": "#000000"}}}),
        TenantRecord(id="t3"),
        {"id": "t4", "name": None, "region": "eu"},
    ])),
    Case("tenants.delete", lambda k: k.tenants.bulk.delete(tenant_ids=["t1", "t 2/é"]),
         # Issue 24: Knock takes `tenant_ids[]=`, the spec names it `tenant_ids`.
         expect=("query: Request query must have required property 'tenant_ids'",)),
    Case("schedules.create typed, every field", lambda k: k.schedules.bulk.create(schedules=[
        ScheduleRecord(
            workflow="digest", recipient="u1", actor={"id": "u9"}, tenant="acme",
            repeats=({"frequency": "weekly", "days": ["mon", "fri"], "hours": 9,
                      "minutes": 30, "interval": 2},),
            scheduled_at=AT, ending_at=AT + timedelta(days=90), data={"k": "v", "n": 1},
        ),
    ])),
    Case("schedules.create typed, required fields only", lambda k: k.schedules.bulk.create(
        schedules=[ScheduleRecord(workflow="w", recipient="u1")])),
    Case("schedules.create mappings, ISO times, repeats of each kind",
         lambda k: k.schedules.bulk.create(schedules=[
             {"workflow": "w", "recipient": {"id": "u2", "email": "u2@example.com"},
              "repeats": [{"frequency": "daily"}, {"frequency": "hourly", "minutes": 15},
                          {"frequency": "monthly", "day_of_month": 1, "hours": 0}],
              "scheduled_at": "2026-01-05T09:00:00+00:00", "ending_at": None,
              "tenant": {"id": "acme", "name": "Acme"}, "data": None},
             {"workflow": "w", "recipient": "u3", "tenant": None},
         ])),
    Case("schedules.create, an object as recipient", lambda k: k.schedules.bulk.create(
        schedules=[ScheduleRecord(workflow="w", recipient={"id": "p1", "collection": "projects"})]),
         # The spec's RecipientRequest oneOf (module docstring), not knock_async.
         expect=oneof_recipient("schedules.0.recipient")),
    Case("schedules.create, the actor as a user id", lambda k: k.schedules.bulk.create(
        schedules=[ScheduleRecord(workflow="w", recipient="u1", actor="u9")]),
         # The spec's `type: object` around a oneOf with a string branch (module docstring).
         expect=("body.schedules.0.actor: Request body property schedules.0.actor must be "
                 "object",)),
]  # fmt: skip


async def send(checked: Checked, call: Call, expect: tuple[str, ...] = ()) -> Exchange:
    """Run ``call`` on the client; it must send exactly one request, which Prism finds clean
    (200, no violation), or which shows exactly the ``expect`` violations (422)."""
    before = len(checked.recorder.exchanges)
    error: ka.APIStatusError | None = None
    result: object = None
    try:
        result = await call(checked.knock)
    except ka.APIStatusError as exc:
        error = exc
    sent = checked.recorder.exchanges[before:]
    assert len(sent) == 1, [exchange.describe() for exchange in sent]
    (exchange,) = sent
    if expect:
        assert exchange.status == 422, exchange.describe()
        assert sorted(exchange.violations) == sorted(expect), exchange.describe()
        assert isinstance(error, ka.UnprocessableEntityError)
    else:
        assert (exchange.status, exchange.violations) == (200, ()), exchange.describe()
        assert error is None
        assert isinstance(result, ka.BulkOperation)
    return exchange


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_starter_request_conforms(bulk: Checked, case: Case) -> None:
    """The starter's one request passes Prism's checks, or shows exactly its known deviation."""
    await send(bulk, case.call, case.expect)


async def test_tenant_ids_go_in_the_query_with_brackets(bulk: Checked) -> None:
    """tenants.bulk.delete sends no body and each id as ``tenant_ids[]=`` (encoded), the one
    known deviation from the extract, which Prism reports as exactly that."""
    case = next(case for case in CASES if case.name == "tenants.delete")
    exchange = await send(bulk, case.call, case.expect)
    assert exchange.body == b""
    assert exchange.target == (
        "/v1/tenants/bulk/delete?tenant_ids%5B%5D=t1&tenant_ids%5B%5D=t%202%2F%C3%A9"
    )
    # The spec's own form passes: the name is the one difference.
    plain = await send_raw(
        bulk, "POST", "/v1/tenants/bulk/delete?tenant_ids=t1&tenant_ids=t2", body=None
    )
    assert (plain.status, plain.violations) == (200, ())


async def test_get_of_a_bulk_operation_conforms(bulk: Checked) -> None:
    """The GET of the operation a starter returned passes Prism's checks."""
    operation = await bulk.knock.users.bulk.identify(users=[UserRecord(id="u1")])
    exchange = await send(bulk, lambda k: k.bulk_operations.get(operation.id))
    assert (exchange.method, exchange.target) == ("GET", f"/v1/bulk_operations/{operation.id}")


async def test_an_all_method_sends_conforming_chunks_and_polls(bulk: Checked) -> None:
    """``delete_all`` over 2,500 ids sends three conforming chunks (1,000, 1,000, 500) and
    polls their operation with conforming GETs (Prism's operation never ends: the stream is
    closed once it has polled)."""
    stream = bulk.knock.users.bulk.delete_all(
        user_ids=(f"user-{i}" for i in range(2500)),
        policy=ka.PollPolicy(initial_delay=0.01, eta=False, jitter=0.0),
        max_silence=0.05,  # a heartbeat, so that the loop sees the polls without a change
    )
    submitted = 0
    async with asyncio.timeout(30):
        async for event in stream:
            submitted += event.kind is ka.FanOutEventKind.SUBMITTED
            if submitted == 3 and any(e.method == "GET" for e in bulk.recorder.exchanges):
                break
    await stream.aclose()
    sent = bulk.recorder.exchanges
    assert [e.describe() for e in sent if (e.status, e.violations) != (200, ())] == []
    posts = [json.loads(e.body)["user_ids"] for e in sent if e.method == "POST"]
    assert [len(ids) for ids in posts] == [1000, 1000, 500]
    gets = [e.target for e in sent if e.method == "GET"]
    assert gets, "the stream polled"
    assert all(target.startswith("/v1/bulk_operations/") for target in gets)


ACTIONS = list(ka.BulkAction)
FILTERS: list[dict[str, Any]] = [
    *({"archived": value} for value in ka.ArchivedFilter),
    *({"delivery_status": value.value} for value in ka.DeliveryStatus),
    *({"engagement_status": value} for value in ka.EngagementStatus),
    {"has_tenant": True},
    {"has_tenant": False},
    {"newer_than": AT},
    {"older_than": "2026-01-01T00:00:00+02:00"},
    {"recipient_ids": ["u1", "u2"]},
    {"tenants": ("t1",)},
    {"trigger_data": {"order": {"id": 5, "items": ["a"]}}},
    {"trigger_data": '{"a": 1}'},
    {"workflows": ["welcome", "digest"]},
    {
        "archived": "exclude", "delivery_status": "delivered", "engagement_status": "unread",
        "has_tenant": True, "newer_than": AT - timedelta(days=7), "older_than": AT,
        "recipient_ids": ["u1"], "tenants": ["t1"], "trigger_data": {"k": "v"},
        "workflows": ["w"],
    },
]  # fmt: skip
FILTER_IDS = ["-".join(f"{k}={v}" for k, v in f.items())[:60] for f in FILTERS]


def channel_update(action: ka.BulkAction, filters: dict[str, Any]) -> Call:
    return lambda k: k.channels.bulk.update_message_status(CHANNEL, action, **filters)


@pytest.mark.parametrize("action", ACTIONS, ids=[action.value for action in ACTIONS])
async def test_channel_update_each_action_conforms(bulk: Checked, action: ka.BulkAction) -> None:
    """Each action, no filter, passes Prism."""
    exchange = await send(bulk, channel_update(action, {}))
    assert exchange.target == f"/v1/channels/{CHANNEL}/messages/bulk/{action.value}"


@pytest.mark.parametrize("filters", FILTERS, ids=FILTER_IDS)
async def test_channel_update_each_filter_conforms(bulk: Checked, filters: dict[str, Any]) -> None:
    """Each filter value (and all ten at once) passes Prism."""
    await send(bulk, channel_update(ka.BulkAction.ARCHIVE, filters))


async def test_channel_document_accepts_every_action_and_filter(channels: Checked) -> None:
    """The same requests pass Prism mocking the channel endpoint's own document (one test, so
    that one worker at most starts that second Prism)."""
    for action in ACTIONS:
        await send(channels, channel_update(action, {}))
    for filters in FILTERS:
        await send(channels, channel_update(ka.BulkAction.ARCHIVE, filters))
    assert len(channels.recorder.exchanges) == len(ACTIONS) + len(FILTERS)


def test_both_documents_define_the_channel_endpoint_alike() -> None:
    """The channel endpoint's operation and its request and response schemas are the same in
    both documents, so the per-action and per-filter tests on the bulk extract hold for both."""
    with BULK_SPEC.open(encoding="utf-8") as handle:
        bulk_spec = yaml.safe_load(handle)
    with CHANNELS_SPEC.open(encoding="utf-8") as handle:
        channels_spec = yaml.safe_load(handle)
    route = "/v1/channels/{channel_id}/messages/bulk/{action}"
    assert bulk_spec["paths"][route] == channels_spec["paths"][route]
    for name in ("BulkUpdateMessagesForChannelRequest", "BulkOperation"):
        assert (
            bulk_spec["components"]["schemas"][name] == channels_spec["components"]["schemas"][name]
        )


# Per endpoint, a request Prism must refuse: proof that it checks that endpoint at all (as the
# extract is, it silently checks none of six of these bodies: see _spec.py).
BROKEN = [
    ("POST", "/v1/users/bulk/identify", {"users": [{"id": "u1", "email": 5}]},
     "body.users.0.email: Request body property users.0.email must be string,null"),
    ("POST", "/v1/users/bulk/delete", {"user_ids": "u1"},
     "body.user_ids: Request body property user_ids must be array"),
    ("POST", "/v1/users/bulk/preferences", {"user_ids": ["u1"], "preferences": {"workflows": 3}},
     "body.preferences.workflows: Request body property preferences.workflows must be object"),
    ("POST", "/v1/objects/projects/bulk/set", {"objects": [{"name": "no id"}]},
     "body.objects.0: Request body property objects.0 must have required property 'id'"),
    ("POST", "/v1/objects/projects/bulk/delete", {"object_ids": [1]},
     "body.object_ids.0: Request body property object_ids.0 must be string"),
    ("POST", "/v1/objects/projects/bulk/subscriptions/add", {"subscriptions": [{"id": "p1"}]},
     "body.subscriptions.0: Request body property subscriptions.0 must have required "
     "property 'recipients'"),
    ("POST", "/v1/objects/projects/bulk/subscriptions/delete",
     {"subscriptions": [{"recipients": ["u1"]}]},
     "body.subscriptions.0: Request body property subscriptions.0 must have required property "
     "'id'"),
    ("POST", "/v1/tenants/bulk/set", {"tenants": [{"id": 7}]},
     "body.tenants.0.id: Request body property tenants.0.id must be string"),
    ("POST", "/v1/tenants/bulk/delete", None,
     "query: Request query must have required property 'tenant_ids'"),
    ("POST", "/v1/schedules/bulk/create",
     {"schedules": [{"workflow": "w", "recipient": "u1", "repeats": [{"frequency": "yearly"}]}]},
     "body.schedules.0.repeats.0.frequency: Request body property "
     "schedules.0.repeats.0.frequency must be equal to one of the allowed values: daily, "
     "weekly, monthly, hourly"),
    ("POST", f"/v1/channels/{CHANNEL}/messages/bulk/archive", {"has_tenant": "maybe"},
     "body.has_tenant: Request body property has_tenant must be boolean"),
    ("GET", "/v1/bulk_operations/not-a-uuid", None,
     'path.id: Request path parameter id must match format "uuid"'),
]  # fmt: skip


async def send_raw(checked: Checked, method: str, path: str, body: object) -> Exchange:
    """Send a request by hand (not through knock_async) through the same recorder."""
    before = len(checked.recorder.exchanges)
    headers = {"Authorization": "Bearer sk_test_prism"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, checked.url + path, json=body, headers=headers) as answer,
    ):
        await answer.read()
    (exchange,) = checked.recorder.exchanges[before:]
    assert exchange.status == answer.status
    return exchange


@pytest.mark.parametrize(
    ("method", "path", "body", "violation"), BROKEN, ids=[f"{m} {p}" for m, p, _, _ in BROKEN]
)
async def test_prism_flags_a_broken_request_on_each_endpoint(
    bulk: Checked, method: str, path: str, body: object, violation: str
) -> None:
    """A request that breaks the spec, sent through the same recorder, is refused with 422
    and the violation named: each endpoint's request is really checked."""
    exchange = await send_raw(bulk, method, path, body)
    assert exchange.status == 422
    assert violation in exchange.violations, exchange.describe()


async def test_a_broken_item_from_the_client_is_flagged(bulk: Checked) -> None:
    """The helper that passes every starter fails a wrong body: an item whose email is a
    number (knock_async passes a mapping's values through) is refused with that violation."""
    with pytest.raises(AssertionError, match=r"users\.0\.email must be string,null"):
        await send(bulk, lambda k: k.users.bulk.identify(users=[{"id": "u1", "email": 5}]))
    await send(
        bulk,
        lambda k: k.users.bulk.identify(users=[{"id": "u1", "email": 5}]),
        expect=("body.users.0.email: Request body property users.0.email must be string,null",),
    )


def test_the_extracts_rewritten_for_prism_are_pinned() -> None:
    """Only type-less ``nullable`` schemas are rewritten, 25 in the bulk extract (23 "or null"
    alternatives, 2 ``nullable: false``) and none in the channel document: a refreshed
    extract with more shows up here."""
    with BULK_SPEC.open(encoding="utf-8") as handle:
        bulk_spec = yaml.safe_load(handle)
    with CHANNELS_SPEC.open(encoding="utf-8") as handle:
        channels_spec = yaml.safe_load(handle)
    ready, rewritten = prism_ready(bulk_spec)
    assert len(rewritten) == 25
    assert "#/components/schemas/RecipientRequest" in rewritten
    assert ready["paths"] == bulk_spec["paths"]
    assert prism_ready(channels_spec) == (channels_spec, [])


def test_the_readme_installs_the_pinned_prism() -> None:
    """The install command the README and the skip message give is for the version pinned
    here (which .ci/run installs)."""
    readme = (ROOT / "README.md").read_text()
    assert " ".join(INSTALL.split()) in " ".join(readme.split())
    assert f"@stoplight/prism-cli@{PRISM_VERSION}" in INSTALL
