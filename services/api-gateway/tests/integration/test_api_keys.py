"""API keys: an operator revokes one (admin API or `paysync` CLI) and the API refuses it from then on;
a client address sending wrong keys is throttled without slowing anyone else."""

from __future__ import annotations

import asyncio

import pytest

from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_dev.fixtures import create_tenant
from paysync_dev.operator import paysync
from paysync_dev.service_fixtures import metric_in, wait_until

pytestmark = pytest.mark.integration
ADMIN_TOKEN = "admin-secret-for-key-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_an_operator_revokes_a_key_over_the_admin_api(open_api, tenant) -> None:
    async with open_api(admin_token=ADMIN_TOKEN) as client:
        second = await client.post(f"/admin/v1/tenants/{tenant.id}/api-keys", headers=ADMIN)
        new_key = second.json()["api_key"]
        listed = await client.get(f"/admin/v1/tenants/{tenant.id}/api-keys", headers=ADMIN)
        keys = listed.json()["api_keys"]
        assert [k["prefix"] for k in keys] == [tenant.api_key[:12], new_key[:12]]
        assert tenant.api_key not in listed.text and new_key not in listed.text
        old_id = keys[0]["id"]
        assert (await client.get("/v1/payments", headers=bearer(tenant.api_key))).status_code == 200

        # This replica cached the key's check just now, and still refuses it from the next request.
        revoked = await client.delete(f"/admin/v1/tenants/{tenant.id}/api-keys/{old_id}", headers=ADMIN)
        assert revoked.status_code == 204
        refused = await client.get("/v1/payments", headers=bearer(tenant.api_key))
        assert refused.status_code == 401 and refused.json()["error"] == "unauthenticated"
        assert (await client.get("/v1/payments", headers=bearer(new_key))).status_code == 200
        after = await client.get(f"/admin/v1/tenants/{tenant.id}/api-keys", headers=ADMIN)
        assert [k["revoked_at"] is not None for k in after.json()["api_keys"]] == [True, False]

        again = await client.delete(f"/admin/v1/tenants/{tenant.id}/api-keys/{old_id}", headers=ADMIN)
        assert again.status_code == 404 and again.json()["error"] == "not_found"
        assert (await client.get("/admin/v1/tenants/nobody/api-keys", headers=ADMIN)).status_code == 404
        assert (await client.get(f"/admin/v1/tenants/{tenant.id}/api-keys")).status_code == 401


async def test_an_operator_revokes_a_key_with_the_cli(client, tenant, migrated_database) -> None:
    assert (await client.get("/v1/payments", headers=bearer(tenant.api_key))).status_code == 200
    listed = await paysync(migrated_database, "tenants", "keys", tenant.id)
    assert listed.returncode == 0, listed.stderr
    assert tenant.api_key[:12] in listed.stdout and tenant.api_key not in listed.stdout

    revoked = await paysync(migrated_database, "tenants", "revoke-key", tenant.id, tenant.api_key[:12])
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    # Revoked in another process: this api-gateway refuses the key once its cached check expires.
    bound = ApiGatewaySettings().api_key_cache_seconds

    async def refused() -> bool:
        return (await client.get("/v1/payments", headers=bearer(tenant.api_key))).status_code == 401

    await wait_until(refused, bound + 10, f"the revoked key refused within {bound}s (and a margin)")
    twice = await paysync(migrated_database, "tenants", "revoke-key", tenant.id, tenant.api_key[:12])
    assert twice.returncode == 1 and "no live API key" in twice.stdout


async def test_wrong_keys_from_one_address_are_throttled_and_other_addresses_are_not(
    serve_api, client_from, tenant, migrated_database, credentials_keys
) -> None:
    neighbour = create_tenant(migrated_database, credentials_keys)
    async with (
        serve_api(failed_key_burst=3, failed_key_rate=0.001) as app,
        client_from(app, "203.0.113.7") as guesser,
        client_from(app, "198.51.100.20") as shop,
    ):
        for i in range(3):
            wrong = await guesser.get("/v1/payments", headers=bearer(f"psk_guess_{i}"))
            assert wrong.status_code == 401
        throttled = await guesser.get("/v1/payments", headers=bearer("psk_guess_next"))
        assert throttled.status_code == 429 and throttled.json()["error"] == "too_many_failed_keys"
        assert int(throttled.headers["retry-after"]) >= 1
        # From the throttled address even a valid key waits: no key is looked up for it.
        assert (await guesser.get("/v1/payments", headers=bearer(tenant.api_key))).status_code == 429
        # Everyone else is served as before, and gets 401 (not 429) for a wrong key of their own.
        assert (await shop.get("/v1/payments", headers=bearer(neighbour.api_key))).status_code == 200
        assert (await shop.get("/v1/payments", headers=bearer("psk_typo"))).status_code == 401


async def test_a_burst_with_one_key_costs_one_lookup_and_later_requests_none(open_api, tenant) -> None:
    async def lookups() -> float:
        exposition = (await client.get("/metrics")).text
        return metric_in(exposition, "paysync_api_gateway_api_key_lookups_total")

    async with open_api(api_key_cache_seconds=3600) as client:
        before = await lookups()
        burst = await asyncio.gather(*(client.get("/v1/payments", headers=tenant.auth) for _ in range(20)))
        assert [r.status_code for r in burst] == [200] * 20
        for _ in range(5):
            assert (await client.get("/v1/stats", headers=tenant.auth)).status_code == 200
        assert await lookups() - before == 1
