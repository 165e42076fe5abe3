"""Paystack transactions and their lives; webhooks only where Paystack sends them.

Paystack sends `charge.success` for a successful payment and nothing for one that failed or was
abandoned: those are only seen by verifying or listing transactions.
"""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime

from paysync_core.contracts.common import Provider
from paysync_core.testing.builders import paystack as build
from paysync_core.testing.builders import random_token
from paysync_gateway_sim.contracts import Action, ActionRequest, PaymentSpec, PaymentView
from paysync_gateway_sim.errors import conflict, not_found
from paysync_gateway_sim.state import Account, JsonDict, Outgoing, PaystackTransaction

_NOT_COMPLETED = "The transaction was not completed"
_RESPONSES = {
    "success": "Successful",
    "failed": "Declined",
    "abandoned": _NOT_COMPLETED,
    "ongoing": "Awaiting customer action",
    "pending": "Transaction in progress",
    "reversed": "Successful",
}
_OPEN = ("abandoned", "ongoing", "pending")


class PaystackSim:
    """Paystack's side of every scenario."""

    provider = Provider.PAYSTACK

    def initialize(
        self,
        account: Account,
        *,
        email: str,
        amount: int,
        currency: str,
        reference: str | None,
        metadata: JsonDict | str | None,
    ) -> PaystackTransaction:
        """A transaction the customer has not started paying: verify shows it `abandoned`."""
        reference = reference or build.paystack_reference()
        if reference in account.paystack:
            raise conflict("Duplicate Transaction Reference")
        txn = PaystackTransaction(
            id=random.randint(10**9, 10**10 - 1),  # noqa: S311 - a simulated gateway's ids, not secrets
            reference=reference,
            amount=amount,
            currency=currency.upper(),
            email=email,
            created_at=account.clock.now(),
            access_code=random_token(15, string.ascii_lowercase + string.digits),
            metadata=metadata if metadata is not None else "",
        )
        account.paystack[reference] = txn
        return txn

    def create(self, account: Account, spec: PaymentSpec) -> tuple[str, list[Outgoing]]:
        """A transaction made directly (control API), as if initialized by the merchant."""
        if spec.kind not in (None, "transaction"):
            raise conflict(f"Paystack has no {spec.kind}")
        txn = self.initialize(
            account,
            email=spec.email,
            amount=spec.amount_minor,
            currency=spec.currency or "NGN",
            reference=spec.reference,
            metadata=spec.metadata,
        )
        return txn.reference, []

    def render(self, txn: PaystackTransaction) -> JsonDict:
        """The Transaction resource as verify, fetch and list return it."""
        obj = build.paystack_transaction(
            reference=txn.reference,
            amount=txn.amount,
            currency=txn.currency,
            status=txn.status,
            paid_at=txn.paid_at or txn.created_at,
            metadata=txn.metadata,
            id=txn.id,
            channel=txn.channel,
        )
        paid = build.paystack_time(txn.paid_at) if txn.paid_at else None
        created = build.paystack_time(txn.created_at)
        obj.update(
            gateway_response=txn.gateway_response,
            paid_at=paid,
            paidAt=paid,
            created_at=created,
            createdAt=created,
            fees=obj["fees"] if txn.paid_at else None,
        )
        obj["customer"] = {
            **obj["customer"],
            "email": txn.email,
            "first_name": None,
            "last_name": None,
            "phone": None,
            "metadata": None,
            "risk_action": "default",
            "international_format_phone": None,
        }
        # Fields Paystack always sends, mostly empty for an API-initialized test transaction.
        obj.update(
            log=None,
            fees_split=None,
            receipt_number=None,
            transaction_date=created,
            connect=None,
            pos_transaction_data=None,
            fees_breakdown=None,
            source={"type": "api", "source": "merchant_api", "identifier": None},
        )
        if txn.status in _OPEN:
            obj["authorization"] = {}
        return obj

    def _as_event(self, txn: PaystackTransaction) -> JsonDict:
        """The transaction as `charge.success` carries it: without metadata, `metadata` is `0`.

        Paystack's webhook documentation shows `"metadata": 0` where verify shows `""`; a merchant's
        metadata is sent back as given (an object, or the JSON string it was sent as).
        """
        obj = self.render(txn)
        if txn.metadata in ("", {}, None):
            obj["metadata"] = 0
        return obj

    def view(self, account: Account, ref: str) -> PaymentView:
        """A transaction's state for the control API."""
        txn = self._get(account, ref)
        return PaymentView(
            provider=self.provider,
            kind="transaction",
            ref=ref,
            status=txn.status,
            amount_minor=txn.amount,
            currency=txn.currency,
            object=self.render(txn),
        )

    def refs(self, account: Account) -> list[str]:
        """Every transaction reference of the account."""
        return list(account.paystack)

    def act(self, account: Account, ref: str, action: Action, req: ActionRequest) -> list[Outgoing]:
        """Apply one step; returns the webhooks Paystack would send (none for failures)."""
        txn = self._get(account, ref)
        if action is Action.REFUND:
            return self._refund(account, txn, req.amount_minor)
        if action is Action.DISPUTE:
            return self._dispute(account, txn, req.outcome)
        if txn.status not in _OPEN:
            raise conflict(f"the transaction is {txn.status}")
        if action is Action.PAY:
            txn.paid_at = account.clock.now()
            self._set(txn, "success")
            return [self._send(account, txn, build.paystack_event("charge.success", self._as_event(txn)))]
        if action is Action.PROCESS:
            self._set(txn, req.status)
            return []
        if action is Action.FAIL:
            self._set(txn, "failed")
        elif action is Action.EXPIRE:
            self._set(txn, "abandoned", "Payment session timed out")
        elif action in (Action.CANCEL, Action.ABANDON):
            self._set(txn, "abandoned")
        else:
            raise conflict(f"{action.value} does not apply to a Paystack transaction")
        return []  # Paystack sends no webhook for failed or abandoned payments

    def _refund(self, account: Account, txn: PaystackTransaction, amount: int | None) -> list[Outgoing]:
        if txn.status not in ("success", "reversed") or txn.paid_at is None:
            raise conflict("nothing has been paid")
        remaining = txn.amount - txn.refunded
        amount = amount or remaining
        if remaining == 0 or amount > remaining:
            raise conflict(f"refund of {amount} exceeds the {remaining} not yet refunded")
        txn.refunded += amount
        if txn.refunded >= txn.amount:
            self._set(txn, "reversed")  # a partial refund leaves the transaction `success`
        refund_reference = f"RF_{random_token(12, string.ascii_lowercase + string.digits)}"
        return [
            self._send(
                account,
                txn,
                build.paystack_refund(
                    event,
                    transaction_reference=txn.reference,
                    amount=str(amount),
                    currency=txn.currency,
                    refund_reference=refund_reference,
                ),
            )
            for event in ("refund.pending", "refund.processed")
        ]

    def _dispute(self, account: Account, txn: PaystackTransaction, outcome: str) -> list[Outgoing]:
        if txn.paid_at is None:
            raise conflict("nothing has been paid")
        out: list[Outgoing] = []
        if txn.dispute_id is None:
            txn.dispute_id = random.randint(10**5, 10**7)  # noqa: S311 - a simulated gateway's ids, not secrets
            opened = self._dispute_body(account, txn, "charge.dispute.create", None)
            out.append(self._send(account, txn, opened))
        elif outcome == "open":
            raise conflict("the transaction is already disputed")
        if outcome == "open":
            return out
        if txn.dispute_outcome is not None:
            raise conflict(f"the dispute is already {txn.dispute_outcome}")
        txn.dispute_outcome = outcome
        resolution = "declined" if outcome == "won" else "merchant-accepted"
        if outcome == "lost":
            self._set(txn, "reversed")
        resolved = self._dispute_body(account, txn, "charge.dispute.resolve", resolution)
        out.append(self._send(account, txn, resolved))
        return out

    def _dispute_body(
        self, account: Account, txn: PaystackTransaction, event: build.DisputeEvent, resolution: str | None
    ) -> JsonDict:
        now = account.clock.now()
        body = build.paystack_dispute(
            event,
            reference=txn.reference,
            amount=txn.amount,
            currency=txn.currency,
            resolution=resolution,
            id=txn.dispute_id,
            created_at=now,
            resolved_at=now if resolution else None,
        )
        body["data"]["transaction"] = self.render(txn)  # the same transaction verify shows
        return body

    def _set(self, txn: PaystackTransaction, status: str, response: str | None = None) -> None:
        txn.status, txn.gateway_response = status, response or _RESPONSES[status]

    def _send(self, account: Account, txn: PaystackTransaction, payload: JsonDict) -> Outgoing:
        return Outgoing(account.id, self.provider, payload["event"], txn.reference, build.to_body(payload))

    def _get(self, account: Account, ref: str) -> PaystackTransaction:
        txn = account.paystack.get(ref)
        if txn is None:
            raise not_found("payment")
        return txn

    def sweep(self, account: Account) -> list[Outgoing]:
        """Nothing expires by itself at Paystack unless the merchant set a session timeout."""
        return []


def parse_time(value: str, *, end_of_day: bool = False) -> datetime | None:
    """A `from`/`to` filter: a date (2016-09-21) or an ISO timestamp; None if unreadable."""
    try:
        found = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    if end_of_day and len(value.strip()) == 10:  # a bare date `to` includes that whole day
        found = found.replace(hour=23, minute=59, second=59, microsecond=999_999)
    return found.astimezone(UTC)
