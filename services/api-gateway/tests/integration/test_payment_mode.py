"""Test and live kept apart: a payment shows its mode; a live observation never settles a test payment."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from paysync_core.credentials import GatewayCredentials, StripeCredentials
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import tenants as tenant_repo
from paysync_core.db.schema import observations, workshop_jobs
from paysync_dev.service_fixtures import fetch, publish_observation, stripe_paid, unique, wait_until

pytestmark = pytest.mark.integration


async def register(client, tenant, ref: str) -> dict:
    response = await client.post(
        "/v1/payments",
        headers={"Authorization": f"Bearer {tenant.api_key}"},
        json={
            "provider": "stripe",
            "provider_ref": ref,
            "domain": "jobs",
            "entity_id": unique("job"),
            "amount_minor": 12500,
            "currency": "USD",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


async def switch_stripe_keys(engine, tenant, credentials_keys: str, secret_key: str) -> None:
    """What an operator does when a tenant goes live: new Stripe keys."""
    credentials = GatewayCredentials(
        stripe=StripeCredentials(
            secret_key=SecretStr(secret_key), webhook_secrets=(SecretStr(tenant.stripe_webhook_secret),)
        )
    )
    async with engine.begin() as conn:
        await tenant_repo.set_credentials(conn, tenant.id, credentials, CredentialsCipher(credentials_keys))


async def test_each_payment_shows_the_mode_of_the_keys_it_was_registered_under_and_lists_filter_by_it(
    client, tenant, engine, credentials_keys
) -> None:
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    before = await register(client, tenant, f"cs_test_{uuid.uuid4().hex}")
    await switch_stripe_keys(engine, tenant, credentials_keys, f"sk_live_{uuid.uuid4().hex}")
    after = await register(client, tenant, f"cs_live_{uuid.uuid4().hex}")

    assert (before["mode"], after["mode"]) == ("test", "live")
    shown = (await client.get(f"/v1/payments/{before['id']}", headers=auth)).json()
    assert shown["mode"] == "test"  # fixed at registration: the tenant's new keys do not change it
    for mode, expected in (("test", [before["id"]]), ("live", [after["id"]])):
        page = (await client.get("/v1/payments", headers=auth, params={"mode": mode})).json()
        assert [p["id"] for p in page["items"]] == expected
        assert {p["mode"] for p in page["items"]} == {mode}
    wrong = await client.get("/v1/payments", headers=auth, params={"mode": "production"})
    assert (wrong.status_code, wrong.json()["error"]) == (422, "invalid_request")  # the API's one error shape
    assert [p["field"] for p in wrong.json()["problems"]] == ["mode"]


async def test_a_live_observation_never_marks_a_test_payment_paid_and_is_visible_as_refused(
    projector, client, tenant, engine, kafka_topics
) -> None:
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    ref = f"cs_test_{uuid.uuid4().hex}"
    payment = await register(client, tenant, ref)
    assert payment["mode"] == "test"
    live = stripe_paid(tenant.id, ref, mode="live")
    await publish_observation(kafka_topics, live)

    async def refusal_listed() -> bool:
        issues = (await client.get("/v1/sync-issues", headers=auth, params={"kind": "mode_mismatch"})).json()
        return any(i["payment_id"] == payment["id"] for i in issues.get("items", []))

    await wait_until(refusal_listed, 30, "the mode mismatch as a sync issue")
    unchanged = (await client.get(f"/v1/payments/{payment['id']}", headers=auth)).json()
    shown = (unchanged["status"], unchanged["amount_received_minor"], unchanged["paid_at"])
    assert shown == ("pending", None, None)
    assert unchanged["sequence"] == payment["sequence"]
    job = workshop_jobs.c
    assert await fetch(engine, select(job.job_id).where(job.tenant_id == tenant.id)) == []  # no row written
    [row] = await fetch(
        engine,
        select(observations.c.refused, observations.c.status_after).where(
            observations.c.tenant_id == tenant.id, observations.c.observation_id == live.observation_id
        ),
    )
    assert (row.refused, row.status_after) == ("live_observation_for_test_payment", "pending")

    await publish_observation(kafka_topics, stripe_paid(tenant.id, ref, mode="test"))  # its own mode applies

    async def succeeded() -> bool:
        shown = await client.get(f"/v1/payments/{payment['id']}", headers=auth)
        return shown.json()["status"] == "succeeded"

    await wait_until(succeeded, 30, "the test-mode success applied")
