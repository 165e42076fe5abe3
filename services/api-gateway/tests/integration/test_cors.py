"""CORS per tenant: what a browser on an allowed origin, and on any other, gets from the API."""

from __future__ import annotations

import pytest

from paysync_dev.fixtures import create_tenant, stripe_registration

pytestmark = pytest.mark.integration
ADMIN_TOKEN = "admin-secret-for-cors-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SHOP = "https://shop.example"
ELSEWHERE = "https://evil.example"


def preflight(origin: str, method: str = "GET") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization",
    }


async def publishable_key(client, tenant_id: str) -> dict[str, str]:
    issued = await client.post(
        f"/admin/v1/tenants/{tenant_id}/api-keys", json={"kind": "publishable"}, headers=ADMIN
    )
    return {"Authorization": f"Bearer {issued.json()['api_key']}"}


async def test_a_page_on_an_allowed_origin_calls_the_api_and_a_page_elsewhere_cannot(
    open_api, tenant, migrated_database, credentials_keys
) -> None:
    other = create_tenant(migrated_database, credentials_keys)
    async with open_api(admin_token=ADMIN_TOKEN, cors_max_age_seconds=300) as client:
        put = await client.put(
            f"/admin/v1/tenants/{tenant.id}/cors",
            json={"allowed_origins": ["https://SHOP.example:443", "http://localhost:3000"]},
            headers=ADMIN,
        )
        assert put.status_code == 200
        assert put.json() == {"allowed_origins": ["http://localhost:3000", SHOP]}
        got = await client.get(f"/admin/v1/tenants/{tenant.id}/cors", headers=ADMIN)
        assert got.json() == put.json()
        payment = (await client.post("/v1/payments", json=stripe_registration(), headers=tenant.auth)).json()
        path = f"/v1/payments/{payment['id']}"
        pk = await publishable_key(client, tenant.id)

        allowed = await client.options(path, headers=preflight(SHOP))
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == SHOP
        assert "GET" in allowed.headers["access-control-allow-methods"]
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert allowed.headers["access-control-max-age"] == "300"
        assert "origin" in allowed.headers["vary"].lower()
        read = await client.get(path, headers=pk | {"Origin": SHOP})
        assert read.status_code == 200 and read.headers["access-control-allow-origin"] == SHOP
        assert "etag" in read.headers["access-control-expose-headers"].lower()
        # Errors reach the page too (it can show them).
        missing = await client.get(
            "/v1/payments/00000000-0000-0000-0000-000000000000", headers=pk | {"Origin": SHOP}
        )
        assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == SHOP

        refused = await client.options(path, headers=preflight(ELSEWHERE))
        assert refused.status_code == 403 and refused.json()["error"] == "origin_not_allowed"
        assert not any(h.startswith("access-control-") for h in refused.headers)
        sneaked = await client.get(path, headers=pk | {"Origin": ELSEWHERE})
        assert sneaked.status_code == 403 and sneaked.json()["error"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in sneaked.headers

        # A page on this tenant's origin gets no answer with another tenant's key: that tenant allows none.
        theirs = await client.get("/v1/payments", headers=other.auth | {"Origin": SHOP})
        assert theirs.status_code == 403 and "access-control-allow-origin" not in theirs.headers
        # A server (no Origin) is not affected by any of it.
        assert (await client.get(path, headers=pk)).status_code == 200

        cleared = await client.put(
            f"/admin/v1/tenants/{tenant.id}/cors", json={"allowed_origins": []}, headers=ADMIN
        )
        assert cleared.json() == {"allowed_origins": []}
        assert (await client.options(path, headers=preflight(SHOP))).status_code == 403
        assert (await client.get(path, headers=pk | {"Origin": SHOP})).status_code == 403


@pytest.mark.parametrize(
    "origin",
    [
        "http://shop.example",  # http only for localhost
        "https://shop.example/",
        "https://shop.example/checkout",
        "shop.example",
        "https://shop.example:99999",
        "https://user@shop.example",
        "https://*.example",
        "https://shop..example",
        "null",
    ],
)
async def test_an_origin_that_is_not_one_is_refused_and_nothing_changes(open_api, tenant, origin) -> None:
    async with open_api(admin_token=ADMIN_TOKEN) as client:
        url = f"/admin/v1/tenants/{tenant.id}/cors"
        assert (await client.put(url, json={"allowed_origins": [SHOP]}, headers=ADMIN)).status_code == 200
        refused = await client.put(url, json={"allowed_origins": [origin]}, headers=ADMIN)
        assert refused.status_code == 422 and refused.json()["error"] == "invalid_request"
        assert refused.json()["problems"][0]["field"] == "allowed_origins.0"
        assert (await client.get(url, headers=ADMIN)).json() == {"allowed_origins": [SHOP]}


async def test_cors_settings_are_the_operators(open_api, tenant) -> None:
    async with open_api(admin_token=ADMIN_TOKEN) as client:
        url = f"/admin/v1/tenants/{tenant.id}/cors"
        assert (
            await client.put(url, json={"allowed_origins": [SHOP]}, headers=tenant.auth)
        ).status_code == 401
        assert (await client.get("/admin/v1/tenants/nobody/cors", headers=ADMIN)).status_code == 404
        assert (
            await client.put("/admin/v1/tenants/nobody/cors", json={"allowed_origins": []}, headers=ADMIN)
        ).status_code == 404
