"""Every webhook lost: the sweeps alone bring 300 payments and their domain rows to the truth."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from paysync_core.contracts import AlertKind
from paysync_core.db.schema import bookings, payments, reconcile_checks, referrals, sync_issues, workshop_jobs
from paysync_dev.reconcile import alerts_of, register
from paysync_dev.service_fixtures import fetch, wait_until

pytestmark = pytest.mark.integration


#: scenario -> (simulator payment kind, steps, the status paysync must end with)
STRIPE = {
    "paid": ("checkout_session", ("pay",), "succeeded"),
    "failed": ("payment_intent", ("fail",), "failed"),
    "abandoned": ("checkout_session", ("abandon",), "pending"),
    "expired": ("checkout_session", ("expire",), "expired"),
    "cancelled": ("payment_intent", ("cancel",), "canceled"),
    "refunded": ("checkout_session", ("pay", "refund"), "refunded"),
}
# Paystack reports an abandoned, timed-out or cancelled checkout as `abandoned`: payable still, so pending.
PAYSTACK = {
    "paid": ("transaction", ("pay",), "succeeded"),
    "failed": ("transaction", ("fail",), "failed"),
    "abandoned": ("transaction", ("abandon",), "pending"),
    "expired": ("transaction", ("expire",), "pending"),
    "cancelled": ("transaction", ("cancel",), "pending"),
    "refunded": ("transaction", ("pay", "refund"), "refunded"),
}
# Daraja ends every push with a ResultCode: 1037 (nobody answered), 1019 (expired), 1032 (cancelled).
MPESA = {
    "paid": ("stk_push", ("pay",), "succeeded"),
    "failed": ("stk_push", ("fail",), "failed"),
    "abandoned": ("stk_push", ("abandon",), "expired"),
    "expired": ("stk_push", ("expire",), "expired"),
    "cancelled": ("stk_push", ("cancel",), "canceled"),
}
DOMAINS = {"stripe": "jobs", "paystack": "bookings", "mpesa": "referrals"}
CURRENCIES = {"stripe": "USD", "paystack": "NGN", "mpesa": "KES"}


@dataclass(frozen=True)
class Case:
    provider: str
    scenario: str
    ref: str
    payment_id: uuid.UUID
    entity_id: str
    expected: str


def domain_value(provider: str, status: str) -> str:
    """What the payment's domain row must show for its status (domains.toml)."""
    if provider == "stripe":  # workshop_jobs.payment_status
        return {"succeeded": "paid"}.get(status, status)
    if provider == "paystack":  # bookings.payment_status
        return {"succeeded": "escrow"}.get(status, status)
    return "paid" if status == "succeeded" else "pending"  # referrals.status


async def test_three_hundred_payments_end_right_with_every_webhook_lost(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics
):
    tenant = await lost_webhooks_tenant(rate_limits={"stripe": 25, "paystack": 10, "mpesa": 20})
    cases: list[Case] = []
    for provider, table, count in (
        ("stripe", STRIPE, 100),
        ("paystack", PAYSTACK, 100),
        ("mpesa", MPESA, 100),
    ):
        account = tenant.account(provider)
        scenarios = list(table)
        for i in range(count):
            scenario = scenarios[i % len(scenarios)]
            kind, steps, expected = table[scenario]
            entity = f"{provider}-{i}"
            ref = sim.create_payment(
                account.id, kind=kind, amount_minor=2000, currency=CURRENCIES[provider]
            ).ref
            pid = await register(
                engine,
                tenant.id,
                provider,
                ref,
                domain=DOMAINS[provider],
                entity_id=entity,
                amount_minor=2000,
                currency=CURRENCIES[provider],
            )
            for step in steps:
                sim.act(account.id, ref, step)
            cases.append(Case(provider, scenario, ref, pid, entity, expected))
    for account in tenant.accounts.values():
        hooks = sim.wait_for_deliveries(account.id).webhooks
        assert hooks.delivered == 0  # no webhook reaches anyone: only the sweeps can tell

    (reconciler,) = await start_reconciler(
        scheduler_tenants=tenant.id,
        stripe_cadence_seconds=1,
        paystack_cadence_seconds=1,
        mpesa_cadence_seconds=1,
        stripe_schedule="1,1,1",
        paystack_schedule="1,1,1",
        mpesa_schedule="1,1,1",
        paystack_rate=10,
        mpesa_rate=20,
        unrecorded_grace_seconds=3600,
    )
    by_id = {c.payment_id: c for c in cases}

    async def all_right() -> bool:
        rows = await fetch(
            engine, select(payments.c.id, payments.c.status).where(payments.c.tenant_id == tenant.id)
        )
        return len(rows) == len(cases) and all(by_id[r.id].expected == r.status for r in rows)

    async def schedules_finished() -> bool:
        open_ = await fetch(
            engine,
            select(reconcile_checks.c.payment_id).where(
                reconcile_checks.c.tenant_id == tenant.id,
                reconcile_checks.c.done_at.is_(None),
                reconcile_checks.c.gave_up_at.is_(None),
            ),
        )
        return not open_

    await wait_until(all_right, 90, "every payment to show its gateway's truth")
    await wait_until(schedules_finished, 60, "every check schedule to end")

    rows = {
        r.id: r.status
        for r in await fetch(
            engine, select(payments.c.id, payments.c.status).where(payments.c.tenant_id == tenant.id)
        )
    }
    wrong = [(c.provider, c.scenario, rows[c.payment_id]) for c in cases if rows[c.payment_id] != c.expected]
    assert not wrong

    jobs = {
        r.job_id: r.payment_status
        for r in await fetch(engine, select(workshop_jobs).where(workshop_jobs.c.tenant_id == tenant.id))
    }
    booked = {
        r.booking_id: r.payment_status
        for r in await fetch(engine, select(bookings).where(bookings.c.tenant_id == tenant.id))
    }
    referred = {
        r.referral_id: r.status
        for r in await fetch(engine, select(referrals).where(referrals.c.tenant_id == tenant.id))
    }
    shown = {"stripe": jobs, "paystack": booked, "mpesa": referred}
    rows_wrong = [
        (c.provider, c.scenario, shown[c.provider].get(c.entity_id))
        for c in cases
        if shown[c.provider].get(c.entity_id) != domain_value(c.provider, c.expected)
    ]
    assert not rows_wrong

    # Payments still open at the gateway after their last check are stale: one alert each, none failed.
    still_open = {c.payment_id for c in cases if c.expected == "pending"}
    stale = await fetch(
        engine,
        select(sync_issues.c.payment_id).where(
            sync_issues.c.tenant_id == tenant.id, sync_issues.c.kind == AlertKind.STUCK_PAYMENT.value
        ),
    )
    assert Counter(r.payment_id for r in stale) == Counter(still_open)
    alerts = [
        a
        for a in await alerts_of(projector.process.env["PAYSYNC_KAFKA_BOOTSTRAP"], tenant.id)
        if a.kind is AlertKind.STUCK_PAYMENT
    ]
    assert sorted(a.payment_id for a in alerts) == sorted(str(p) for p in still_open)

    # Never over the gateways' limits.
    for account in tenant.accounts.values():
        assert sim.account_stats(account.id).api.over_limit == 0
    assert reconciler.metric("paysync_reconciler_gateway_calls_total") > 0
