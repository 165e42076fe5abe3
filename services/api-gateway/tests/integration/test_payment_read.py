"""`GET /v1/payments/{id}`, the front ends' polling read, and `POST /v1/payments` are answered ahead of
FastAPI's router and dependency resolution (`hot.py`): every answer they give is the one the route,
routed and resolved the usual way, gives."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from paysync_dev.fixtures import TestTenant, stripe_registration

pytestmark = pytest.mark.integration

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def seen(answer: httpx.Response) -> tuple[int, bytes, dict[str, str | None]]:
    """What a client sees of an answer: status, body bytes, and the headers the API sets."""
    names = (
        *("content-type", "cache-control", "www-authenticate", "retry-after", "etag", "vary"),
        *("access-control-allow-origin", "access-control-expose-headers"),
    )
    return answer.status_code, answer.content, {name: answer.headers.get(name) for name in names}


async def test_a_payment_reads_as_the_same_bytes_as_in_its_entity_s_list(client, tenant) -> None:
    metadata = {"note": "Zahlung für Café ☕", "ratio": 0.1, "big": 1e16, "nested": {"a": [1, None, True]}}
    body = stripe_registration(metadata=metadata, aliases=["pi_alias_b", "pi_alias_a"])
    created = await client.post("/v1/payments", json=body, headers=tenant.auth)
    assert created.status_code == 201, created.text

    read = await client.get(f"/v1/payments/{created.json()['id']}", headers=tenant.auth)
    listed = await client.get(
        f"/v1/domains/{body['domain']}/{body['entity_id']}/payments", headers=tenant.auth
    )

    (item,) = listed.json()["items"]
    assert read.content == json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
    assert read.json() == created.json()
    assert read.json()["aliases"] == ["pi_alias_a", "pi_alias_b"]
    assert read.headers["etag"] == f'"{hashlib.sha256(read.content).hexdigest()[:32]}"'
    assert (read.headers["content-type"], read.headers["cache-control"]) == ("application/json", "no-store")
    assert int(read.headers["content-length"]) == len(read.content)


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, ""),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, ""),
        (bearer("psk_not_a_key"), ""),
        (None, "?status=paid"),
    ],
    ids=["no key", "not a bearer key", "unknown key", "unknown query parameter"],
)
async def test_refusals_are_those_of_a_route_resolved_the_usual_way(client, tenant, headers, query) -> None:
    headers = tenant.auth if headers is None else headers
    usual = await client.get(f"/v1/domains/jobs/job-1/payments{query}", headers=headers)
    direct = await client.get(f"/v1/payments/{UNKNOWN}{query}", headers=headers)
    assert usual.status_code in (400, 401)
    assert seen(direct) == seen(usual)


async def test_unknown_and_unstorable_ids_are_refused_in_the_one_error_shape(client, tenant) -> None:
    for path, status, answer in [
        (UNKNOWN, 404, {"error": "not_found", "message": f"no payment '{UNKNOWN}'", "problems": []}),
        ("nope", 404, {"error": "not_found", "message": "no payment 'nope'", "problems": []}),
        (
            "a%00b",
            422,
            {
                "error": "invalid_request",
                "message": "the request is not valid",
                "problems": [{"field": "payment_id", "problem": "contains a NUL character"}],
            },
        ),
    ]:
        refused = await client.get(f"/v1/payments/{path}", headers=tenant.auth)
        assert (refused.status_code, refused.json()) == (status, answer), path
        assert refused.headers["content-type"] == "application/json"


async def test_a_throttled_address_waits_as_on_every_route(serve_api, client_from, tenant) -> None:
    async with serve_api(failed_key_burst=2, failed_key_rate=0.001) as app, client_from(app) as client:
        for i in range(2):
            wrong = await client.get(f"/v1/payments/{UNKNOWN}", headers=bearer(f"psk_guess_{i}"))
            assert wrong.status_code == 401
        usual = await client.get("/v1/domains/jobs/job-1/payments", headers=tenant.auth)
        direct = await client.get(f"/v1/payments/{UNKNOWN}", headers=tenant.auth)
        assert usual.status_code == 429
        assert seen(direct) == seen(usual)


@pytest.fixture
async def routed_too(serve_api, client_from) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients of two api-gateways on one database: as it runs, and with every request routed and
    resolved by FastAPI (no `hot.py`)."""
    async with (
        serve_api() as hot,
        serve_api(hot_routes=False) as routed,
        client_from(hot) as hot_client,
        client_from(routed) as routed_client,
    ):
        yield hot_client, routed_client


async def test_every_read_answer_is_the_routed_one(routed_too, tenant: TestTenant) -> None:
    hot, routed = routed_too
    created = await routed.post("/v1/payments", json=stripe_registration(), headers=tenant.auth)
    path = f"/v1/payments/{created.json()['id']}"
    etag = (await routed.get(path, headers=tenant.auth)).headers["etag"]
    for url, headers in [
        (path, tenant.auth),
        (path, {**tenant.auth, "If-None-Match": etag}),
        (path, {**tenant.auth, "If-None-Match": f'W/"other", {etag}'}),
        (path, {**tenant.auth, "If-None-Match": '"other"'}),
        (path, {**tenant.auth, "Origin": "https://shop.example"}),
        (path, {**tenant.auth, "Origin": "http://api"}),
        (f"{path}?status=paid", tenant.auth),
        (f"/v1/payments/{UNKNOWN}", tenant.auth),
        ("/v1/payments/nope", tenant.auth),
        (path, {}),
        (path, bearer("psk_not_a_key")),
        (path, {"Authorization": f"Basic {tenant.api_key}"}),
    ]:
        answer = await hot.get(url, headers=headers)
        assert seen(answer) == seen(await routed.get(url, headers=headers)), (url, headers)


JSON = {"Content-Type": "application/json"}


async def test_every_registration_answer_is_the_routed_one(routed_too, tenant: TestTenant) -> None:
    hot, routed = routed_too
    mine, theirs = stripe_registration(aliases=["pi_b", "pi_a"]), stripe_registration()
    made = await hot.post("/v1/payments", json=mine, headers=tenant.auth)
    made_routed = await routed.post("/v1/payments", json=theirs, headers=tenant.auth)
    assert (made.status_code, made_routed.status_code) == (201, 201), made.text
    assert seen(made)[2] == seen(made_routed)[2]
    assert made.json().keys() == made_routed.json().keys()
    assert made.json()["aliases"] == ["pi_a", "pi_b"]
    assert made.json() == (await routed.get(f"/v1/payments/{made.json()['id']}", headers=tenant.auth)).json()
    auth = {**tenant.auth, **JSON}
    for body, headers in [
        (json.dumps(mine), auth),  # registered already: 200, the same payment
        (json.dumps(theirs), auth),
        (json.dumps({**mine, "amount_minor": 1}), auth),  # 409
        (json.dumps({**stripe_registration(), "provider": "paypal"}), auth),  # 422
        (json.dumps(stripe_registration(metadata={"phone": "+254712345678"})), auth),  # 422
        ('{"provider": ', auth),  # 400, not JSON
        ("", auth),
        ("[]", auth),
        (json.dumps(stripe_registration()), {**tenant.auth, "Content-Type": "text/plain"}),
        (json.dumps(stripe_registration()), JSON),  # 401
        (json.dumps(stripe_registration()), {**bearer("psk_not_a_key"), **JSON}),
        (json.dumps(stripe_registration()), {**auth, "Origin": "https://shop.example"}),  # 403
    ]:
        answer = await hot.post("/v1/payments", content=body, headers=headers)
        routed_answer = await routed.post("/v1/payments", content=body, headers=headers)
        assert seen(answer) == seen(routed_answer), (body, headers)

    # A content type the middleware leaves to the route (passed on, body and all): registered by it.
    charset = {**tenant.auth, "Content-Type": "application/json; charset=utf-8"}
    passed_on = await hot.post("/v1/payments", content=json.dumps(stripe_registration()), headers=charset)
    assert passed_on.status_code == 201, passed_on.text
