"""A payment whose webhook never comes still shows paid: the reconciler sweeps its gateway (the simulator)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from paysync_core.db.schema import workshop_jobs

from .test_stripe_payment_end_to_end import query, register, wait_for_status

pytestmark = pytest.mark.e2e


def test_a_paid_session_whose_webhook_is_lost_shows_succeeded_after_the_sweep(
    stack, tenant, gateway_sim, migrated_database
):
    account = tenant.account("stripe").id  # no webhook endpoint: every webhook of it is lost
    session = gateway_sim.create_payment(account, kind="checkout_session", amount_minor=12500, currency="usd")
    gateway_sim.pay(account, session.ref)
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    payment = register(stack, tenant, session.ref, job_id)
    assert payment["status"] == "pending"

    # The scheduler ticks for the tenant now that it has a payment; the sweep lists Stripe's events.
    # A generous bound: its rounds are 5 s apart and go over every tenant of the session's database,
    # and a freshly started reconciler first sweeps every other tenant that has payments.
    final = wait_for_status(stack, tenant, payment["id"], "succeeded", timeout=120)
    assert final["status"] == "succeeded" and final["amount_received_minor"] == 12500
    [job] = query(
        migrated_database,
        select(workshop_jobs).where(workshop_jobs.c.tenant_id == tenant.id, workshop_jobs.c.job_id == job_id),
    )
    assert job.payment_status == "paid"
    assert gateway_sim.account_stats(account).api.served >= 1
    assert gateway_sim.account_stats(account).webhooks.delivered == 0
