"""What the console needs of the API: its own origin may call `/v1`, and `/v1/stats` sums refunds."""

from __future__ import annotations

import httpx
import pytest

from paysync_core.domain.status import UnifiedStatus
from paysync_dev.fixtures import TestTenant, create_tenant, stripe_registration
from paysync_dev.payments import observation, publish_observations
from paysync_dev.service_fixtures import wait_until

pytestmark = pytest.mark.integration

#: The host the test client calls (`client_of` in conftest.py): a page served by this API has this origin.
OWN_ORIGIN = "http://api"


async def test_a_page_of_the_apis_own_origin_calls_it_and_a_page_elsewhere_still_cannot(
    client: httpx.AsyncClient, tenant: TestTenant
) -> None:
    # The tenant allows no web origin; the console (served by the API itself) still works, as the
    # browser says with Sec-Fetch-Site, or with an Origin naming the host it called.
    for headers in ({"Origin": OWN_ORIGIN}, {"Origin": OWN_ORIGIN, "Sec-Fetch-Site": "same-origin"}):
        body = stripe_registration()
        registered = await client.post("/v1/payments", json=body, headers=tenant.auth | headers)
        assert registered.status_code == 201, registered.text
        assert "access-control-allow-origin" not in registered.headers  # same origin: no CORS needed
        assert (await client.get("/v1/stats", headers=tenant.auth | headers)).status_code == 200
    for origin in ("https://evil.example", "http://api.evil.example", "https://api:8443"):
        refused = await client.post(
            "/v1/payments",
            json=stripe_registration(),
            headers=tenant.auth | {"Origin": origin, "Sec-Fetch-Site": "cross-site"},
        )
        assert refused.status_code == 403, origin
        assert refused.json()["error"] == "origin_not_allowed"
    listed = await client.get("/v1/payments", headers=tenant.auth)
    assert len(listed.json()["items"]) == 2, "a refused request registered nothing"


async def test_stats_sum_what_was_registered_received_and_refunded_by_currency(
    projector, client: httpx.AsyncClient, tenant: TestTenant, kafka_topics: str
) -> None:
    refs = []
    for amount, currency in [(5000, "USD"), (3000, "USD"), (700, "KES")]:
        body = stripe_registration(amount_minor=amount, currency=currency)
        assert (await client.post("/v1/payments", json=body, headers=tenant.auth)).status_code == 201
        refs.append((body["provider_ref"], amount, currency))
    (first, first_amount, _), (second, second_amount, _), _ = refs
    await publish_observations(
        kafka_topics,
        [
            observation(tenant=tenant.id, ref=first, amount=first_amount),
            observation(tenant=tenant.id, ref=second, amount=second_amount),
            observation(
                tenant=tenant.id,
                ref=second,
                status=UnifiedStatus.PARTIALLY_REFUNDED,
                minute=5,
                amount=second_amount,
                refunded=1200,
            ),
        ],
    )

    async def projected() -> bool:
        stats = (await client.get("/v1/stats", headers=tenant.auth)).json()
        return stats["by_status"] == {"succeeded": 1, "partially_refunded": 1, "pending": 1}

    await wait_until(projected, 60, "the payments paid and refunded")
    stats = (await client.get("/v1/stats", headers=tenant.auth)).json()
    assert stats["total"] == 3
    assert stats["by_currency"] == {
        "USD": {"registered_minor": 8000, "received_minor": 8000, "refunded_minor": 1200},
        "KES": {"registered_minor": 700, "received_minor": 0, "refunded_minor": 0},
    }


ADMIN_TOKEN = "admin-secret-for-console-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_key_tells_its_tenant_and_scopes_and_override_is_never_a_default_scope(
    open_api, tenant: TestTenant
) -> None:
    async with open_api(admin_token=ADMIN_TOKEN) as client:
        own = await client.get("/v1/key", headers=tenant.auth)
        assert own.status_code == 200 and own.headers["cache-control"] == "no-store"
        assert {k: own.json()[k] for k in ("tenant", "kind", "scopes", "expires_at")} == {
            "tenant": tenant.id,
            "kind": "secret",
            "scopes": ["read", "write"],
            "expires_at": None,
        }
        issued = await client.post(f"/admin/v1/tenants/{tenant.id}/api-keys", headers=ADMIN)
        assert issued.json()["scopes"] == ["read", "write"]  # an override is asked for by name
        page_key = await client.post(
            f"/admin/v1/tenants/{tenant.id}/api-keys", json={"kind": "publishable"}, headers=ADMIN
        )
        assert (await client.get("/v1/key", headers=bearer(page_key.json()["api_key"]))).status_code == 403
        assert (await client.get("/v1/key")).status_code == 401


async def test_a_key_with_the_override_scope_sets_its_tenants_payment_status_audited(
    projector, open_api, tenant: TestTenant, migrated_database: str, credentials_keys: str
) -> None:
    other = create_tenant(migrated_database, credentials_keys)
    async with open_api(admin_token=ADMIN_TOKEN, override_wait_seconds=60) as client:
        issued = await client.post(
            f"/admin/v1/tenants/{tenant.id}/api-keys",
            json={"scopes": ["read", "override"]},
            headers=ADMIN,
        )
        assert issued.status_code == 201 and issued.json()["scopes"] == ["override", "read"]
        key = bearer(issued.json()["api_key"])
        key_id = (await client.get("/v1/key", headers=key)).json()["key_id"]
        payment = (await client.post("/v1/payments", json=stripe_registration(), headers=tenant.auth)).json()
        theirs = (await client.post("/v1/payments", json=stripe_registration(), headers=other.auth)).json()
        url = f"/v1/payments/{payment['id']}/override"
        decision = {"status": "succeeded", "reason": "paid by bank transfer, receipt 4471", "by": "ops-amina"}

        refused = {
            "without the scope": await client.post(url, json=decision, headers=tenant.auth),
            "another tenant's payment": await client.post(
                f"/v1/payments/{theirs['id']}/override", json=decision, headers=key
            ),
            "no reason": await client.post(url, json=decision | {"reason": ""}, headers=key),
            "an unknown status": await client.post(url, json=decision | {"status": "paid"}, headers=key),
            "an unknown field": await client.post(url, json=decision | {"at": "now"}, headers=key),
        }
        assert {why: answer.status_code for why, answer in refused.items()} == {
            "without the scope": 403,
            "another tenant's payment": 404,
            "no reason": 422,
            "an unknown status": 422,
            "an unknown field": 422,
        }
        missing = refused["without the scope"].json()["problems"]
        assert missing == [{"field": "scope", "problem": "missing override"}]

        overridden = await client.post(url, json=decision, headers=key)
        assert overridden.status_code == 200, overridden.text
        assert (overridden.json()["status_before"], overridden.json()["status"]) == ("pending", "succeeded")
        history = (await client.get(f"/v1/payments/{payment['id']}/history", headers=tenant.auth)).json()
        assert [(e["source"], e["status_after"]) for e in history["items"]] == [("override", "succeeded")]
        assert history["items"][0]["override"] == {
            "by": f"ops-amina (API key #{key_id})",
            "reason": "paid by bank transfer, receipt 4471",
        }
        untouched = await client.get(f"/v1/payments/{theirs['id']}", headers=other.auth)
        assert untouched.json()["status"] == "pending"
