"""What the API refuses, and how: bad input is a clear 4xx in the one error shape and changes nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest

from paysync_core.testing.builders.mpesa import checkout_request_id
from paysync_core.testing.builders.paystack import paystack_reference
from paysync_dev.fixtures import stripe_registration

pytestmark = pytest.mark.integration


def assert_error_shape(response, status: int, error: str) -> list[dict[str, str]]:
    """The answer has the API's one error shape; returns its problems."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "problems"} and body["error"] == error, body
    assert body["message"]
    return body["problems"]


async def nothing_registered_for(client, tenant, entity_id: str) -> bool:
    listed = await client.get("/v1/payments", params={"entity_id": entity_id}, headers=tenant.auth)
    return listed.status_code == 200 and listed.json()["items"] == []


async def test_a_body_over_the_limit_is_a_413_and_registers_nothing(client, tenant) -> None:
    body = stripe_registration(metadata={"blob": "x" * 200_000})
    response = await client.post("/v1/payments", json=body, headers=tenant.auth)
    assert_error_shape(response, 413, "payload_too_large")
    assert await nothing_registered_for(client, tenant, body["entity_id"])


async def test_a_chunked_body_is_refused_while_it_is_read_not_after(client, tenant) -> None:
    sent = []

    async def endless_metadata() -> AsyncIterator[bytes]:
        yield b'{"provider": "stripe", "metadata": {"blob": "'
        for _ in range(2048):  # 128 MiB if the server read it all
            sent.append(1)
            yield b"x" * 65536

    response = await client.post(
        "/v1/payments",
        content=endless_metadata(),
        headers=tenant.auth | {"Content-Type": "application/json"},
    )
    assert_error_shape(response, 413, "payload_too_large")
    assert len(sent) <= 3  # the server stopped reading just past its 64 KiB limit


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [({"blob": "x" * 20_000}, "bytes"), ({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}, "deeper")],
    ids=["too-big", "too-deep"],
)
async def test_metadata_is_bounded_in_size_and_depth(client, tenant, metadata, problem) -> None:
    body = stripe_registration(metadata=metadata)
    response = await client.post("/v1/payments", json=body, headers=tenant.auth)
    problems = assert_error_shape(response, 422, "invalid_request")
    assert [p["field"].split(".")[0] for p in problems] == ["metadata"] and problem in problems[0]["problem"]
    assert await nothing_registered_for(client, tenant, body["entity_id"])


# JSON written out by hand: these are what a JSON library would not produce.
UNSTORABLE_BODIES = {
    "nul-in-entity-id": ('"entity_id": "job\\u0000x"', "entity_id"),
    "lone-surrogate-in-metadata": ('"metadata": {"note": "\\ud800"}', "metadata.note"),
    "nul-in-metadata-key": ('"metadata": {"a\\u0000": 1}', "metadata.a\x00"),
    "infinity-in-metadata": ('"metadata": {"ratio": Infinity}', "metadata.ratio"),
    "nan-in-metadata": ('"metadata": {"ratio": [1, NaN]}', "metadata.ratio.1"),
    "boolean-amount": ('"amount_minor": true', "amount_minor"),
    "string-amount": ('"amount_minor": "100"', "amount_minor"),
    "fractional-amount": ('"amount_minor": 1.5', "amount_minor"),
    "infinite-amount": ('"amount_minor": Infinity', "amount_minor"),
}


@pytest.mark.parametrize(("member", "field"), UNSTORABLE_BODIES.values(), ids=UNSTORABLE_BODIES.keys())
async def test_unstorable_or_non_integer_values_are_refused_naming_the_field(
    client, tenant, member, field
) -> None:
    entity_id = f"job-{uuid.uuid4().hex[:6]}"
    defaults = stripe_registration(entity_id=entity_id)
    overridden = member.split(":", 1)[0].strip('"')
    rest = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in defaults.items() if k != overridden)
    response = await client.post(
        "/v1/payments",
        content=f"{{{rest}, {member}}}",
        headers=tenant.auth | {"Content-Type": "application/json"},
    )
    problems = assert_error_shape(response, 422, "invalid_request")
    assert field in [p["field"] for p in problems]
    assert await nothing_registered_for(client, tenant, entity_id)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/payments", {"entity_id": "job\x00"}, "entity_id"),
        ("/v1/sync-issues", {"domain": "jobs", "entity_id": "\x00"}, "entity_id"),
        ("/v1/domains/jobs/job%00x/payments", {}, "entity_id"),
        ("/v1/reconcile-requests/req%00", {}, "request_id"),
    ],
)
async def test_nul_in_a_path_id_or_filter_is_refused_naming_it(client, tenant, path, params, field) -> None:
    response = await client.get(path, params=params, headers=tenant.auth)
    problems = assert_error_shape(response, 422, "invalid_request")
    assert [p["field"] for p in problems] == [field]


async def test_nul_in_last_event_id_is_refused_before_the_stream_is_asked(client, tenant) -> None:
    response = await client.get("/v1/stream", headers=tenant.auth | {"Last-Event-ID": "41\x00"})
    problems = assert_error_shape(response, 422, "invalid_request")
    assert [p["field"] for p in problems] == ["last-event-id"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/payments", {"provider_reference": "cs_test_1"}),
        ("/v1/sync-issues", {"kind": "stuck_payment", "page": 2}),
        ("/v1/stats", {"currency": "USD"}),
        ("/v1/stream", {"since": "0"}),
    ],
)
async def test_an_unknown_query_parameter_is_a_400_naming_it(client, tenant, path, params) -> None:
    response = await client.get(path, params=params, headers=tenant.auth)
    problems = assert_error_shape(response, 400, "unknown_parameter")
    known = {"kind"}
    assert [p["field"] for p in problems] == [name for name in params if name not in known]


async def test_starlettes_own_errors_use_the_one_error_shape(client, tenant) -> None:
    assert_error_shape(await client.get("/v1/no-such-route", headers=tenant.auth), 404, "not_found")
    assert_error_shape(await client.delete("/v1/payments", headers=tenant.auth), 405, "method_not_allowed")
    malformed = await client.post(
        "/v1/payments", content=b'{"provider": ', headers=tenant.auth | {"Content-Type": "application/json"}
    )
    assert [p["field"] for p in assert_error_shape(malformed, 400, "malformed_json")] == ["body"]
    assert_error_shape(await client.get("/v1/payments"), 401, "unauthenticated")


async def test_a_lower_case_currency_is_stored_upper_case(client, tenant) -> None:
    body = stripe_registration(currency="usd")
    created = await client.post("/v1/payments", json=body, headers=tenant.auth)
    assert created.status_code == 201, created.text
    assert created.json()["currency"] == "USD"
    again = await client.post("/v1/payments", json=body | {"currency": "USD"}, headers=tenant.auth)
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]


@pytest.mark.parametrize(
    ("provider", "ref", "aliases"),
    [
        ("stripe", f"pi_{uuid.uuid4().hex}", [f"ch_{uuid.uuid4().hex}", f"in_{uuid.uuid4().hex}"]),
        ("paystack", paystack_reference(), []),
        ("paystack", f"order-{uuid.uuid4().hex[:8]}.v2=1", []),
        ("mpesa", checkout_request_id(), [checkout_request_id()]),
    ],
)
async def test_each_gateways_references_register(client, tenant, provider, ref, aliases) -> None:
    body = stripe_registration(provider=provider, provider_ref=ref, aliases=aliases)
    response = await client.post("/v1/payments", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("provider", "ref", "aliases", "field"),
    [
        ("stripe", "order-42", [], "provider_ref"),
        ("stripe", "cs_test_ok1", ["ws_CO_1234"], "aliases"),
        ("paystack", "order_42", [], "provider_ref"),
        ("paystack", "order 42", [], "provider_ref"),
        ("mpesa", "12345-678-1", [], "provider_ref"),
        ("mpesa", checkout_request_id(), ["pi_123"], "aliases"),
    ],
)
async def test_a_reference_of_the_wrong_form_for_its_gateway_is_refused(
    client, tenant, provider, ref, aliases, field
) -> None:
    body = stripe_registration(provider=provider, provider_ref=ref, aliases=aliases)
    response = await client.post("/v1/payments", json=body, headers=tenant.auth)
    problems = assert_error_shape(response, 422, "invalid_request")
    assert [p["field"] for p in problems] == [field]
    assert await nothing_registered_for(client, tenant, body["entity_id"])
