"""`/admin/v1/tenants/{id}/endpoints…`: tenants' webhook endpoints through the operator's API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from paysync_dev.fixtures import TestTenant, create_tenant

pytestmark = pytest.mark.integration
TOKEN = "admin-secret-for-endpoint-tests"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def admin(open_api) -> AsyncIterator[httpx.AsyncClient]:
    """api-gateway with the admin API on."""
    async with open_api(admin_token=TOKEN) as api:
        yield api


async def test_bad_endpoints_are_refused_in_the_error_shape_and_change_nothing(
    admin: httpx.AsyncClient, tenant: TestTenant
) -> None:
    base = f"/admin/v1/tenants/{tenant.id}/endpoints"
    refused = {
        "http://example.com/hooks": "https",
        "https://user:pw@example.com/hooks": "credentials",
        "not a url": "https",
    }
    for url, why in refused.items():
        answer = await admin.post(base, json={"url": url}, headers=ADMIN)
        assert answer.status_code == 422, url
        body = answer.json()
        assert body["error"] == "invalid_request" and body["problems"][0]["field"] == "url"
        assert why in body["problems"][0]["problem"], body
    for extra in ({"statuses": ["paid"]}, {"secret": "whsec_mine"}, {"domains": ["Not A Domain"]}):
        answer = await admin.post(base, json={"url": "https://example.com/h", **extra}, headers=ADMIN)
        assert answer.status_code == 422 and answer.json()["problems"], extra
    assert (await admin.get(base, headers=ADMIN)).json()["endpoints"] == []
    assert (await admin.post(base, json={"url": "https://example.com/h"})).status_code == 401
    unknown = await admin.post(
        "/admin/v1/tenants/nobody-here/endpoints", json={"url": "https://a.b/"}, headers=ADMIN
    )
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_tenant"


async def test_an_operator_registers_rotates_disables_and_enables_an_endpoint(
    admin: httpx.AsyncClient, tenant: TestTenant
) -> None:
    base = f"/admin/v1/tenants/{tenant.id}/endpoints"
    spec = {"url": "https://app.example.com/paysync", "domains": ["jobs"], "statuses": ["succeeded"]}
    created = await admin.post(base, json=spec | {"description": "billing backend"}, headers=ADMIN)
    assert created.status_code == 201
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"]
    assert endpoint["domains"] == ["jobs"] and endpoint["statuses"] == ["succeeded"]

    listed = await admin.get(base, headers=ADMIN)
    assert [e["id"] for e in listed.json()["endpoints"]] == [endpoint["id"]]
    assert endpoint["secret"] not in listed.text and "secret" not in listed.json()["endpoints"][0]

    rotate = f"{base}/{endpoint['id']}/rotate-secret"
    rotated = await admin.post(rotate, json={"keep_old_for_seconds": 3600}, headers=ADMIN)
    assert rotated.status_code == 200 and rotated.json()["secret"] not in (endpoint["secret"], "")
    too_long = await admin.post(rotate, json={"keep_old_for_seconds": 10**9}, headers=ADMIN)
    assert too_long.status_code == 422

    disabled = await admin.post(f"{base}/{endpoint['id']}/disable", headers=ADMIN)
    assert disabled.status_code == 200 and not disabled.json()["enabled"]
    assert disabled.json()["disabled_reason"] == "disabled by an operator"
    enabled = await admin.post(f"{base}/{endpoint['id']}/enable", headers=ADMIN)
    assert enabled.json()["enabled"] and enabled.json()["disabled_reason"] is None


async def test_one_tenant_cannot_reach_another_tenants_endpoints_or_deliveries(
    admin: httpx.AsyncClient, tenant: TestTenant, migrated_database: str, credentials_keys: str
) -> None:
    other = create_tenant(migrated_database, credentials_keys)
    theirs = await admin.post(
        f"/admin/v1/tenants/{other.id}/endpoints", json={"url": "https://other.example.com/"}, headers=ADMIN
    )
    endpoint_id = theirs.json()["id"]
    mine = f"/admin/v1/tenants/{tenant.id}"
    for path in ("disable", "enable", "rotate-secret"):
        answer = await admin.post(f"{mine}/endpoints/{endpoint_id}/{path}", headers=ADMIN)
        assert answer.status_code == 404 and answer.json()["error"] == "unknown_endpoint", path
    ranged = await admin.post(
        f"{mine}/endpoints/{endpoint_id}/redeliver", json={"since": "2026-01-01T00:00:00Z"}, headers=ADMIN
    )
    assert ranged.status_code == 404
    missing = await admin.post(f"{mine}/endpoint-deliveries/999999999/redeliver", headers=ADMIN)
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_delivery"
    assert (await admin.get(f"{mine}/endpoint-deliveries", headers=ADMIN)).json()["deliveries"] == []
    naive = await admin.post(
        f"/admin/v1/tenants/{other.id}/endpoints/{endpoint_id}/redeliver",
        json={"since": "2026-01-01"},
        headers=ADMIN,
    )
    assert naive.status_code == 422, "a time without its zone is refused"
