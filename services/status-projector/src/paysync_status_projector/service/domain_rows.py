"""The domain rows that follow payments: each touched entity's row and per-payment rows, rewritten."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.domain.merge import PaymentState
from paysync_core.domains import Domains
from paysync_core.domains.values import PaymentView, entity_values, per_payment_values, view_of
from paysync_status_projector.repository import domain_rows as repo
from paysync_status_projector.service.folding import Folded


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
        values = entity_values(domain.spec, views[key])
        if values:
            upserts[domain.main].append(domain.main.row(tenant, entity_id, values))
        child = domain.per_payment
        if child is None:
            continue
        for view in views[key]:
            if view.row.id not in merged:
                continue  # not touched by this batch: its row is as its last batch left it
            row_key = child.coerce[child.mapping.key_column](view.context["payment_id"])
            child_values = per_payment_values(domain.spec, view)
            if child_values is not None:
                upserts[child].append(child.row(tenant, row_key, child_values))
            else:
                gone[child].append(child.row(tenant, row_key, {}))
    await repo.write_domain_rows(conn, domains.tables(), upserts, gone)
