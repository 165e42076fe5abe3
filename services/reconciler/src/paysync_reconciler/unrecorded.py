"""Payments paid at a gateway that paysync has no record of: created from the gateway's data, alerted once."""

from __future__ import annotations

from datetime import timedelta

import structlog

from paysync_core.contracts import PaymentObservation
from paysync_core.domain.ids import payment_id_for
from paysync_reconciler import drift
from paysync_reconciler.alerts import raise_all
from paysync_reconciler.list_sweep import ListWindow
from paysync_reconciler.models import RunStats, Target
from paysync_reconciler.ports import Deps, Port
from paysync_reconciler.repository import listing as listing_repo
from paysync_reconciler.repository import unrecorded as unrecorded_repo

log = structlog.get_logger()


async def record_orphaned_successes(deps: Deps, port: Port, window: ListWindow, stats: RunStats) -> None:
    """Paid at the gateway, no payment record: verified successes parked past the grace period."""
    s = deps.settings
    older_than = deps.clock() - timedelta(seconds=s.unrecorded_grace_seconds)
    async with deps.engine.connect() as conn:
        rows = await unrecorded_repo.orphaned_successes(
            conn, port.tenant, port.provider.value, older_than, limit=500
        )
        if not rows:
            return
        found = [PaymentObservation.model_validate(r.payload) for r in rows]
        all_refs = [ref for obs in found for ref in obs.refs]
        known = await listing_repo.resolve_refs(conn, port.tenant, port.provider.value, all_refs)
        owned = await unrecorded_repo.parked_aliases(
            conn, port.tenant, port.provider.value, [o.provider_ref for o in found]
        )
    roots: dict[str, PaymentObservation] = {}
    for obs in sorted(found, key=lambda o: (o.provider_time, o.observation_id)):
        if any(ref in known or ref in window.aliases for ref in obs.refs) or obs.provider_ref in owned:
            continue  # its payment is known (the projector will match it), or it belongs to another root
        roots.setdefault(obs.provider_ref, obs)
    for obs in roots.values():
        if await _create_unrecorded(deps, obs, stats):
            stats.created += 1


async def _create_unrecorded(deps: Deps, obs: PaymentObservation, stats: RunStats) -> bool:
    """Create the record a gateway success has no match for, from the gateway's data; alert once."""
    pid = payment_id_for(obs.tenant, obs.provider.value, obs.provider_ref)
    entity = obs.entity
    domain, entity_id = (entity.domain, entity.entity_id) if entity else (None, None)
    values = {
        "id": pid,
        "tenant_id": obs.tenant,
        "provider": obs.provider.value,
        "provider_ref": obs.provider_ref,
        "domain": domain,
        "entity_id": entity_id,
        "amount_minor": obs.amount_minor,
        "currency": obs.currency,
        "registered": False,
        "metadata": {
            "created_by": "reconciler",
            "reason": "paid at the gateway without a payment record",
            "observation_id": obs.observation_id,
        },
    }
    async with deps.engine.begin() as conn:
        created = await unrecorded_repo.create_payment(conn, values, obs.refs)
    if not created:
        return False
    target = Target(
        pid,
        obs.tenant,
        obs.provider,
        obs.provider_ref,
        None,
        obs.amount_minor,
        obs.currency,
        domain,
        entity_id,
    )
    log.warning(
        "reconcile.payment.unrecorded",
        tenant=obs.tenant,
        provider=obs.provider.value,
        provider_ref=obs.provider_ref,
    )
    await raise_all(deps, [drift.unrecorded(target, obs)], stats)
    return True
