"""Stripe's objects and their lives: rendering, scenario steps, the Events they leave, expiry."""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from paysync_core.contracts.common import Provider
from paysync_core.testing.builders import stripe as build
from paysync_gateway_sim.contracts import Action, ActionRequest, PaymentSpec, PaymentView
from paysync_gateway_sim.errors import conflict, not_found
from paysync_gateway_sim.state import (
    Account,
    JsonDict,
    Outgoing,
    StripeBook,
    StripeCharge,
    StripeDispute,
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
            obj = self.render_intent(account.stripe, intent)
            created = self._emit(account, "payment_intent.created", obj, intent.id)
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
        created = self._emit(account, "invoice.created", self.render_invoice(invoice), invoice.id)
        # Finalizing a charge_automatically invoice creates the PaymentIntent that will collect it.
        invoice.status, invoice.transitions["finalized_at"] = "open", account.clock.timestamp()
        invoice.payment_intent = self._new_intent(account, amount, currency, dict(metadata)).id
        finalized = self._emit(account, "invoice.finalized", self.render_invoice(invoice), invoice.id)
        return invoice.id, [created, finalized]

    # --- rendering -----------------------------------------------------------------------------

    def render_session(
        self, book: StripeBook, session: StripeSession, expand: Iterable[str] = ()
    ) -> JsonDict:
        """The Checkout Session object as the API returns it."""
        obj = build.checkout_session(
            id=session.id,
            payment_status=session.payment_status,
            status=session.status,
            amount_total=session.amount_total,
            currency=session.currency,
            payment_intent=session.payment_intent,
            metadata=session.metadata,
            client_reference_id=session.client_reference_id,
            created=session.created,
        )
        obj.update(
            expires_at=session.expires_at,
            success_url=session.success_url,
            cancel_url=session.cancel_url,
            url=f"https://checkout.stripe.com/c/pay/{session.id}" if session.status == "open" else None,
        )
        if "payment_intent" in expand and session.payment_intent:
            obj["payment_intent"] = self.render_intent(book, book.intents[session.payment_intent])
        return obj

    def render_intent(self, book: StripeBook, intent: StripeIntent, expand: Iterable[str] = ()) -> JsonDict:
        """The PaymentIntent object."""
        obj = build.payment_intent(
            id=intent.id,
            status=intent.status,
            amount=intent.amount,
            amount_received=intent.amount_received,
            currency=intent.currency,
            latest_charge=intent.latest_charge,
            metadata=intent.metadata,
            last_payment_error=intent.last_payment_error,
            created=intent.created,
        )
        obj.update(canceled_at=intent.canceled_at, cancellation_reason=intent.cancellation_reason)
        if "latest_charge" in expand and intent.latest_charge:
            obj["latest_charge"] = self.render_charge(book.charges[intent.latest_charge])
        return obj

    def render_invoice(self, invoice: StripeInvoice, expand: Iterable[str] | None = None) -> JsonDict:
        """The Invoice object; its PaymentIntent under `payments` as in current API versions.

        On retrieval Stripe includes `payments` only when it is expanded (`expand[]=payments`);
        `expand=None` renders it, as in the event payloads the simulator sends.
        """
        obj = build.invoice(
            id=invoice.id,
            status=invoice.status,
            amount_due=invoice.amount_due,  # type: ignore[arg-type]
            amount_paid=invoice.amount_paid,
            currency=invoice.currency,
            payment_intent=invoice.payment_intent,
            next_payment_attempt=invoice.next_payment_attempt,
            metadata=invoice.metadata,
            created=invoice.created,
        )
        obj["attempt_count"] = invoice.attempt_count
        obj["status_transitions"] = dict(invoice.transitions)  # always there, as at Stripe
        if expand is not None and "payments" not in expand:
            obj.pop("payments", None)
        return obj

    def render_charge(self, charge: StripeCharge) -> JsonDict:
        """The Charge object."""
        obj = build.charge(
            id=charge.id,
            amount=charge.amount,
            amount_refunded=charge.amount_refunded,
            currency=charge.currency,
            payment_intent=charge.payment_intent,
            metadata=charge.metadata,
            created=charge.created,
        )
        obj["disputed"] = charge.dispute is not None
        return obj

    def render_dispute(self, dispute: StripeDispute) -> JsonDict:
        """The Dispute object."""
        return build.dispute(
            id=dispute.id,
            status=dispute.status,
            amount=dispute.amount,
            currency=dispute.currency,
            charge=dispute.charge,
            payment_intent=dispute.payment_intent,
            reason=dispute.reason,
            created=dispute.created,
        )

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
                object=self.render_session(book, s),
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
                object=self.render_intent(book, i),
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
                object=self.render_invoice(inv),
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
            charge = self._paid_charge(book, ref)
            if action is Action.REFUND:
                return self._refund(account, charge, ref, req.amount_minor)
            return self._dispute(account, charge, ref, req.outcome)
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
                    self._emit(
                        account,
                        "checkout.session.async_payment_succeeded",
                        self.render_session(book, s),
                        s.id,
                    ),
                ]
            s.status, s.payment_status = "complete", "paid"
            completed = self._emit(account, "checkout.session.completed", self.render_session(book, s), s.id)
            return [*out, completed]
        if action is Action.FAIL:
            out = [self._fail_intent(account, self._session_intent(account, s), s.id)]
            if delayed:  # the delayed payment failed: the session stays complete and unpaid
                out.append(
                    self._emit(
                        account, "checkout.session.async_payment_failed", self.render_session(book, s), s.id
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
                self._emit(account, "payment_intent.processing", self.render_intent(book, intent), s.id),
                self._emit(account, "checkout.session.completed", self.render_session(book, s), s.id),
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
        out = [self._emit(account, "checkout.session.expired", self.render_session(account.stripe, s), s.id)]
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
                self._emit(
                    account,
                    "payment_intent.processing",
                    self.render_intent(account.stripe, intent),
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
            obj = self.render_invoice(inv)
            return [
                *out,
                self._emit(account, "invoice.paid", obj, inv.id),
                self._emit(account, "invoice.payment_succeeded", obj, inv.id),
            ]
        if action is Action.FAIL:
            inv.attempt_count += 1
            inv.next_payment_attempt = account.clock.timestamp() + INVOICE_RETRY_DELAY if req.retry else None
            return [
                self._fail_intent(account, intent, inv.id),
                self._emit(account, "invoice.payment_failed", self.render_invoice(inv), inv.id),
            ]
        if action is Action.PROCESS:
            intent.status = "processing"
            obj = self.render_intent(book, intent)
            return [self._emit(account, "payment_intent.processing", obj, inv.id)]
        if action is Action.CANCEL:
            inv.status, inv.transitions["voided_at"] = "void", account.clock.timestamp()
            out = [self._emit(account, "invoice.voided", self.render_invoice(inv), inv.id)]
            if intent.status in _OPEN_INTENT:
                out.append(self._cancel_intent(account, intent, "void_invoice", inv.id))
            return out
        if action is Action.EXPIRE:
            inv.status = "uncollectible"
            inv.transitions["marked_uncollectible_at"] = account.clock.timestamp()
            return [self._emit(account, "invoice.marked_uncollectible", self.render_invoice(inv), inv.id)]
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
        intent_obj = self.render_intent(account.stripe, intent)
        return [
            self._emit(account, "charge.succeeded", self.render_charge(charge), ref),
            self._emit(account, "payment_intent.succeeded", intent_obj, ref),
        ]

    def _fail_intent(self, account: Account, intent: StripeIntent, ref: str) -> Outgoing:
        intent.status, intent.last_payment_error = "requires_payment_method", dict(_DECLINED)
        obj = self.render_intent(account.stripe, intent)
        return self._emit(account, "payment_intent.payment_failed", obj, ref)

    def _cancel_intent(self, account: Account, intent: StripeIntent, reason: str, ref: str) -> Outgoing:
        intent.status, intent.cancellation_reason = "canceled", reason
        intent.canceled_at = account.clock.timestamp()
        return self._emit(account, "payment_intent.canceled", self.render_intent(account.stripe, intent), ref)

    def _paid_charge(self, book: StripeBook, ref: str) -> StripeCharge:
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

    def _refund(self, account: Account, charge: StripeCharge, ref: str, amount: int | None) -> list[Outgoing]:
        remaining = charge.amount - charge.amount_refunded
        amount = amount or remaining
        if remaining == 0 or amount > remaining:
            raise conflict(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})"
            )
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
            self._emit(account, "charge.refunded", self.render_charge(charge), ref),
            self._emit(account, "refund.created", refund, ref),
        ]

    def _dispute(self, account: Account, charge: StripeCharge, ref: str, outcome: str) -> list[Outgoing]:
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
            obj = self.render_dispute(dispute)
            out += [
                self._emit(account, "charge.dispute.created", obj, ref),
                self._emit(account, "charge.dispute.funds_withdrawn", obj, ref),
            ]
        elif outcome == "open":
            raise conflict("the charge is already disputed")
        dispute = book.disputes[charge.dispute]
        if outcome == "open":
            return out
        if dispute.status in ("won", "lost"):
            raise conflict(f"the dispute is already {dispute.status}")
        dispute.status = outcome
        obj = self.render_dispute(dispute)
        out.append(self._emit(account, "charge.dispute.closed", obj, ref))
        if outcome == "won":
            out.append(self._emit(account, "charge.dispute.funds_reinstated", obj, ref))
        return out

    # --- time and events -----------------------------------------------------------------------

    def sweep(self, account: Account) -> list[Outgoing]:
        """Expire the sessions whose expires_at has passed (a heap: sweeps cost what falls due)."""
        book, now, out = account.stripe, account.clock.timestamp(), []
        while book.expiries and book.expiries[0][0] <= now:
            session = book.sessions[heapq.heappop(book.expiries)[1]]
            if session.status == "open":
                out += self.expire_session(account, session)
        return out

    def _emit(self, account: Account, event_type: str, obj: JsonDict, ref: str) -> Outgoing:
        """Record an Event (the Events API shows it whatever happens to the webhook) and send it."""
        book = account.stripe
        event = build.stripe_event(event_type, obj, created=account.clock.timestamp())
        book.event_index[event["id"]] = len(book.events)
        book.events.append(event)
        body = build.to_body(event)
        return Outgoing(account.id, self.provider, event_type, ref, body, event_id=event["id"])
