"""Test and live kept apart: a verified webhook from the other mode than the tenant's keys is refused."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.paystack import paystack_charge_success
from paysync_core.testing.builders.stripe import checkout_session, stripe_event

from .conftest import paystack_headers, quarantined, raw_records_mentioning, stripe_headers

pytestmark = pytest.mark.integration


async def _refusals(ingest, tenant: str) -> float:
    text = (await ingest.get("/metrics")).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "paysync_webhooks_total"
        and s.labels.get("tenant") == tenant
        and s.labels.get("outcome") == "mode_mismatch"
    )


async def test_a_live_mode_event_to_a_tenant_with_test_keys_is_refused_counted_and_never_applied(
    ingest, tenant, kafka_topics, migrated_database
) -> None:
    """The tenant's Stripe and Paystack keys are test keys (sk_test_…); a correctly signed live event
    would otherwise mark a payment paid that no test payment stands for."""
    live_session, test_session = f"cs_live_{uuid.uuid4().hex}", f"cs_test_{uuid.uuid4().hex}"
    completed = "checkout.session.completed"
    live = to_body(stripe_event(completed, checkout_session(id=live_session), livemode=True))
    test = to_body(stripe_event(completed, checkout_session(id=test_session)))
    paystack_live = paystack_charge_success(reference=f"live-{uuid.uuid4().hex[:12]}")
    paystack_live["data"]["domain"] = "live"
    paystack_body = to_body(paystack_live)
    before = await _refusals(ingest, tenant.id)

    refused = await ingest.post(
        f"/webhooks/{tenant.id}/stripe",
        content=live,
        headers=stripe_headers(live, tenant.stripe_webhook_secret),
    )
    accepted = await ingest.post(
        f"/webhooks/{tenant.id}/stripe",
        content=test,
        headers=stripe_headers(test, tenant.stripe_webhook_secret),
    )
    refused_paystack = await ingest.post(
        f"/webhooks/{tenant.id}/paystack",
        content=paystack_body,
        headers=paystack_headers(paystack_body, tenant.paystack_secret_key),
    )

    assert accepted.status_code == 200
    for response in (refused, refused_paystack):
        assert response.status_code == 400
        assert response.json()["error"] == "mode_mismatch"
        assert response.json()["message"] == "refused, nothing applied: live event for test credentials"
    assert await _refusals(ingest, tenant.id) - before == 2
    assert await raw_records_mentioning(kafka_topics, live_session) == []  # nothing to normalize or apply
    assert await raw_records_mentioning(kafka_topics, paystack_live["data"]["reference"]) == []
    assert len(await raw_records_mentioning(kafka_topics, test_session)) == 1
    reasons = [row.reason for row in await quarantined(migrated_database, tenant.id, want=2)]
    assert reasons == ["mode_mismatch:live_event_for_test_credentials"] * 2
