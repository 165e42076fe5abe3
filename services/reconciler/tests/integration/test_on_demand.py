""" "Check payment status" and "Check payments": answered in time, with counts, rows already paid."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from paysync_core import topics
from paysync_core.contracts import ReconcileReply
from paysync_core.db.schema import (
    bookings,
    payments,
    reconcile_checks,
    reconcile_requests,
    reconcile_ticks,
    sync_issues,
    workshop_jobs,
)
from paysync_dev.reconcile import ask, confirm_request, paid_referral, register
from paysync_dev.reconcile import check_request as request
from paysync_dev.service_fixtures import fetch, publish, unique, wait_until
from paysync_dev.topic_reader import read_topic

pytestmark = pytest.mark.integration

ENTITY_TIMEOUT = 10.0  # api-gateway's refresh_timeout_seconds
BULK_TIMEOUT = 25.0  # api-gateway's bulk_refresh_timeout_seconds
#: For an answer whose time is not what the test is about: generous, for a busy host.
PATIENCE = 60.0


async def replies_to(bootstrap: str, request_id: str) -> list[ReconcileReply]:
    """Every reply on the replies topic to one request."""
    records = await read_topic(bootstrap, topics.RECONCILE_REPLIES.name)
    replies = [ReconcileReply.from_bytes(r.value) for r in records if request_id.encode() in (r.value or b"")]
    return [r for r in replies if r.request_id == request_id]


async def test_refresh_one_entity_and_in_bulk_answers_in_time_with_rows_already_paid(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics
):
    bootstrap = kafka_topics
    tenant = await lost_webhooks_tenant()
    stripe, paystack, mpesa = (tenant.account(p).id for p in ("stripe", "paystack", "mpesa"))

    # A job with two Checkout Sessions; elsewhere bookings paid through Paystack, referrals through M-Pesa.
    job = unique("job")
    first = sim.create_payment(stripe, kind="checkout_session", amount_minor=12500, currency="usd").ref
    second = sim.create_payment(stripe, kind="checkout_session", amount_minor=12500, currency="usd").ref
    for ref in (first, second):
        await register(engine, tenant.id, "stripe", ref, domain="jobs", entity_id=job, amount_minor=12500)
    booking_refs, referral_refs = [], []
    for i in range(3):
        ref = sim.create_payment(paystack, amount_minor=50_000, currency="NGN").ref
        await register(
            engine,
            tenant.id,
            "paystack",
            ref,
            domain="bookings",
            entity_id=f"b-{i}-{job}",
            amount_minor=50_000,
            currency="NGN",
        )
        booking_refs.append(ref)
    for i in range(2):
        ref = sim.create_payment(mpesa, amount_minor=10_000, phone=f"25470000{i:04d}").ref
        await register(
            engine,
            tenant.id,
            "mpesa",
            ref,
            domain="referrals",
            entity_id=f"r-{i}-{job}",
            amount_minor=10_000,
            currency="KES",
        )
        referral_refs.append(ref)
    # Twenty open PaymentIntents keep a slow sweep busy while people press the buttons.
    for _ in range(20):
        ref = sim.create_payment(stripe, kind="payment_intent", amount_minor=900, currency="usd").ref
        await register(
            engine, tenant.id, "stripe", ref, domain="jobs", entity_id=unique("busy"), amount_minor=900
        )

    (reconciler,) = await start_reconciler(
        scheduler_tenants=tenant.id,
        stripe_cadence_seconds=3600,
        paystack_cadence_seconds=3600,
        mpesa_cadence_seconds=3600,
        stripe_rate=4,
        stripe_schedule="0,3600",
        paystack_schedule="3600",
        mpesa_schedule="3600",
        list_overlap_seconds=0,
    )

    async def sweeping() -> bool:
        return (
            reconciler.metric("paysync_reconciler_gateway_calls_total", provider="stripe", priority="sweep")
            >= 4
        )

    await wait_until(sweeping, 20, "the Stripe sweep to be under way")
    # Now customers pay (after the sweeps read the lists); every webhook is lost.
    sim.pay(stripe, second)
    for ref, outcome in zip(booking_refs, ("pay", "pay", "abandon"), strict=True):
        sim.act(paystack, ref, outcome)
    for ref, outcome in zip(referral_refs, ("pay", "fail"), strict=True):
        sim.act(mpesa, ref, outcome)

    # "Check payment status" on the job: both sessions asked about, one found paid, the job paid on arrival.
    entity = request(tenant.id, "entity", domain="jobs", entity_id=job)
    reply, took = await ask(bootstrap, entity, timeout=ENTITY_TIMEOUT)
    rows = await fetch(
        engine,
        select(workshop_jobs).where(workshop_jobs.c.tenant_id == tenant.id, workshop_jobs.c.job_id == job),
    )
    assert took < ENTITY_TIMEOUT
    assert (reply.payments_checked, reply.payments_updated, reply.payments_found_paid) == (2, 1, 1)
    assert reply.entities_checked == 1 and reply.gateway_errors == 0
    by_ref = {p.provider_ref: p for p in reply.payments}
    assert (by_ref[second].status_before, by_ref[second].status_after, by_ref[second].changed) == (
        "pending",
        "succeeded",
        True,
    )
    assert (by_ref[first].status_after, by_ref[first].changed) == ("pending", False)
    assert rows[0].payment_status == "paid" and rows[0].payment_note == f"Paid via Stripe - Session: {second}"
    # The sweep was still going when the check was answered: on-demand checks went first. Its tick's
    # end against the reply's time, both the service's own: the test reads the reply seconds later on
    # a busy host, by when the sweep (about 5 s of calls at 4/s) may well have ended.
    sweeps = await fetch(
        engine,
        select(reconcile_ticks.c.completed_at).where(
            reconcile_ticks.c.tenant_id == tenant.id,
            reconcile_ticks.c.provider == "stripe",
            reconcile_ticks.c.status != "skipped",
        ),
    )
    assert sweeps and all(t.completed_at is None or t.completed_at > reply.completed_at for t in sweeps)

    # The follow-up record holds the same reply, for a 202's `GET /v1/reconcile-requests/{id}`.
    stored = await fetch(
        engine, select(reconcile_requests).where(reconcile_requests.c.request_id == entity.request_id)
    )
    assert stored[0].status == "completed" and ReconcileReply.model_validate(stored[0].reply) == reply

    # "Check payments": every unsettled payment of the tenant, counted.
    bulk = request(tenant.id, "bulk")
    reply, took = await ask(bootstrap, bulk, timeout=BULK_TIMEOUT)
    assert took < BULK_TIMEOUT
    open_before = 1 + 3 + 2 + 20  # the job's unpaid session, bookings, referrals, the busy intents
    assert reply.payments_checked <= open_before
    assert reply.payments_found_paid == 3  # two bookings and one referral
    assert reply.gateway_errors == 0
    paid_bookings = await fetch(
        engine,
        select(bookings.c.booking_id).where(
            bookings.c.tenant_id == tenant.id, bookings.c.payment_status == "escrow"
        ),
    )
    assert len(paid_bookings) == 2
    statuses = {
        r.provider_ref: r.status
        for r in await fetch(
            engine,
            select(payments.c.provider_ref, payments.c.status).where(payments.c.tenant_id == tenant.id),
        )
    }
    assert [statuses[r] for r in booking_refs] == ["succeeded", "succeeded", "pending"]
    assert [statuses[r] for r in referral_refs] == ["succeeded", "failed"]
    assert reply.entities_checked >= 5

    # Asking again with the same id replays the stored reply instead of asking the gateways again.
    first = ReconcileReply.model_validate(stored[0].reply)
    await publish(bootstrap, topics.RECONCILE_REQUESTS.name, tenant.id.encode(), entity.to_bytes())

    async def replayed() -> bool:
        return len(await replies_to(bootstrap, entity.request_id)) == 2

    await wait_until(replayed, PATIENCE, "the stored reply to be sent again")
    assert await replies_to(bootstrap, entity.request_id) == [first, first]  # same reply, same completed_at
    for account in tenant.accounts.values():
        assert sim.account_stats(account.id).api.over_limit == 0


async def test_a_callback_to_confirm_is_confirmed_with_the_gateway(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics
):
    bootstrap = kafka_topics
    tenant = await lost_webhooks_tenant(("mpesa",))
    ref, pid = await paid_referral(engine, sim, tenant)
    await start_reconciler(scheduler_enabled="false", mpesa_schedule="3600")

    # The normalizer asks for a confirmation of an unsigned callback: no reply topic, nobody waits.
    confirm = confirm_request(tenant.id, ref)
    await publish(bootstrap, topics.RECONCILE_REQUESTS.name, tenant.id.encode(), confirm.to_bytes())

    async def confirmed() -> bool:
        rows = await fetch(engine, select(payments.c.status).where(payments.c.id == pid))
        return rows[0].status == "succeeded"

    await wait_until(confirmed, 60, "the confirmed payment to show succeeded")

    async def schedule_ended() -> bool:
        # Ended by the reconciler after it published the answer: the projector may show it paid first.
        check = await fetch(engine, select(reconcile_checks).where(reconcile_checks.c.payment_id == pid))
        return bool(check) and check[0].done_at is not None

    # Confirmed: no scheduled query needed any more.
    await wait_until(schedule_ended, 60, "the confirmed payment's check schedule to end")


async def test_a_refresh_that_includes_a_payment_whose_check_raises_answers_for_the_others(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics
):
    bootstrap = kafka_topics
    tenant = await lost_webhooks_tenant(("stripe",))
    account = tenant.account("stripe").id
    job = unique("job")
    session = sim.create_payment(account, kind="checkout_session", amount_minor=2000, currency="usd").ref
    elsewhere = sim.create_payment(account, kind="checkout_session", amount_minor=2000, currency="usd").ref
    await register(engine, tenant.id, "stripe", session, domain="jobs", entity_id=job)
    await register(engine, tenant.id, "stripe", elsewhere, domain="jobs", entity_id=unique("job"))
    # Not a Stripe id at all: a row registered before references were checked (or written by hand).
    bad = await register(engine, tenant.id, "stripe", "ORDER-1", domain="jobs", entity_id=job)
    sim.pay(account, session)
    sim.pay(account, elsewhere)
    await start_reconciler(scheduler_enabled="false")

    # "Check payment status" on the job: answered, its session found paid, the malformed one an error.
    reply, _ = await ask(
        bootstrap, request(tenant.id, "entity", domain="jobs", entity_id=job), timeout=PATIENCE
    )
    assert (reply.payments_checked, reply.payments_found_paid, reply.gateway_errors) == (2, 1, 1)
    by_ref = {p.provider_ref: p for p in reply.payments}
    assert (by_ref[session].status_after, by_ref[session].error) == ("succeeded", None)
    assert by_ref["ORDER-1"].status_after == "pending" and by_ref["ORDER-1"].error

    # "Check payments": the other unsettled payment found paid too, the malformed one counted as an error.
    reply, _ = await ask(bootstrap, request(tenant.id, "bulk"), timeout=PATIENCE)
    assert (reply.payments_checked, reply.payments_found_paid, reply.gateway_errors) == (2, 1, 1)
    rows = await fetch(
        engine, select(payments.c.provider_ref, payments.c.status).where(payments.c.tenant_id == tenant.id)
    )
    assert {r.provider_ref: r.status for r in rows} == {
        session: "succeeded",
        elsewhere: "succeeded",
        "ORDER-1": "pending",
    }
    # The malformed payment is one open sync issue, however many times it was asked about.
    issues = await fetch(
        engine,
        select(sync_issues.c.payment_id, sync_issues.c.kind).where(
            sync_issues.c.tenant_id == tenant.id, sync_issues.c.resolved_at.is_(None)
        ),
    )
    assert [(i.payment_id, i.kind) for i in issues] == [(bad, "check_failed")]
