"""Stripe's objects and their lives: scenario steps, the Events they leave, expiry.

How each object looks is in `stripe_render.py`.
"""

from __future__ import annotations

import heapq

from paysync_core.contracts.common import Provider
from paysync_core.testing.builders import stripe as build
from paysync_gateway_sim.contracts import Action, ActionRequest, PaymentSpec, PaymentView
from paysync_gateway_sim.errors import conflict, not_found
from paysync_gateway_sim.gateways.stripe_charges import dispute, emit_event, paid_charge, refund
from paysync_gateway_sim.gateways.stripe_render import (
    render_charge,
    render_intent,
    render_invoice,
    render_session,
)
from paysync_gateway_sim.state import (
    Account,
    Outgoing,
    StripeCharge,
    StripeIntent,
    StripeInvoice,
    StripeSession,
)

SESSION_LIFETIME = 24 * 3600  # Stripe's default expires_at
INVOICE_RETRY_DELAY = 3 * 24 * 3600  # when `fail` says Stripe will retry
_DECLINED = {
    "type": "card_error",
    "code": "card_declined",
    "decline_code": "generic_decline",
    "message": "Your card was declined.",
}
_OPEN_INTENT = ("requires_payment_method", "requires_confirmation", "requires_action", "processing")


class StripeSim:
    """Stripe's side of every scenario, on one account's book at a time."""

    provider = Provider.STRIPE

    # --- creation ------------------------------------------------------------------------------

    def new_session(
        self,
        account: Account,
        *,
        amount: int,
        currency: str,
        metadata: dict[str, str] | None = None,
        client_reference_id: str | None = None,
        success_url: str | None = None,
        cancel_url: str | None = None,
        expires_at: int | None = None,
        intent_metadata: dict[str, str] | None = None,
    ) -> StripeSession:
        """An open Checkout Session; no event (Stripe has none for creation)."""
        now = account.clock.timestamp()
        session = StripeSession(
            id=build.new_id("cs"),
            amount_total=amount,
            currency=currency.lower(),
            created=now,
            expires_at=expires_at or now + SESSION_LIFETIME,
            metadata=dict(metadata or {}),
            client_reference_id=client_reference_id,
            success_url=success_url,
            cancel_url=cancel_url,
            intent_metadata=dict(intent_metadata or {}),
        )
        account.stripe.sessions[session.id] = session
        heapq.heappush(account.stripe.expiries, (session.expires_at, session.id))
        return session

    def create(self, account: Account, spec: PaymentSpec) -> tuple[str, list[Outgoing]]:
        """A payment made directly (control API): a session, a PaymentIntent or an open invoice."""
        currency = (spec.currency or "usd").lower()
        metadata = {k: str(v) for k, v in (spec.metadata or {}).items()}
        kind = spec.kind or "checkout_session"
        if kind == "checkout_session":
            session = self.new_session(
                account,
                amount=spec.amount_minor,
                currency=currency,
                metadata=metadata,
                client_reference_id=spec.client_reference_id,
                intent_metadata=spec.payment_intent_metadata,
            )
            return session.id, []
        if kind == "payment_intent":
            intent = self._new_intent(account, spec.amount_minor, currency, metadata)
            obj = render_intent(account.stripe, intent)
            created = emit_event(account, "payment_intent.created", obj, intent.id)
            return intent.id, [created]
        if kind == "invoice":
            return self._new_invoice(account, spec.amount_minor, currency, metadata)
        raise conflict(f"Stripe has no {kind}")

    def _new_intent(
        self, account: Account, amount: int, currency: str, metadata: dict[str, str]
    ) -> StripeIntent:
        intent = StripeIntent(
            build.new_id("pi"), amount, currency, account.clock.timestamp(), metadata=metadata
        )
        account.stripe.intents[intent.id] = intent
        return intent

    def _new_invoice(
        self, account: Account, amount: int, currency: str, metadata: dict[str, str]
    ) -> tuple[str, list[Outgoing]]:
        invoice = StripeInvoice(
            build.new_id("in"), amount, currency, account.clock.timestamp(), status="draft", metadata=metadata
        )
        account.stripe.invoices[invoice.id] = invoice
        created = emit_event(account, "invoice.created", render_invoice(invoice), invoice.id)
        # Finalizing a charge_automatically invoice creates the PaymentIntent that will collect it.
        invoice.status, invoice.transitions["finalized_at"] = "open", account.clock.timestamp()
        invoice.payment_intent = self._new_intent(account, amount, currency, dict(metadata)).id
        finalized = emit_event(account, "invoice.finalized", render_invoice(invoice), invoice.id)
        return invoice.id, [created, finalized]

    def view(self, account: Account, ref: str) -> PaymentView:
        """A payment's state for the control API."""
        book = account.stripe
        if ref in book.sessions:
            s = book.sessions[ref]
            return PaymentView(
                provider=self.provider,
                kind="checkout_session",
                ref=ref,
                status=f"{s.status}/{s.payment_status}",
                amount_minor=s.amount_total,
                currency=s.currency.upper(),
                object=render_session(book, s),
            )
        if ref in book.intents:
            i = book.intents[ref]
            return PaymentView(
                provider=self.provider,
                kind="payment_intent",
                ref=ref,
                status=i.status,
                amount_minor=i.amount,
                currency=i.currency.upper(),
                object=render_intent(book, i),
            )
        if ref in book.invoices:
            inv = book.invoices[ref]
            return PaymentView(
                provider=self.provider,
                kind="invoice",
                ref=ref,
                status=inv.status,
                amount_minor=inv.amount_due,
                currency=inv.currency.upper(),
                object=render_invoice(inv),
            )
        raise not_found("payment")

    def refs(self, account: Account) -> list[str]:
        """Every payment of the account: sessions, then PaymentIntents made on their own, then invoices."""
        book = account.stripe
        owned = {s.payment_intent for s in book.sessions.values()} | {
            i.payment_intent for i in book.invoices.values()
        }
        return [*book.sessions, *(i for i in book.intents if i not in owned), *book.invoices]

    # --- scenario steps ------------------------------------------------------------------------

    def act(self, account: Account, ref: str, action: Action, req: ActionRequest) -> list[Outgoing]:
        """Apply one step to a payment and return the events Stripe would send for it."""
        book = account.stripe
        if action in (Action.REFUND, Action.DISPUTE):
            charge = paid_charge(book, ref)
            if action is Action.REFUND:
                return refund(account, charge, ref, req.amount_minor)
            return dispute(account, charge, ref, req.outcome)
        if ref in book.sessions:
            return self._session_step(account, book.sessions[ref], action)
        if ref in book.intents:
            return self._intent_step(account, book.intents[ref], action)
        if ref in book.invoices:
            return self._invoice_step(account, book.invoices[ref], action, req)
        raise not_found("payment")

    def _session_step(self, account: Account, s: StripeSession, action: Action) -> list[Outgoing]:
        book = account.stripe
        intent = book.intents.get(s.payment_intent or "")
        delayed = s.status == "complete" and intent is not None and intent.status == "processing"
        if s.status == "expired" or s.payment_status == "paid" or (s.status == "complete" and not delayed):
            raise conflict(f"the Checkout Session is {s.status}/{s.payment_status}")
        if action is Action.PAY:
            out = self._succeed(account, self._session_intent(account, s), s.id)
            if delayed:
                s.payment_status = "paid"
                return [
                    *out,
                    emit_event(
                        account,
                        "checkout.session.async_payment_succeeded",
                        render_session(book, s),
                        s.id,
                    ),
                ]
            s.status, s.payment_status = "complete", "paid"
            completed = emit_event(account, "checkout.session.completed", render_session(book, s), s.id)
            return [*out, completed]
        if action is Action.FAIL:
            out = [self._fail_intent(account, self._session_intent(account, s), s.id)]
            if delayed:  # the delayed payment failed: the session stays complete and unpaid
                out.append(
                    emit_event(
                        account, "checkout.session.async_payment_failed", render_session(book, s), s.id
                    )
                )
            return out  # an open session stays open: the customer may try another card
        if delayed:
            raise conflict("a delayed payment is in progress; it can only succeed or fail")
        if action is Action.PROCESS:
            intent = self._session_intent(account, s)
            intent.status = "processing"
            s.status = "complete"  # completed with payment_status unpaid until the funds clear
            return [
                emit_event(account, "payment_intent.processing", render_intent(book, intent), s.id),
                emit_event(account, "checkout.session.completed", render_session(book, s), s.id),
            ]
        if action in (Action.CANCEL, Action.EXPIRE):
            return self.expire_session(account, s)
        if action is Action.ABANDON:
            return []  # the customer left; the session stays open until it expires
        raise conflict(f"{action.value} does not apply to a Checkout Session")

    def expire_session(self, account: Account, s: StripeSession) -> list[Outgoing]:
        """Expire an open session (its time ran out, or the merchant expired it)."""
        if s.status != "open":
            raise conflict(f"the Checkout Session is {s.status}")
        s.status = "expired"
        out = [emit_event(account, "checkout.session.expired", render_session(account.stripe, s), s.id)]
        intent = account.stripe.intents.get(s.payment_intent or "")
        if intent is not None and intent.status in _OPEN_INTENT:
            out.append(self._cancel_intent(account, intent, "abandoned", s.id))
        return out

    def _intent_step(self, account: Account, intent: StripeIntent, action: Action) -> list[Outgoing]:
        if intent.status not in _OPEN_INTENT:
            raise conflict(f"the PaymentIntent is {intent.status}")
        if action is Action.PAY:
            return self._succeed(account, intent, intent.id)
        if action is Action.FAIL:
            return [self._fail_intent(account, intent, intent.id)]
        if action is Action.PROCESS:
            intent.status = "processing"
            return [
                emit_event(
                    account,
                    "payment_intent.processing",
                    render_intent(account.stripe, intent),
                    intent.id,
                )
            ]
        if action in (Action.CANCEL, Action.ABANDON):
            reason = "requested_by_customer" if action is Action.CANCEL else "abandoned"
            return [self._cancel_intent(account, intent, reason, intent.id)]
        raise conflict(f"{action.value} does not apply to a PaymentIntent")

    def _invoice_step(
        self, account: Account, inv: StripeInvoice, action: Action, req: ActionRequest
    ) -> list[Outgoing]:
        if inv.status != "open":
            raise conflict(f"the invoice is {inv.status}")
        book = account.stripe
        intent = book.intents[inv.payment_intent or ""]
        if action is Action.PAY:
            out = self._succeed(account, intent, inv.id)
            inv.status, inv.amount_paid, inv.next_payment_attempt = "paid", inv.amount_due, None
            inv.transitions["paid_at"] = account.clock.timestamp()
            inv.attempt_count += 1
            obj = render_invoice(inv)
            return [
                *out,
                emit_event(account, "invoice.paid", obj, inv.id),
                emit_event(account, "invoice.payment_succeeded", obj, inv.id),
            ]
        if action is Action.FAIL:
            inv.attempt_count += 1
            inv.next_payment_attempt = account.clock.timestamp() + INVOICE_RETRY_DELAY if req.retry else None
            return [
                self._fail_intent(account, intent, inv.id),
                emit_event(account, "invoice.payment_failed", render_invoice(inv), inv.id),
            ]
        if action is Action.PROCESS:
            intent.status = "processing"
            obj = render_intent(book, intent)
            return [emit_event(account, "payment_intent.processing", obj, inv.id)]
        if action is Action.CANCEL:
            inv.status, inv.transitions["voided_at"] = "void", account.clock.timestamp()
            out = [emit_event(account, "invoice.voided", render_invoice(inv), inv.id)]
            if intent.status in _OPEN_INTENT:
                out.append(self._cancel_intent(account, intent, "void_invoice", inv.id))
            return out
        if action is Action.EXPIRE:
            inv.status = "uncollectible"
            inv.transitions["marked_uncollectible_at"] = account.clock.timestamp()
            return [emit_event(account, "invoice.marked_uncollectible", render_invoice(inv), inv.id)]
        raise conflict(f"{action.value} does not apply to an invoice")

    # --- money movements -------------------------------------------------------------------------

    def _session_intent(self, account: Account, s: StripeSession) -> StripeIntent:
        """The session's PaymentIntent, made on the customer's first attempt to pay."""
        if s.payment_intent is None:
            intent = self._new_intent(account, s.amount_total, s.currency, dict(s.intent_metadata))
            s.payment_intent = intent.id
        return account.stripe.intents[s.payment_intent]

    def _succeed(self, account: Account, intent: StripeIntent, ref: str) -> list[Outgoing]:
        now = account.clock.timestamp()
        charge = StripeCharge(
            build.new_id("ch"), intent.amount, intent.currency, intent.id, now, metadata=dict(intent.metadata)
        )
        account.stripe.charges[charge.id] = charge
        intent.status, intent.amount_received, intent.latest_charge = "succeeded", intent.amount, charge.id
        intent.last_payment_error = None
        intent_obj = render_intent(account.stripe, intent)
        return [
            emit_event(account, "charge.succeeded", render_charge(charge), ref),
            emit_event(account, "payment_intent.succeeded", intent_obj, ref),
        ]

    def _fail_intent(self, account: Account, intent: StripeIntent, ref: str) -> Outgoing:
        intent.status, intent.last_payment_error = "requires_payment_method", dict(_DECLINED)
        obj = render_intent(account.stripe, intent)
        return emit_event(account, "payment_intent.payment_failed", obj, ref)

    def _cancel_intent(self, account: Account, intent: StripeIntent, reason: str, ref: str) -> Outgoing:
        intent.status, intent.cancellation_reason = "canceled", reason
        intent.canceled_at = account.clock.timestamp()
        return emit_event(account, "payment_intent.canceled", render_intent(account.stripe, intent), ref)

    # --- time and events -----------------------------------------------------------------------

    def sweep(self, account: Account) -> list[Outgoing]:
        """Expire the sessions whose expires_at has passed (a heap: sweeps cost what falls due)."""
        book, now, out = account.stripe, account.clock.timestamp(), []
        while book.expiries and book.expiries[0][0] <= now:
            session = book.sessions[heapq.heappop(book.expiries)[1]]
            if session.status == "open":
                out += self.expire_session(account, session)
        return out
