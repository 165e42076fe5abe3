"""Paystack payloads: `{"event": …, "data": …}` as the webhook docs' samples show them."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime
from typing import Any, Literal

from paysync_core.testing.builders import random_token, to_body

__all__ = [
    "paystack_charge_success",
    "paystack_dispute",
    "paystack_event",
    "paystack_reference",
    "paystack_refund",
    "paystack_time",
    "paystack_transaction",
    "to_body",
]

JsonDict = dict[str, Any]
RefundEvent = Literal[
    "refund.processed", "refund.pending", "refund.processing", "refund.failed", "refund.needs-attention"
]
DisputeEvent = Literal["charge.dispute.create", "charge.dispute.remind", "charge.dispute.resolve"]


def paystack_reference() -> str:
    """A transaction reference like the ones Paystack generates (`v3mjfgbnc19v97x`)."""
    return random_token(15, string.ascii_lowercase + string.digits)


def paystack_time(when: datetime | None = None) -> str:
    """Paystack's timestamp form: ISO 8601 UTC with milliseconds and a Z."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _transaction_id() -> int:
    return random.randint(10**8, 10**10)  # noqa: S311 - a test payload id, not a secret


def paystack_event(event: str, data: JsonDict) -> JsonDict:
    """A webhook body: the event name and its data object."""
    return {"event": event, "data": data}


def paystack_transaction(
    *,
    reference: str | None = None,
    amount: int = 10_000,
    currency: str = "NGN",
    status: str = "success",
    paid_at: datetime | None = None,
    metadata: JsonDict | str | None = None,
    id: int | None = None,  # Paystack's own field name
    channel: str = "card",
) -> JsonDict:
    """A Transaction resource, the `data` of `charge.success` (amount in subunits: kobo, pesewas…)."""
    paid = paystack_time(paid_at)
    return {
        "id": id or _transaction_id(),
        "domain": "test",
        "status": status,
        "reference": reference or paystack_reference(),
        "amount": amount,
        "message": None,
        "gateway_response": "Successful" if status == "success" else "Declined",
        "paid_at": paid,
        "created_at": paid,
        "channel": channel,
        "currency": currency,
        "ip_address": None,
        "metadata": metadata if metadata is not None else "",
        "fees": amount // 100,
        "authorization": {"channel": channel, "reusable": True},
        "customer": {"id": 5406463, "email": "customer@example.com", "customer_code": "CUS_test"},
        "plan": {},
        "subaccount": {},
        "split": {},
        "order_id": None,
        "paidAt": paid,
        "requested_amount": amount,
    }


def paystack_charge_success(
    *,
    reference: str | None = None,
    amount: int = 10_000,
    currency: str = "NGN",
    paid_at: datetime | None = None,
    metadata: JsonDict | str | None = None,
    id: int | None = None,
) -> JsonDict:
    """A `charge.success` event."""
    return paystack_event(
        "charge.success",
        paystack_transaction(
            reference=reference,
            amount=amount,
            currency=currency,
            paid_at=paid_at,
            metadata=metadata,
            id=id,
        ),
    )


def paystack_refund(
    event: RefundEvent = "refund.processed",
    *,
    transaction_reference: str | None = None,
    amount: int | str = 10_000,
    currency: str = "NGN",
    refund_reference: str | None = None,
    transaction: JsonDict | None = None,
) -> JsonDict:
    """A refund event as in the webhook docs: amount (sometimes a digit string) of this refund."""
    data: JsonDict = {
        "status": event.removeprefix("refund."),
        "transaction_reference": transaction_reference or paystack_reference(),
        "refund_reference": refund_reference,
        "amount": amount,
        "currency": currency,
        "processor": "mpgs_zen",
        "customer": {"first_name": "Ada", "last_name": "Obi", "email": "customer@example.com"},
        "integration": 412829,
        "domain": "test",
    }
    if transaction is not None:
        data["transaction"] = transaction
    return paystack_event(event, data)


def paystack_dispute(
    event: DisputeEvent = "charge.dispute.create",
    *,
    reference: str | None = None,
    amount: int = 10_000,
    currency: str = "NGN",
    resolution: str | None = None,
    id: int | None = None,
    created_at: datetime | None = None,
    resolved_at: datetime | None = None,
    transaction_metadata: JsonDict | str | None = None,
) -> JsonDict:
    """A dispute event: the Dispute resource with the disputed transaction embedded."""
    resolved = event == "charge.dispute.resolve"
    created = paystack_time(created_at)
    transaction = paystack_transaction(
        reference=reference,
        amount=amount,
        currency=currency,
        status="reversed" if resolved and resolution != "declined" else "success",
        metadata=transaction_metadata,
    )
    return paystack_event(
        event,
        {
            "id": id or random.randint(10**5, 10**7),  # noqa: S311 - a test payload id, not a secret
            "refund_amount": amount,
            "currency": currency,
            "status": "resolved" if resolved else "awaiting-merchant-feedback",
            "resolution": resolution if resolved else None,
            "domain": "test",
            "transaction": transaction,
            "transaction_reference": None,
            "category": "chargeback",
            "dueAt": created,
            "resolvedAt": paystack_time(resolved_at) if resolved else None,
            "evidence": None,
            "history": [{"status": "pending", "by": "customer@example.com", "createdAt": created}],
            "created_at": created,
            "updated_at": paystack_time(resolved_at) if resolved else created,
        },
    )
