"""The domain rows that follow payments: each touched entity's row and per-payment rows, rewritten."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.contracts import Provider
from paysync_core.domain.merge import PaymentState
from paysync_core.domain.status import UnifiedStatus
from paysync_status_projector.domains import BoundDomain, Domains
from paysync_status_projector.repository import domain_rows as repo
from paysync_status_projector.service.folding import Folded

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


async def follow_in_domains(
    conn: AsyncConnection, touched: list[Folded], locked: dict[Any, Any], domains: Domains
) -> None:
    """Rewrite each touched entity's row, and each touched payment's per-payment row, from merged states."""
    # Every payment of a touched entity is locked (`lock_for_batch`): this batch's own are taken
    # as just merged, the others as committed.
    merged = {f.payment.id: f.state for f in touched}
    keys = sorted(
        {
            (f.payment.tenant_id, f.payment.domain, f.payment.entity_id)
            for f in touched
            if f.payment.entity_id is not None and domains.get(f.payment.domain)
        }
    )
    if not keys:
        return
    wanted = set(keys)
    views: dict[tuple[str, str, str], list[PaymentView]] = defaultdict(list)
    for payment_id in sorted(locked):
        row = locked[payment_id]
        key = (row.tenant_id, row.domain, row.entity_id)
        if key in wanted:
            state = merged[payment_id] if payment_id in merged else PaymentState.from_json(row.merge_state)
            views[key].append(view_of(row, state))
    upserts: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    gone: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for key in keys:
        tenant, name, entity_id = key
        domain = domains.get(name)
        if domain is None:
            raise RuntimeError(f"domain {name!r} has rows to write but is not bound")
        values = entity_values(domain, views[key])
        if values:
            upserts[domain.main].append(domain.main.row(tenant, entity_id, values))
        child = domain.per_payment
        if child is None:
            continue
        for view in views[key]:
            if view.row.id not in merged:
                continue  # not touched by this batch: its row is as its last batch left it
            row_key = child.coerce[child.mapping.key_column](view.context["payment_id"])
            if child.mapping.has_row(view.status):
                values = child.mapping.render_for(view.status, view.context)
                values[child.mapping.entity_column or ""] = entity_id
                upserts[child].append(child.row(tenant, row_key, values))
            else:
                gone[child].append(child.row(tenant, row_key, {}))
    await repo.write_domain_rows(conn, domains.tables(), upserts, gone)


@dataclass(frozen=True, slots=True)
class PaymentView:
    """One payment as domain rows see it: its row, merged state, status, and what templates can name."""

    row: Any
    state: PaymentState
    status: UnifiedStatus
    context: dict[str, Any]


def view_of(row: Any, state: PaymentState) -> PaymentView:
    """A payment's view, computed once."""
    status = state.status
    return PaymentView(row, state, status, payment_context(row, state, status))


def entity_values(domain: BoundDomain, payments: Sequence[PaymentView]) -> dict[str, Any] | None:
    """The entity row's values: its leading payment's status mapping, then counters over all its payments."""
    if not payments:
        return None
    lead = max(payments, key=_precedence)
    values = domain.spec.values_for(lead.status, lead.context) or {}
    for column, counter in domain.spec.counters.items():
        values[column] = counter.compute((p.status, p.context) for p in payments)
    return values or None


def _precedence(view: PaymentView) -> tuple[int, datetime, str]:
    return _MOVED_PRECEDENCE.get(view.status, 0), view.state.as_of or _EPOCH, view.context["payment_id"]


_TITLES = {p.value: p.display_name for p in Provider}


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
