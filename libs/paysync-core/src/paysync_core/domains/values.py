"""What a domain's rows show for payments' merged states: pure, shared by the projector and `paysync replay`.

The status-projector writes these values (`follow_in_domains`); a replay's dry run computes them for
its shadow states to say which domain rows would change, and how.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from paysync_core.contracts import Provider
from paysync_core.domain.merge import PaymentState
from paysync_core.domain.status import UnifiedStatus
from paysync_core.domains.spec import DomainSpec

#: Which payment of an entity its row follows: money moved beats everything, in this order.
_MOVED_PRECEDENCE = {
    UnifiedStatus.SUCCEEDED: 4,
    UnifiedStatus.PARTIALLY_REFUNDED: 3,
    UnifiedStatus.DISPUTED: 2,
    UnifiedStatus.REFUNDED: 1,
}
_EVIDENCE_IDS = (
    "session_id",
    "payment_intent_id",
    "invoice_id",
    "charge_id",
    "transaction_id",
    "receipt_number",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TITLES = {p.value: p.display_name for p in Provider}


@dataclass(frozen=True, slots=True)
class PaymentView:
    """One payment as domain rows see it: its row, merged state, status, and what templates can name."""

    row: Any
    state: PaymentState
    status: UnifiedStatus
    context: dict[str, Any]


def view_of(row: Any, state: PaymentState) -> PaymentView:
    """A payment's view (`row`: its `payments` row, or anything with those attributes), computed once."""
    status = state.status
    return PaymentView(row, state, status, payment_context(row, state, status))


def entity_values(spec: DomainSpec, payments: Sequence[PaymentView]) -> dict[str, Any] | None:
    """The entity row's values: its leading payment's status mapping, then counters over all its payments."""
    if not payments:
        return None
    lead = max(payments, key=_precedence)
    values = spec.values_for(lead.status, lead.context) or {}
    for column, counter in spec.counters.items():
        values[column] = counter.compute((p.status, p.context) for p in payments)
    return values or None


def per_payment_values(spec: DomainSpec, view: PaymentView) -> dict[str, Any] | None:
    """The payment's row in the domain's per-payment table (its key aside); None: it has no row there."""
    child = spec.per_payment
    if child is None or not child.has_row(view.status):
        return None
    values = child.render_for(view.status, view.context)
    values[child.entity_column or ""] = view.row.entity_id
    return values


def _precedence(view: PaymentView) -> tuple[int, datetime, str]:
    return _MOVED_PRECEDENCE.get(view.status, 0), view.state.as_of or _EPOCH, view.context["payment_id"]


def payment_context(payment: Any, state: PaymentState, status: UnifiedStatus | None = None) -> dict[str, Any]:
    """What a template can name about one payment (domains.FIELDS), from its row and merged state."""
    status = status or state.status
    success = state.success
    evidence = dict(success.evidence) if success else {}
    received, refunded = state.amount_received_minor, state.amount_refunded_minor
    return {
        "status": status.value,
        "provider": payment.provider,
        "provider_title": _TITLES[payment.provider],
        "provider_ref": payment.provider_ref,
        "payment_id": str(payment.id),
        "entity_id": payment.entity_id,
        "session_id": evidence.get("session_id") or payment.provider_ref,
        "payment_intent_id": evidence.get("payment_intent_id"),
        "charge_id": evidence.get("charge_id"),
        "transaction_id": evidence.get("transaction_id"),
        "receipt_number": evidence.get("receipt_number"),
        "transaction_ref": evidence.get("receipt_number")
        or evidence.get("charge_id")
        or evidence.get("transaction_id")
        or evidence.get("payment_intent_id"),
        "evidence": ", ".join(f"{k}={v}" for k, v in evidence.items() if k in _EVIDENCE_IDS) or None,
        "amount_minor": payment.amount_minor,
        "currency": payment.currency or (success.currency if success else None),
        "amount_received_minor": received,
        "amount_refunded_minor": refunded,
        "amount_net_minor": None if received is None else max(received - refunded, 0),
        "paid_at": state.paid_at,
        "changed_at": state.as_of,
        "error": state.failure_detail if not status.money_moved else None,
        "flags": ",".join(sorted(state.flags)) or None,
        "sends": getattr(payment, "sends", 1),  # rows read before payments.sends existed: one send
    }
