"""Refunds and disputes: the webhooks each gateway sends for them, as paysync's adapters read them."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from paysync_core.domain.status import UnifiedStatus
from paysync_core.providers import adapter_for
from paysync_core.testing.builders.requests import parse_context
from paysync_gateway_sim import SimulatorClient, SimulatorError
from paysync_gateway_sim.testing import WebhookReceiver


def _read(
    provider: str, receiver: WebhookReceiver, path: str, count: int, ref: str | None = None
) -> list[tuple[str, object]]:
    """(event type, unified status) of the webhooks that arrived, through paysync's parser.

    Webhooks of one payment arrive in order; those of different payments may interleave, so
    `ref` keeps only the payment's own (unmapped events have no reference and are kept).
    """
    found = []
    for webhook in receiver.wait_for(path, count):
        parsed = adapter_for(provider).parse(webhook.body, parse_context())
        observation = parsed.observations[0] if parsed.observations else None
        if ref is None or observation is None or observation.provider_ref == ref:
            found.append((parsed.event_type, observation.status if observation else None))
    return found


def test_stripe_partial_then_full_refund_and_a_lost_dispute(
    gateway_sim: SimulatorClient,
    make_id: Callable[[str], str],
    webhook_receiver: WebhookReceiver,
    http: httpx.Client,
) -> None:
    account = gateway_sim.create_account(
        "stripe", id=make_id("stripe"), webhook_url=webhook_receiver.url("/s")
    )
    session = gateway_sim.create_payment(account.id, amount_minor=5000).ref
    gateway_sim.pay(account.id, session)
    assert gateway_sim.refund(account.id, session, amount_minor=2000).webhooks == [
        "charge.refunded",
        "refund.created",
    ]
    gateway_sim.refund(account.id, session)  # the remaining 3000
    with pytest.raises(SimulatorError) as refused:  # nothing left to refund
        gateway_sim.refund(account.id, session, amount_minor=1)
    assert refused.value.status == 409
    gateway_sim.dispute(account.id, session, "open")
    gateway_sim.dispute(account.id, session, "lost")

    events = _read("stripe", webhook_receiver, "/s", 10)
    mapped = [(t, s) for t, s in events if s is not None]
    assert mapped == [
        ("payment_intent.succeeded", UnifiedStatus.SUCCEEDED),
        ("checkout.session.completed", UnifiedStatus.SUCCEEDED),
        ("charge.refunded", UnifiedStatus.PARTIALLY_REFUNDED),
        ("charge.refunded", UnifiedStatus.REFUNDED),
        ("charge.dispute.created", UnifiedStatus.DISPUTED),
        ("charge.dispute.closed", UnifiedStatus.DISPUTED),
    ]
    intent = gateway_sim.payment(account.id, session).object["payment_intent"]
    charge = http.get(
        f"{gateway_sim.stripe_base}/v1/payment_intents/{intent}",
        params={"expand[]": "latest_charge"},
        headers={"Authorization": f"Bearer {account.secret_key}"},
    ).json()["latest_charge"]
    assert (charge["amount_refunded"], charge["refunded"], charge["disputed"]) == (5000, True, True)


def test_stripe_won_dispute_and_the_merchant_expiring_a_session(
    gateway_sim: SimulatorClient,
    make_id: Callable[[str], str],
    webhook_receiver: WebhookReceiver,
    http: httpx.Client,
) -> None:
    account = gateway_sim.create_account(
        "stripe", id=make_id("stripe"), webhook_url=webhook_receiver.url("/w")
    )
    paid, open_session = (gateway_sim.create_payment(account.id).ref for _ in range(2))
    gateway_sim.pay(account.id, paid)
    assert gateway_sim.dispute(account.id, paid, "won").webhooks == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    ]
    expired = http.post(
        f"{gateway_sim.stripe_base}/v1/checkout/sessions/{open_session}/expire",
        headers={"Authorization": f"Bearer {account.secret_key}"},
    )
    assert expired.status_code == 200 and expired.json()["status"] == "expired"

    events = _read("stripe", webhook_receiver, "/w", 8)
    assert ("checkout.session.expired", UnifiedStatus.EXPIRED) in events
    dispute = [s for t, s in events if t.startswith("charge.dispute.") and s is not None]
    assert dispute == [UnifiedStatus.DISPUTED, UnifiedStatus.SUCCEEDED]  # opened, then won


def test_paystack_refunds_and_a_lost_dispute_reverse_the_transaction(
    gateway_sim: SimulatorClient,
    make_id: Callable[[str], str],
    webhook_receiver: WebhookReceiver,
    http: httpx.Client,
) -> None:
    account = gateway_sim.create_account(
        "paystack", id=make_id("paystack"), webhook_url=webhook_receiver.url("/p")
    )
    refunded, disputed = (gateway_sim.create_payment(account.id, amount_minor=10_000).ref for _ in range(2))
    for ref in (refunded, disputed):
        gateway_sim.pay(account.id, ref)
    gateway_sim.refund(account.id, refunded, amount_minor=4000)
    partial = gateway_sim.payment(account.id, refunded).status
    gateway_sim.refund(account.id, refunded)
    gateway_sim.dispute(account.id, disputed, "open")
    gateway_sim.dispute(account.id, disputed, "lost")

    assert _read("paystack", webhook_receiver, "/p", 8, ref=refunded) == [
        ("charge.success", UnifiedStatus.SUCCEEDED),
        ("refund.pending", None),
        ("refund.processed", UnifiedStatus.PARTIALLY_REFUNDED),  # the event carries this refund only
        ("refund.pending", None),
        ("refund.processed", UnifiedStatus.PARTIALLY_REFUNDED),
    ]
    assert _read("paystack", webhook_receiver, "/p", 8, ref=disputed) == [
        ("charge.success", UnifiedStatus.SUCCEEDED),
        ("charge.dispute.create", UnifiedStatus.DISPUTED),
        ("charge.dispute.resolve", UnifiedStatus.DISPUTED),
    ]
    auth = {"Authorization": f"Bearer {account.secret_key}"}

    def verify(ref: str) -> httpx.Response:
        return http.get(f"{gateway_sim.paystack_base}/transaction/verify/{ref}", headers=auth)

    assert (partial, verify(refunded).json()["data"]["status"]) == ("success", "reversed")
    assert verify(disputed).json()["data"]["status"] == "reversed"


def test_mpesa_failures_carry_the_result_code_asked_for(
    gateway_sim: SimulatorClient, webhook_receiver: WebhookReceiver, daraja
) -> None:
    outcomes = {}
    for code in (1, 17, 1025, 2001):
        ref = gateway_sim.create_payment(
            daraja.account.id, amount_minor=100, callback_url=webhook_receiver.url(f"/m{code}")
        ).ref
        gateway_sim.fail(daraja.account.id, ref, result_code=code)
        (webhook,) = webhook_receiver.wait_for(f"/m{code}", 1)
        (observation,) = adapter_for("mpesa").parse(webhook.body, parse_context(verified=False)).observations
        outcomes[code] = observation.status
    assert set(outcomes.values()) == {UnifiedStatus.FAILED}
    for step, status in (("expire", UnifiedStatus.EXPIRED), ("abandon", UnifiedStatus.EXPIRED)):
        ref = gateway_sim.create_payment(
            daraja.account.id, amount_minor=100, callback_url=webhook_receiver.url(f"/{step}")
        ).ref
        gateway_sim.act(daraja.account.id, ref, step)
        (webhook,) = webhook_receiver.wait_for(f"/{step}", 1)
        assert adapter_for("mpesa").parse(webhook.body, parse_context()).observations[0].status == status
    with pytest.raises(SimulatorError) as refused:  # an STK Push has no refund
        gateway_sim.refund(daraja.account.id, ref)
    assert refused.value.status == 409
