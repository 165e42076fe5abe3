"""What happens to a Stripe charge after it was paid: refunds and disputes, and the Events they leave."""

from __future__ import annotations

from paysync_core.contracts.common import Provider
from paysync_core.testing.builders import stripe as build
from paysync_gateway_sim.errors import conflict, not_found
from paysync_gateway_sim.gateways.stripe_render import render_charge, render_dispute
from paysync_gateway_sim.state import Account, JsonDict, Outgoing, StripeBook, StripeCharge, StripeDispute


def paid_charge(book: StripeBook, ref: str) -> StripeCharge:
    """The charge that paid the session, invoice or PaymentIntent `ref`; 409 if nothing was paid."""
    if ref in book.sessions:
        intent_id = book.sessions[ref].payment_intent
    elif ref in book.invoices:
        intent_id = book.invoices[ref].payment_intent
    elif ref in book.intents:
        intent_id = ref
    else:
        raise not_found("payment")
    intent = book.intents.get(intent_id or "")
    if intent is None or intent.status != "succeeded" or intent.latest_charge is None:
        raise conflict("nothing has been paid")
    return book.charges[intent.latest_charge]


def refund(account: Account, charge: StripeCharge, ref: str, amount: int | None) -> list[Outgoing]:
    """Refund `amount` (all that is left when None) of the charge: `charge.refunded`, `refund.created`."""
    remaining = charge.amount - charge.amount_refunded
    amount = amount or remaining
    if remaining == 0 or amount > remaining:
        raise conflict(f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})")
    charge.amount_refunded += amount
    refund = {
        "id": build.new_id("re"),
        "object": "refund",
        "amount": amount,
        "charge": charge.id,
        "created": account.clock.timestamp(),
        "currency": charge.currency,
        "metadata": {},
        "payment_intent": charge.payment_intent,
        "reason": "requested_by_customer",
        "status": "succeeded",
    }
    return [
        emit_event(account, "charge.refunded", render_charge(charge), ref),
        emit_event(account, "refund.created", refund, ref),
    ]


def dispute(account: Account, charge: StripeCharge, ref: str, outcome: str) -> list[Outgoing]:
    """Open a dispute on the charge (`outcome` "open") or close it as "won" or "lost", with its Events."""
    book, out = account.stripe, []
    if charge.dispute is None:
        dispute = StripeDispute(
            build.new_id("dp"),
            charge.id,
            charge.payment_intent,
            charge.amount,
            charge.currency,
            account.clock.timestamp(),
        )
        book.disputes[dispute.id] = dispute
        charge.dispute = dispute.id
        obj = render_dispute(dispute)
        out += [
            emit_event(account, "charge.dispute.created", obj, ref),
            emit_event(account, "charge.dispute.funds_withdrawn", obj, ref),
        ]
    elif outcome == "open":
        raise conflict("the charge is already disputed")
    dispute = book.disputes[charge.dispute]
    if outcome == "open":
        return out
    if dispute.status in ("won", "lost"):
        raise conflict(f"the dispute is already {dispute.status}")
    dispute.status = outcome
    obj = render_dispute(dispute)
    out.append(emit_event(account, "charge.dispute.closed", obj, ref))
    if outcome == "won":
        out.append(emit_event(account, "charge.dispute.funds_reinstated", obj, ref))
    return out


def emit_event(account: Account, event_type: str, obj: JsonDict, ref: str) -> Outgoing:
    """Record an Event (the Events API shows it whatever happens to the webhook) and send it."""
    book = account.stripe
    event = build.stripe_event(event_type, obj, created=account.clock.timestamp())
    book.event_index[event["id"]] = len(book.events)
    book.events.append(event)
    body = build.to_body(event)
    return Outgoing(account.id, Provider.STRIPE, event_type, ref, body, event_id=event["id"])
