"""Secret keys with scopes and expiry, and publishable keys a web page may carry: what each may call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from paysync_dev.fixtures import create_tenant, stripe_registration

pytestmark = pytest.mark.integration
ADMIN_TOKEN = "admin-secret-for-scope-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def issue(client, tenant_id: str, **body: object) -> dict:
    answer = await client.post(f"/admin/v1/tenants/{tenant_id}/api-keys", json=body or None, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_a_secret_key_does_only_what_its_scopes_allow(open_api, tenant) -> None:
    async with open_api(admin_token=ADMIN_TOKEN) as client:
        reader = await issue(client, tenant.id, scopes=["read"])
        writer = await issue(client, tenant.id, scopes=["write"])
        full = await issue(client, tenant.id)
        assert (reader["kind"], reader["scopes"], full["scopes"]) == ("secret", ["read"], ["read", "write"])

        body = stripe_registration()
        refused = await client.post("/v1/payments", json=body, headers=bearer(reader["api_key"]))
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert "'write'" in refused.json()["message"]
        assert refused.json()["problems"] == [{"field": "scope", "problem": "missing write"}]
        assert (
            await client.post("/v1/payments/refresh", headers=bearer(reader["api_key"]))
        ).status_code == 403
        read = await client.get(
            "/v1/payments", params={"entity_id": body["entity_id"]}, headers=bearer(reader["api_key"])
        )
        assert (
            read.status_code == 200 and read.json()["items"] == []
        )  # the refused registration changed nothing

        registered = await client.post("/v1/payments", json=body, headers=bearer(writer["api_key"]))
        assert registered.status_code == 201
        blind = await client.get(f"/v1/payments/{registered.json()['id']}", headers=bearer(writer["api_key"]))
        assert blind.status_code == 403 and "'read'" in blind.json()["message"]
        seen = await client.get(f"/v1/payments/{registered.json()['id']}", headers=bearer(reader["api_key"]))
        assert seen.status_code == 200
        # The key every tenant had before scopes existed keeps full access.
        assert (
            await client.post("/v1/payments", json=stripe_registration(), headers=tenant.auth)
        ).status_code == 201
        assert (await client.get("/v1/stats", headers=tenant.auth)).status_code == 200

        listed = (await client.get(f"/admin/v1/tenants/{tenant.id}/api-keys", headers=ADMIN)).json()[
            "api_keys"
        ]
        assert [(k["kind"], k["scopes"], k["expires_at"]) for k in listed] == [
            ("secret", ["read", "write"], None),
            ("secret", ["read"], None),
            ("secret", ["write"], None),
            ("secret", ["read", "write"], None),
        ]


async def test_an_expired_key_is_refused_as_expired(open_api, tenant, engine) -> None:
    # No cache, so the expiry written below is read at the next request.
    async with open_api(admin_token=ADMIN_TOKEN, api_key_cache_seconds=0) as client:
        later = datetime.now(UTC) + timedelta(days=30)
        key = await issue(client, tenant.id, expires_at=later.isoformat())
        assert key["expires_at"] == later.isoformat()
        assert (await client.get("/v1/payments", headers=bearer(key["api_key"]))).status_code == 200
        async with engine.begin() as conn:  # the month has passed
            await conn.execute(
                text("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE prefix = :p"),
                {"p": key["api_key"][:12]},
            )
        expired = await client.get("/v1/payments", headers=bearer(key["api_key"]))
        assert expired.status_code == 401 and expired.json()["error"] == "unauthenticated"
        assert "expired" in expired.json()["message"] and expired.headers["www-authenticate"] == "Bearer"
        assert (await client.get("/v1/payments", headers=tenant.auth)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2999-01-01T00:00:00"}, "expires_at"),  # no time zone
        ({"scopes": ["admin"]}, "scopes.0"),
        ({"scopes": []}, "scopes"),
        ({"kind": "publishable", "scopes": ["write"]}, "scopes"),
        ({"kind": "restricted"}, "kind"),
    ],
)
async def test_a_key_that_cannot_be_issued_is_refused_and_none_is_issued(
    open_api, tenant, body, field
) -> None:
    async with open_api(admin_token=ADMIN_TOKEN) as client:
        refused = await client.post(f"/admin/v1/tenants/{tenant.id}/api-keys", json=body, headers=ADMIN)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] in ("invalid_request", "invalid_input")
        assert field in [p["field"] for p in refused.json()["problems"]]
        listed = await client.get(f"/admin/v1/tenants/{tenant.id}/api-keys", headers=ADMIN)
        assert len(listed.json()["api_keys"]) == 1


async def test_a_publishable_key_reads_only_its_tenants_payments_and_nothing_else(
    open_api, tenant, migrated_database, credentials_keys
) -> None:
    other = create_tenant(migrated_database, credentials_keys)
    settings = {"admin_token": ADMIN_TOKEN, "stream_token_secret": "s" * 32}
    async with open_api(**settings) as client:
        published = await issue(client, tenant.id, kind="publishable")
        pk = bearer(published["api_key"])
        assert published["api_key"].startswith("ppk_") and published["scopes"] == ["read"]
        ours = (await client.post("/v1/payments", json=stripe_registration(), headers=tenant.auth)).json()
        theirs = (await client.post("/v1/payments", json=stripe_registration(), headers=other.auth)).json()

        read = await client.get(f"/v1/payments/{ours['id']}", headers=pk)
        assert read.status_code == 200 and read.json()["provider_ref"] == ours["provider_ref"]
        assert (await client.get(f"/v1/payments/{theirs['id']}", headers=pk)).status_code == 404
        entity = await client.get(f"/v1/domains/jobs/{ours['entity_id']}/payments", headers=pk)
        assert [p["id"] for p in entity.json()["items"]] == [ours["id"]]
        nothing = await client.get(f"/v1/domains/jobs/{theirs['entity_id']}/payments", headers=pk)
        assert nothing.status_code == 200 and nothing.json()["items"] == []

        body = stripe_registration()
        closed = {
            "register": await client.post("/v1/payments", json=body, headers=pk),
            "bulk refresh": await client.post("/v1/payments/refresh", headers=pk),
            "list": await client.get("/v1/payments", headers=pk),
            "stats": await client.get("/v1/stats", headers=pk),
            "history": await client.get(f"/v1/payments/{ours['id']}/history", headers=pk),
            "sync issues": await client.get("/v1/sync-issues", headers=pk),
            "tenant stream token": await client.post("/v1/stream-tokens", headers=pk),
        }
        assert {what: a.status_code for what, a in closed.items()} == {what: 403 for what in closed}
        assert all(a.json()["error"] == "forbidden" for a in closed.values())
        admin = await client.get(f"/admin/v1/tenants/{tenant.id}/api-keys", headers=pk)
        assert admin.status_code == 401
        found = await client.get("/v1/payments", params={"entity_id": body["entity_id"]}, headers=tenant.auth)
        assert found.json()["items"] == []  # the refused registration registered nothing

        scoped = {"domain": "jobs", "entity_id": ours["entity_id"]}
        token = await client.post("/v1/stream-tokens", json=scoped, headers=pk)
        assert token.status_code == 201 and token.json()["entity_id"] == ours["entity_id"]
