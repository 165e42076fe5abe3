"""The operator's admin API: tenants, keys, credentials and key rotation."""

from __future__ import annotations

import uuid

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from paysync_api_gateway.app import create_app
from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_core.crypto import CredentialsCipher
from paysync_core.db.engine import make_engine, upgrade
from paysync_core.db.schema import tenants
from paysync_core.settings import CommonSettings

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": "Bearer admin-secret-for-tests"}


def make_client(url: str, keys: str, bootstrap: str):
    app = create_app(
        ApiGatewaySettings(
            common=CommonSettings(database_url=url, credentials_keys=keys, kafka_bootstrap=bootstrap),
            admin_token="admin-secret-for-tests",
        )
    )
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def stored_ciphertext(url: str, tenant_id: str) -> bytes:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return (
                await conn.execute(select(tenants.c.credentials_ciphertext).where(tenants.c.id == tenant_id))
            ).scalar_one()
    finally:
        await engine.dispose()


@pytest.fixture
def own_database(fresh_database: str) -> str:
    """Re-encryption touches every tenant, so this test has a database of its own."""
    upgrade(fresh_database)
    return fresh_database


async def test_an_operator_creates_a_tenant_configures_it_and_rotates_the_key(
    own_database, credentials_keys, kafka_topics
) -> None:
    migrated_database = own_database
    app, client = make_client(migrated_database, credentials_keys, kafka_topics)
    tenant_id = f"acme-{uuid.uuid4().hex[:6]}"
    async with app.router.lifespan_context(app), client:
        assert (
            await client.post("/admin/v1/tenants", json={"id": tenant_id, "name": "Acme"})
        ).status_code == 401
        created = await client.post(
            "/admin/v1/tenants", json={"id": tenant_id, "name": "Acme"}, headers=ADMIN
        )
        assert created.status_code == 201 and created.json()["api_key"].startswith("psk_")
        again = await client.post("/admin/v1/tenants", json={"id": tenant_id, "name": "Acme"}, headers=ADMIN)
        assert again.status_code == 409
        listed = await client.get(
            "/v1/payments", headers={"Authorization": f"Bearer {created.json()['api_key']}"}
        )
        assert listed.status_code == 200

        configured = await client.put(
            f"/admin/v1/tenants/{tenant_id}/credentials",
            headers=ADMIN,
            json={"stripe": {"secret_key": "sk_test_1", "webhook_secrets": ["whsec_old", "whsec_new"]}},
        )
        assert configured.json() == {"id": tenant_id, "configured": ["stripe"]}
        assert "whsec" not in configured.text
        await client.put(
            f"/admin/v1/tenants/{tenant_id}/credentials",
            headers=ADMIN,
            json={"paystack": {"secret_key": "sk_test_paystack"}},
        )
        unknown = await client.put("/admin/v1/tenants/nobody/credentials", headers=ADMIN, json={})
        assert unknown.status_code == 404
    before = await stored_ciphertext(migrated_database, tenant_id)

    new_key = Fernet.generate_key().decode()
    rotated_app, rotated = make_client(migrated_database, f"{new_key},{credentials_keys}", kafka_topics)
    async with rotated_app.router.lifespan_context(rotated_app), rotated:
        result = await rotated.post("/admin/v1/credentials/reencrypt", headers=ADMIN)
        assert result.status_code == 200 and result.json()["reencrypted"] >= 1
    after = await stored_ciphertext(migrated_database, tenant_id)
    assert after != before
    readable = CredentialsCipher(new_key).decrypt(after)  # the old key is no longer needed
    assert readable.stripe.webhook_secrets[1].get_secret_value() == "whsec_new"
    assert readable.paystack.secret_key.get_secret_value() == "sk_test_paystack"


async def test_endpoint_and_alert_secrets_move_to_the_new_key_with_the_credentials(
    own_database, credentials_keys, kafka_topics
) -> None:
    app, client = make_client(own_database, credentials_keys, kafka_topics)
    tenant_id = f"hooks-{uuid.uuid4().hex[:6]}"
    async with app.router.lifespan_context(app), client:
        await client.post("/admin/v1/tenants", json={"id": tenant_id, "name": "Hooks"}, headers=ADMIN)
        created = await client.post(
            f"/admin/v1/tenants/{tenant_id}/endpoints",
            json={"url": "https://app.example.com/h"},
            headers=ADMIN,
        )
        endpoint_id = created.json()["id"]
        alert_channels = {"slack_urls": ["https://hooks.slack.com/services/T0/B0/secret-path"]}
        put = await client.put(
            f"/admin/v1/tenants/{tenant_id}/alert-settings", json=alert_channels, headers=ADMIN
        )
        assert put.status_code == 200, put.text

    new_key = Fernet.generate_key().decode()
    both_app, both = make_client(own_database, f"{new_key},{credentials_keys}", kafka_topics)
    async with both_app.router.lifespan_context(both_app), both:
        assert (await both.post("/admin/v1/credentials/reencrypt", headers=ADMIN)).status_code == 200

    only_new_app, only_new = make_client(own_database, new_key, kafka_topics)  # the old key dropped
    async with only_new_app.router.lifespan_context(only_new_app), only_new:
        rotated = await only_new.post(
            f"/admin/v1/tenants/{tenant_id}/endpoints/{endpoint_id}/rotate-secret", headers=ADMIN
        )
        alerts = await only_new.get(f"/admin/v1/tenants/{tenant_id}/alert-settings", headers=ADMIN)
    assert rotated.status_code == 200, rotated.text
    # The alert channels' URLs moved with them: the new key alone still opens them.
    assert alerts.status_code == 200, alerts.text
    assert alerts.json()["slack"][0].startswith("hooks.slack.com[")
