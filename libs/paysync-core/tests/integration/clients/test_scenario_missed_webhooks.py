"""Three payments per gateway, two paid and one failed, half their webhooks lost on the way.

Whatever the webhooks did, the query clients must show every payment's final status.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from paysync_core.domain.status import UnifiedStatus as S
from paysync_gateway_sim.contracts import Account

pytestmark = pytest.mark.integration

HALF_LOST = {"drop_ratio": 0.5}
PHONES = ("0708374149", "0711000001", "0722000002")


def lossy(sim, provider: str, receiver, path: str) -> Account:
    """An account whose webhooks go to `path` on the receiver, half of them dropped."""
    account = sim.client.create_account(
        provider, id=f"{provider}-{uuid.uuid4().hex[:10]}", rate_limit=0, webhook_url=receiver.url(path)
    )
    sim.client.set_faults(account.id, webhooks=HALF_LOST)
    return account


async def test_every_final_status_is_observable_when_half_the_webhooks_are_lost(
    clients, sim, webhook_receiver
):
    since = datetime.now(UTC) - timedelta(minutes=1)
    stripe_account = lossy(sim, "stripe", webhook_receiver, "/stripe")
    paystack_account = lossy(sim, "paystack", webhook_receiver, "/paystack")
    mpesa_account = lossy(sim, "mpesa", webhook_receiver, "/mpesa")
    stripe, paystack, daraja = (
        clients.stripe(stripe_account),
        clients.paystack(paystack_account),
        clients.daraja(mpesa_account),
    )

    # The front end starts nine payments through paysync's initiation clients.
    sessions = [
        (
            await stripe.create_checkout_session(
                amount_minor=1000 * (i + 1),
                currency="usd",
                product_name=f"Item {i}",
                success_url="https://shop.test/ok",
                cancel_url="https://shop.test/no",
                domain="bookings",
                entity_id=f"b-{i}",
            )
        ).provider_ref
        for i in range(3)
    ]
    references = [
        (
            await paystack.initialize_transaction(
                email="ada@example.com",
                amount_minor=50_000 * (i + 1),
                reference=f"sc-{uuid.uuid4().hex[:12]}",
                callback_url="https://shop.test/ps",
                domain="invoices",
                entity_id=f"inv-{i}",
            )
        ).provider_ref
        for i in range(3)
    ]
    pushes = [
        (
            await daraja.stk_push(
                amount_minor=100_00 * (i + 1),
                phone=PHONES[i],
                account_reference=f"REF{i}",
                description="Referral",
                callback_base_url=webhook_receiver.url("/mpesa-hooks"),
            )
        ).provider_ref
        for i in range(3)
    ]

    # Customers: the first two of each pay, the third is declined.
    accounts = (stripe_account, paystack_account, mpesa_account)
    for account, refs in zip(accounts, (sessions, references, pushes), strict=True):
        sim.client.pay(account.id, refs[0])
        sim.client.pay(account.id, refs[1])
        sim.client.fail(account.id, refs[2])
    counters = [sim.client.wait_for_deliveries(a.id) for a in accounts]
    assert sum(c.webhooks.dropped for c in counters) >= 1  # webhooks alone would leave gaps

    # Reconciliation asks the gateways.
    stripe_seen = [await stripe.observe(ref) for ref in sessions]
    paystack_seen = [await paystack.observe(ref) for ref in references]
    mpesa_seen = [await daraja.observe(ref) for ref in pushes]

    assert [o.status for o in stripe_seen[:2]] == [S.SUCCEEDED, S.SUCCEEDED]
    assert [o.amount_minor for o in stripe_seen[:2]] == [1000, 2000]
    # A declined card leaves the Checkout Session open; its PaymentIntent (an alias) shows the failure.
    assert stripe_seen[2].status is S.PENDING and stripe_seen[2].aliases
    declined = await stripe.observe(stripe_seen[2].aliases[0])
    assert declined.status is S.FAILED
    assert [o.status for o in paystack_seen] == [S.SUCCEEDED, S.SUCCEEDED, S.FAILED]
    assert [o.status for o in mpesa_seen] == [S.SUCCEEDED, S.SUCCEEDED, S.FAILED]
    assert all(o.verified for o in (*stripe_seen, declined, *paystack_seen, *mpesa_seen))

    # The Events API tells the same story for Stripe, dropped webhooks included.
    listed = {o.provider_ref: o.status async for o in stripe.observe_events(created_gte=since)}
    assert listed[sessions[0]] is S.SUCCEEDED and listed[sessions[1]] is S.SUCCEEDED
    assert listed[declined.provider_ref] is S.FAILED
