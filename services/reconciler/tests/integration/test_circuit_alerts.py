"""A tenant's circuit to a gateway: one `gateway_error` alert when it opens, its issue resolved when the
gateway answers again and the circuit closes (so the notifier tells the resolution)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from paysync_core.contracts import AlertKind
from paysync_core.db.schema import sync_issues
from paysync_dev.reconcile import alerts_of, register
from paysync_dev.service_fixtures import fetch, wait_until

pytestmark = pytest.mark.integration


async def test_a_circuit_that_opens_is_alerted_once_and_resolved_when_the_gateway_answers_again(
    sim, engine, start_reconciler, lost_webhooks_tenant, kafka_topics
) -> None:
    tenant = await lost_webhooks_tenant(
        ("paystack",), faults={"paystack": {"api": {"server_error_ratio": 1.0}}}
    )
    paystack = tenant.account("paystack").id
    ref = sim.create_payment(paystack, amount_minor=50_000, currency="NGN").ref
    await register(engine, tenant.id, "paystack", ref, amount_minor=50_000, currency="NGN")
    await start_reconciler(
        scheduler_tenants=tenant.id,
        paystack_cadence_seconds=0.3,
        paystack_schedule="0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2",
        breaker_threshold=2,
        breaker_cooldown_seconds=1,
        max_attempts=1,
        retry_after_error_seconds=0.2,
    )
    query = select(sync_issues).where(
        sync_issues.c.tenant_id == tenant.id,
        sync_issues.c.kind == AlertKind.GATEWAY_ERROR.value,
        sync_issues.c.subject == "circuit:paystack",
    )

    async def opened() -> bool:
        return len(await fetch(engine, query)) == 1

    await wait_until(opened, 60, "the circuit's issue to open")
    sim.set_faults(paystack)  # the gateway answers again

    async def resolved() -> bool:
        return all(issue.resolved_at is not None for issue in await fetch(engine, query))

    await wait_until(resolved, 60, "the circuit's issue to be resolved")
    (issue,) = await fetch(engine, query)
    circuit_alerts = [a for a in await alerts_of(kafka_topics, tenant.id) if a.facts.get("circuit") == "open"]
    assert [a.alert_id for a in circuit_alerts] == [issue.alert_id]
    assert (
        circuit_alerts[0].kind is AlertKind.GATEWAY_ERROR
        and "Paystack failed 2 times" in circuit_alerts[0].detail
    )
