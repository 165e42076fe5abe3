"""One payment whose check raises (a malformed reference, an answer nobody expected) stops nothing else."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from paysync_core.contracts import AlertKind
from paysync_core.db.schema import payments, reconcile_checks, reconcile_ticks, sync_issues
from paysync_dev.reconcile import alerts_of, register
from paysync_dev.service_fixtures import fetch, unique, wait_until

pytestmark = pytest.mark.integration

#: Not a Stripe id at all: a row registered before references were checked (or written by hand).
MALFORMED = "ORDER-1"


async def test_a_payment_whose_check_raises_becomes_its_issue_and_the_sweep_recovers_the_others(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics
):
    tenant = await lost_webhooks_tenant(("stripe",))
    account = tenant.account("stripe").id
    paid = []
    for _ in range(3):
        ref = sim.create_payment(account, kind="checkout_session", amount_minor=2000, currency="usd").ref
        await register(engine, tenant.id, "stripe", ref, domain="jobs", entity_id=unique("job"))
        sim.pay(account, ref)  # its webhook is lost
        paid.append(ref)
    job = unique("job")
    bad = await register(engine, tenant.id, "stripe", MALFORMED, domain="jobs", entity_id=job)
    # The sweep's Events list starts after these payments' events (Stripe's `created` is whole seconds),
    # so only their own checks, made alongside the malformed one's, can find them paid.
    paid_by = time.time()

    async def events_out_of_window() -> bool:
        return time.time() >= paid_by + 2.5

    await wait_until(events_out_of_window, 10, "the payments' events to fall before the list window")
    [reconciler] = await start_reconciler(
        scheduler_tenants=tenant.id,
        stripe_cadence_seconds=3600,
        stripe_schedule="0,3600",
        initial_lookback_seconds=1,
    )

    async def others_recovered() -> bool:
        mine = (payments.c.tenant_id == tenant.id) & payments.c.provider_ref.in_(paid)
        rows = await fetch(engine, select(payments.c.status).where(mine))
        return [r.status for r in rows] == ["succeeded"] * len(paid)

    await wait_until(others_recovered, 30, "the paid payments to be recovered by the sweep")

    async def first_tick() -> Any:
        # The first slot's: cadence slots are hour-aligned, so the next hour's may have begun meanwhile.
        ticks = await fetch(
            engine,
            select(reconcile_ticks.c.status, reconcile_ticks.c.completed_at)
            .where(reconcile_ticks.c.tenant_id == tenant.id)
            .order_by(reconcile_ticks.c.received_at),
        )
        return ticks[0] if ticks else None

    async def swept() -> bool:
        tick = await first_tick()
        return tick is not None and tick.completed_at is not None

    await wait_until(swept, 60, "the sweep's tick to be finished")
    assert (await first_tick()).status == "completed"

    # The malformed payment is an open sync issue naming it and why, alerted once.
    issues = await fetch(
        engine,
        select(sync_issues).where(
            sync_issues.c.tenant_id == tenant.id, sync_issues.c.kind == AlertKind.CHECK_FAILED.value
        ),
    )
    assert [(i.payment_id, i.resolved_at) for i in issues] == [(bad, None)]
    assert MALFORMED in issues[0].detail and issues[0].facts["reason"]
    alerts = await alerts_of(kafka_topics, tenant.id)
    assert [(a.kind, a.provider_ref) for a in alerts] == [(AlertKind.CHECK_FAILED, MALFORMED)]

    # Its schedule backs off along the gateway's steps, not a retry every minute; still pending.
    [check] = await fetch(engine, select(reconcile_checks).where(reconcile_checks.c.payment_id == bad))
    assert (check.step, check.last_error, check.done_at, check.gave_up_at) == (1, "check_failed", None, None)
    assert check.next_check_at - check.last_checked_at == timedelta(seconds=3600)
    # Counted on /metrics, logged once by its type.
    assert reconciler.metric("paysync_reconciler_check_failures_total", provider="stripe") == 1
    assert reconciler.metric("paysync_reconciler_gateway_errors_total", code="check_failed") == 1
    log = reconciler.process.log_path.read_text()
    assert log.count("reconcile.check.failed") == 1 and "reconcile.sweep.failed" not in log
