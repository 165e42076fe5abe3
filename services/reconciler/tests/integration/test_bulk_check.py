""" "Check payments" (a bulk check) reads Stripe's Events and Paystack's transaction list for the window
of the tenant's unsettled payments, and asks one by one only about what the lists cannot settle.

Every webhook is lost at the simulator, which counts the requests of each account per operation.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from paysync_core.db.schema import payments, reconcile_checks
from paysync_dev.reconcile import ask, check_request, register
from paysync_dev.service_fixtures import fetch
from paysync_reconciler import repository as repo

pytestmark = pytest.mark.integration

EVENTS = "GET /v1/events"
SESSION = "GET /v1/checkout/sessions/{session_id}"
INTENT = "GET /v1/payment_intents/{intent_id}"
TRANSACTIONS = "GET /transaction"
VERIFY = "GET /transaction/verify/{reference}"

BULK_TIMEOUT = 60.0


async def _stripe_sessions(
    sim, engine, tenant: str, account: str, outcomes: dict[str, int]
) -> dict[str, list[str]]:
    """Registered Checkout Sessions, `outcomes[action]` of each (`open`: left as they are): refs by action."""
    made: dict[str, list[str]] = {}
    for action, count in outcomes.items():
        for _ in range(count):
            ref = sim.create_payment(account, kind="checkout_session", amount_minor=2000, currency="usd").ref
            await register(engine, tenant, "stripe", ref, domain="jobs", entity_id=ref)
            if action != "open":
                sim.act(account, ref, action)
            made.setdefault(action, []).append(ref)
    return made


async def _statuses(engine, tenant: str) -> dict[str, str]:
    rows = await fetch(
        engine, select(payments.c.provider_ref, payments.c.status).where(payments.c.tenant_id == tenant)
    )
    return {r.provider_ref: r.status for r in rows}


async def test_a_bulk_check_settles_stripe_payments_from_the_events_list_and_retrieves_only_the_rest(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics
):
    tenant = await lost_webhooks_tenant(("stripe",))
    account = tenant.account("stripe").id
    made = await _stripe_sessions(sim, engine, tenant.id, account, {"pay": 24, "expire": 6, "open": 4})
    processing = []  # a PaymentIntent in progress: the list names it, without an ending
    for _ in range(3):
        ref = sim.create_payment(account, kind="payment_intent", amount_minor=2000, currency="usd").ref
        await register(engine, tenant.id, "stripe", ref, domain="jobs", entity_id=ref)
        sim.act(account, ref, "process")
        processing.append(ref)
    await start_reconciler(scheduler_enabled="false")

    reply, _ = await ask(kafka_topics, check_request(tenant.id, "bulk"), timeout=BULK_TIMEOUT)

    assert (reply.payments_checked, reply.payments_updated, reply.payments_found_paid) == (37, 33, 24)
    assert reply.gateway_errors == 0
    calls = sim.account_stats(account).api.by_operation
    # One page of Events answered for the 30 sessions that ended; only the others were retrieved.
    assert calls == {EVENTS: 1, SESSION: 4, INTENT: 3}, calls
    statuses = await _statuses(engine, tenant.id)
    assert {statuses[r] for r in made["pay"]} == {"succeeded"}
    assert {statuses[r] for r in made["expire"]} == {"expired"}
    assert {statuses[r] for r in made["open"]} == {"pending"}
    assert {statuses[r] for r in processing} == {"processing"}


async def test_a_bulk_check_settles_paystack_payments_from_the_transaction_list_and_verifies_the_rest(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics
):
    tenant = await lost_webhooks_tenant(("paystack",))
    account = tenant.account("paystack").id
    made: dict[str, list[str]] = {}
    for action, count in {"pay": 5, "fail": 2, "abandon": 2, "open": 3}.items():
        for _ in range(count):
            ref = sim.create_payment(account, amount_minor=50_000, currency="NGN").ref
            await register(
                engine,
                tenant.id,
                "paystack",
                ref,
                domain="bookings",
                entity_id=ref,
                amount_minor=50_000,
                currency="NGN",
            )
            if action != "open":
                sim.act(account, ref, action)
            made.setdefault(action, []).append(ref)
    await start_reconciler(scheduler_enabled="false")

    reply, _ = await ask(kafka_topics, check_request(tenant.id, "bulk"), timeout=BULK_TIMEOUT)

    assert (reply.payments_checked, reply.payments_updated, reply.payments_found_paid) == (12, 7, 5)
    assert reply.gateway_errors == 0
    calls = sim.account_stats(account).api.by_operation
    # The list shows every transaction as it is now: the abandoned and open ones are verified one by one.
    assert calls == {TRANSACTIONS: 1, VERIFY: 5}, calls
    statuses = await _statuses(engine, tenant.id)
    assert {statuses[r] for r in made["pay"]} == {"succeeded"}
    assert {statuses[r] for r in made["fail"]} == {"failed"}
    assert {statuses[r] for r in made["abandon"] + made["open"]} == {"pending"}


async def test_a_list_answering_429_and_500_is_retried_and_one_that_keeps_failing_leaves_honest_counts(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics
):
    await start_reconciler(scheduler_enabled="false", max_attempts=4)

    # A 500 then a 429 from the Events list: retried within the budget, nothing lost.
    flaky = await lost_webhooks_tenant(("stripe",))
    account = flaky.account("stripe").id
    made = await _stripe_sessions(sim, engine, flaky.id, account, {"pay": 10, "open": 2})
    sim.burst(account, "server_error", 1)
    sim.burst(account, "rate_limit", 1)
    reply, _ = await ask(kafka_topics, check_request(flaky.id, "bulk"), timeout=BULK_TIMEOUT)
    assert (reply.payments_checked, reply.payments_found_paid, reply.gateway_errors) == (12, 10, 0)
    assert sim.account_stats(account).api.by_operation == {EVENTS: 3, SESSION: 2}
    assert {(await _statuses(engine, flaky.id))[r] for r in made["pay"]} == {"succeeded"}

    # The list fails for good (every attempt a 500): each payment is retrieved instead, none is lost.
    unlisted = await lost_webhooks_tenant(("stripe",))
    account = unlisted.account("stripe").id
    made = await _stripe_sessions(sim, engine, unlisted.id, account, {"pay": 5, "open": 1})
    sim.burst(account, "server_error", 4)
    reply, _ = await ask(kafka_topics, check_request(unlisted.id, "bulk"), timeout=BULK_TIMEOUT)
    assert (reply.payments_checked, reply.payments_found_paid, reply.gateway_errors) == (6, 5, 0)
    assert sim.account_stats(account).api.by_operation == {EVENTS: 4, SESSION: 6}

    # The gateway fails everything: every payment is counted as an error, none as checked fine or changed.
    down = await lost_webhooks_tenant(("stripe",))
    account = down.account("stripe").id
    made = await _stripe_sessions(sim, engine, down.id, account, {"pay": 4, "open": 2})
    sim.burst(account, "server_error", 10_000)
    reply, _ = await ask(kafka_topics, check_request(down.id, "bulk"), timeout=BULK_TIMEOUT)
    assert (reply.payments_checked, reply.payments_updated, reply.payments_found_paid) == (6, 0, 0)
    assert reply.gateway_errors == 6
    assert set((await _statuses(engine, down.id)).values()) == {"pending"}


async def test_the_schedules_of_thousands_of_payments_a_check_settled_are_ended_at_once(
    engine, lost_webhooks_tenant, leave_no_open_payments
):
    # A bulk check settles up to `bulk_limit` (10,000) payments at once. Before, their schedules were
    # ended by one statement of 8 parameters a payment: past 4,095 payments PostgreSQL refused it (at most
    # 32,767 parameters a statement) and the whole check failed, attempt after attempt.
    tenant = await lost_webhooks_tenant(("stripe",))
    leave_no_open_payments.append(tenant.id)
    ids = [uuid.uuid4() for _ in range(5_000)]
    rows = [
        {
            "id": pid,
            "tenant_id": tenant.id,
            "provider": "stripe",
            "provider_ref": f"cs_{pid.hex}",
            "status": "succeeded",
        }
        for pid in ids
    ]
    async with engine.begin() as conn:
        await conn.execute(payments.insert(), rows)
    async with engine.begin() as conn:
        await repo.resolve_schedules(conn, dict.fromkeys(ids, "succeeded"), datetime.now(UTC))

    [(ended,)] = await fetch(
        engine,
        select(func.count())
        .select_from(reconcile_checks)
        .where(reconcile_checks.c.tenant_id == tenant.id, reconcile_checks.c.done_at.is_not(None)),
    )
    assert ended == 5_000
