"""On-demand checks are taken in turns per tenant: one tenant's bulk checks, thousands of calls at its
gateway's limit, never hold back another tenant's checks of one payment or its callback confirmations;
a check waiting for its turn keeps its lease, and one whose replica died is taken over and answered.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from paysync_core import topics
from paysync_core.db.schema import payments, reconcile_requests
from paysync_dev.reconcile import ask, check_request, confirm_request, register
from paysync_dev.service_fixtures import fetch, publish, unique, wait_until

pytestmark = pytest.mark.integration

RATE = 3.0  # Stripe requests/s per tenant: a bulk check of OPEN_INTENTS is at least 10 s of retrievals
OPEN_INTENTS = 30


async def _tenant_with_open_intents(
    sim, engine, lost_webhooks_tenant, closed: list[str], count: int = OPEN_INTENTS
) -> tuple[str, str]:
    """A tenant whose `count` open PaymentIntents cost a retrieval each (no event names them): its id, its
    account."""
    tenant = await lost_webhooks_tenant(("stripe",))
    closed.append(tenant.id)
    account = tenant.account("stripe").id
    for _ in range(count):
        ref = sim.create_payment(account, kind="payment_intent", amount_minor=700, currency="usd").ref
        await register(engine, tenant.id, "stripe", ref, amount_minor=700)
    return tenant.id, account


async def _requests(engine, ids: list[str]) -> dict[str, tuple[str, str | None, int]]:
    """Each request's (status, handled_by, attempts)."""
    rows = await fetch(
        engine,
        select(
            reconcile_requests.c.request_id,
            reconcile_requests.c.status,
            reconcile_requests.c.handled_by,
            reconcile_requests.c.attempts,
        ).where(reconcile_requests.c.request_id.in_(ids)),
    )
    return {r.request_id: (r.status, r.handled_by, r.attempts) for r in rows}


async def test_another_tenants_check_and_callback_confirmation_finish_while_bulk_checks_run(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics, leave_no_open_payments
):
    busy, busy_account = await _tenant_with_open_intents(
        sim, engine, lost_webhooks_tenant, leave_no_open_payments
    )
    other = await lost_webhooks_tenant(("stripe", "mpesa"))
    session = sim.create_payment(
        other.account("stripe").id, kind="checkout_session", amount_minor=900, currency="usd"
    )
    job = unique("job")
    await register(engine, other.id, "stripe", session.ref, domain="jobs", entity_id=job, amount_minor=900)
    sim.pay(other.account("stripe").id, session.ref)
    push = sim.create_payment(other.account("mpesa").id, amount_minor=5_000).ref
    pushed = await register(
        engine,
        other.id,
        "mpesa",
        push,
        domain="referrals",
        entity_id=unique("r"),
        amount_minor=5_000,
        currency="KES",
    )
    sim.pay(other.account("mpesa").id, push)
    await start_reconciler(
        scheduler_enabled="false",
        stripe_rate=RATE,
        max_concurrent_requests=2,
    )

    # The busy tenant presses "Check payments" three times (three people, or a replayed topic).
    bulks = [check_request(busy, "bulk") for _ in range(3)]
    for bulk in bulks:
        await publish(kafka_topics, topics.RECONCILE_REQUESTS.name, busy.encode(), bulk.to_bytes())

    async def bulk_checking() -> bool:
        return sim.account_stats(busy_account).api.requests >= 3

    await wait_until(bulk_checking, 30, "the bulk checks to call Stripe")

    # The other tenant's "Check payment status" and an M-Pesa callback to confirm.
    confirm = confirm_request(other.id, push)
    await publish(kafka_topics, topics.RECONCILE_REQUESTS.name, other.id.encode(), confirm.to_bytes())
    entity = check_request(other.id, "entity", domain="jobs", entity_id=job)
    reply, _ = await ask(kafka_topics, entity, timeout=60)
    assert (reply.payments_checked, reply.payments_found_paid) == (1, 1)

    async def confirmed() -> bool:
        rows = await fetch(engine, select(payments.c.status).where(payments.c.id == pushed))
        return rows[0].status == "succeeded"

    await wait_until(confirmed, 60, "the confirmed M-Pesa payment to show succeeded")

    async def ended_at(request_id: str) -> datetime | None:
        rows = await fetch(
            engine,
            select(reconcile_requests.c.completed_at).where(reconcile_requests.c.request_id == request_id),
        )
        return rows[0].completed_at if rows else None

    async def confirmation_answered() -> bool:
        return await ended_at(confirm.request_id) is not None

    await wait_until(confirmation_answered, 60, "the confirmation to be answered")
    # Both finished while the busy tenant's bulk checks were still going: not one of them had ended by
    # then. The service's own times: the test sees the answers later, seconds later on a busy host,
    # while the first bulk check has only about 10 s of calls.
    finished = max(await ended_at(entity.request_id), await ended_at(confirm.request_id))
    bulk_ends = {b.request_id: await ended_at(b.request_id) for b in bulks}
    assert all(end is None or end > finished for end in bulk_ends.values()), (finished, bulk_ends)


async def test_a_bulk_check_waiting_its_turn_keeps_its_lease_and_one_whose_replica_died_is_taken_over(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics, leave_no_open_payments
):
    # 18 retrievals at 3/s: each bulk check takes about 6 s, twice the lease below.
    tenant, _ = await _tenant_with_open_intents(sim, engine, lost_webhooks_tenant, leave_no_open_payments, 18)
    first, second = await start_reconciler(
        count=2,
        scheduler_enabled="false",
        stripe_rate=RATE,
        request_lease_seconds=3,
        recovery_poll_seconds=0.3,
    )
    # Same key, same partition, same replica: the second waits for the first, longer than its lease.
    bulks = [check_request(tenant, "bulk") for _ in range(2)]
    for bulk in bulks:
        await publish(kafka_topics, topics.RECONCILE_REQUESTS.name, tenant.encode(), bulk.to_bytes())

    async def taken() -> bool:
        return len(await _requests(engine, [b.request_id for b in bulks])) == 2

    await wait_until(taken, 30, "both bulk checks to be taken on")
    _, holder, _ = (await _requests(engine, [bulks[0].request_id]))[bulks[0].request_id]
    replicas = {r.process.env["PAYSYNC_RECONCILER_INSTANCE_ID"]: r for r in (first, second)}

    async def first_answered() -> bool:
        return (await _requests(engine, [bulks[0].request_id]))[bulks[0].request_id][0] == "completed"

    await wait_until(first_answered, 120, "the first bulk check to be answered")
    # The second waited about 6 s, two of its leases: nobody took it over meanwhile.
    state, handled_by, attempts = (await _requests(engine, [bulks[1].request_id]))[bulks[1].request_id]
    assert (state, handled_by, attempts) == ("running", holder, 1)

    replicas[holder].process.kill()  # dies mid-bulk

    async def second_answered() -> bool:
        return (await _requests(engine, [bulks[1].request_id]))[bulks[1].request_id][0] == "completed"

    await wait_until(second_answered, 120, "the other replica to take the bulk check over and answer it")
    state, handled_by, attempts = (await _requests(engine, [bulks[1].request_id]))[bulks[1].request_id]
    assert handled_by != holder and attempts == 2
