"""Drift only a gateway can reveal: each case alerted exactly once, however many ticks see it."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from paysync_core.contracts import AlertKind, Evidence, PaymentObservation
from paysync_core.db.schema import payments, reconcile_ticks, workshop_jobs
from paysync_dev.reconcile import alerts_of, register
from paysync_dev.service_fixtures import fetch, publish_observation, unique, wait_until

pytestmark = pytest.mark.integration


async def test_each_kind_of_drift_is_alerted_once_over_many_ticks(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics
):
    bootstrap = kafka_topics
    tenant = await lost_webhooks_tenant(
        ("stripe", "paystack"), faults={"paystack": {"api": {"server_error_ratio": 1.0}}}
    )
    stripe, paystack = tenant.account("stripe").id, tenant.account("paystack").id

    # 1. Paid at the gateway, never registered: the session names its job in metadata.
    job = unique("job")
    unrecorded = sim.create_payment(
        stripe,
        kind="checkout_session",
        amount_minor=3000,
        currency="usd",
        metadata={"paysync_domain": "jobs", "paysync_entity_id": job},
    ).ref
    sim.pay(stripe, unrecorded)
    # 2. Marked paid here (a bogus but verified webhook), while the customer never paid.
    unpaid = sim.create_payment(stripe, kind="checkout_session", amount_minor=2000, currency="usd").ref
    unpaid_id = await register(engine, tenant.id, "stripe", unpaid, domain="jobs", entity_id=unique("job"))
    now = datetime.now(UTC)
    await publish_observation(
        bootstrap,
        PaymentObservation(
            observation_id=f"evt_bogus_{uuid.uuid4().hex}",
            tenant=tenant.id,
            provider="stripe",
            provider_ref=unpaid,
            status="succeeded",
            amount_minor=2000,
            currency="USD",
            provider_time=now,
            source="webhook",
            verified=True,
            evidence=Evidence(event_type="checkout.session.completed"),
            observed_at=now,
        ),
    )
    # 3. Paid, but not what was registered.
    short = sim.create_payment(stripe, kind="checkout_session", amount_minor=1500, currency="usd").ref
    short_id = await register(engine, tenant.id, "stripe", short, domain="jobs", entity_id=unique("job"))
    sim.pay(stripe, short)
    # 4. A gateway that keeps failing: Paystack answers every request with a server error.
    for _ in range(3):
        ref = sim.create_payment(paystack, amount_minor=50_000, currency="NGN").ref
        await register(engine, tenant.id, "paystack", ref, amount_minor=50_000, currency="NGN")

    async def marked_paid() -> bool:
        rows = await fetch(engine, select(payments.c.status).where(payments.c.id == unpaid_id))
        return rows[0].status == "succeeded"

    await wait_until(marked_paid, 60, "the bogus success to be applied")

    await start_reconciler(
        scheduler_tenants=tenant.id,
        stripe_cadence_seconds=0.3,
        paystack_cadence_seconds=0.3,
        stripe_schedule="0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2",
        paystack_schedule="0.2,0.2,0.2,0.2,0.2,0.2",
        unrecorded_grace_seconds=1,
        list_overlap_seconds=60,
        breaker_threshold=3,
        breaker_cooldown_seconds=1,
        max_attempts=2,
        retry_after_error_seconds=0.2,
    )

    async def many_ticks() -> bool:
        rows = await fetch(
            engine,
            select(reconcile_ticks.c.tick_id).where(
                reconcile_ticks.c.tenant_id == tenant.id,
                reconcile_ticks.c.provider == "stripe",
                reconcile_ticks.c.status == "completed",
            ),
        )
        return len(rows) >= 12

    await wait_until(many_ticks, 40, "a dozen Stripe sweeps")
    expected = {
        AlertKind.GATEWAY_PAYMENT_UNRECORDED,
        AlertKind.PAID_WITHOUT_GATEWAY_SUCCESS,
        AlertKind.AMOUNT_MISMATCH,
        AlertKind.GATEWAY_ERROR,
    }

    async def every_kind_alerted() -> bool:
        return expected <= {a.kind for a in await alerts_of(bootstrap, tenant.id)}

    await wait_until(every_kind_alerted, 60, "an alert of each kind")

    alerts = await alerts_of(bootstrap, tenant.id)
    kinds = Counter(a.kind for a in alerts)
    unrecorded_row = select(payments).where(
        payments.c.tenant_id == tenant.id, payments.c.provider_ref == unrecorded
    )
    job_row = select(workshop_jobs.c.payment_status).where(
        workshop_jobs.c.tenant_id == tenant.id, workshop_jobs.c.job_id == job
    )

    async def unrecorded_applied() -> bool:
        # The reconciler creates the payment (pending) and alerts at once; the projector applies the
        # parked success to it, and its job, only after that (on the NOTIFY, or its next poll).
        created, paid = await fetch(engine, unrecorded_row), await fetch(engine, job_row)
        succeeded = bool(created) and created[0].status == "succeeded"
        return succeeded and bool(paid) and paid[0].payment_status == "paid"

    await wait_until(unrecorded_applied, 60, "the projector to apply the unrecorded payment's success")
    created = await fetch(engine, unrecorded_row)
    assert len(created) == 1 and not created[0].registered and created[0].status == "succeeded"
    assert (created[0].domain, created[0].entity_id, created[0].amount_minor) == ("jobs", job, 3000)
    paid_job = await fetch(engine, job_row)
    assert paid_job[0].payment_status == "paid"

    assert kinds[AlertKind.GATEWAY_PAYMENT_UNRECORDED] == 1
    assert next(a for a in alerts if a.kind is AlertKind.GATEWAY_PAYMENT_UNRECORDED).payment_id == str(
        created[0].id
    )
    assert kinds[AlertKind.PAID_WITHOUT_GATEWAY_SUCCESS] == 1
    assert next(a for a in alerts if a.kind is AlertKind.PAID_WITHOUT_GATEWAY_SUCCESS).payment_id == str(
        unpaid_id
    )
    assert kinds[AlertKind.AMOUNT_MISMATCH] == 1
    assert next(a for a in alerts if a.kind is AlertKind.AMOUNT_MISMATCH).payment_id == str(short_id)
    assert kinds[AlertKind.GATEWAY_ERROR] == 1
    short_row = await fetch(engine, select(payments.c.status).where(payments.c.id == short_id))
    assert short_row[0].status == "pending"  # a success for another amount is flagged, never accepted
    # The breaker stopped the hammering: far fewer Paystack requests than ticks times payments.
    paystack_ticks = await fetch(
        engine,
        select(reconcile_ticks.c.tick_id).where(
            reconcile_ticks.c.tenant_id == tenant.id, reconcile_ticks.c.provider == "paystack"
        ),
    )
    assert sim.account_stats(paystack).api.requests < len(paystack_ticks) * 2
