"""The scheduler: the current cadence slot's tick of every tenant's configured gateway, published once per
slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from paysync_core.contracts import Provider
from paysync_reconciler import metrics
from paysync_reconciler.models import scheduled_tick
from paysync_reconciler.ports import Deps
from paysync_reconciler.repository import tenants as tenants_repo

log = structlog.get_logger()


@dataclass
class SchedulerState:
    """What the scheduler loop remembers between rounds."""

    sent: dict[tuple[str, Provider], str] = field(default_factory=dict)  # the last tick per gateway
    unreadable: set[str] = field(default_factory=set)  # tenants whose credentials no key decrypts


async def publish_due_ticks(deps: Deps, state: SchedulerState) -> int:
    """Publish the current cadence slot's tick of every tenant's configured gateway, once per slot."""
    async with deps.engine.connect() as conn:
        tenants = await tenants_repo.tenants_with_credentials(conn, deps.settings.scheduler_tenants)
    now, published, sent = deps.clock(), 0, state.sent
    for tenant in tenants:
        try:
            credentials = await deps.gateways.credentials(tenant)
        except Exception as exc:  # noqa: BLE001 - one tenant's unreadable credentials must not stop the others
            if tenant not in state.unreadable:  # said once, not every round: the gauge keeps showing it
                error = type(exc).__name__
                log.warning("reconcile.scheduler.credentials_unreadable", tenant=tenant, error=error)
            state.unreadable.add(tenant)
            metrics.UNREADABLE_TENANTS.set(len(state.unreadable))
            continue
        if tenant in state.unreadable:
            state.unreadable.discard(tenant)
            metrics.UNREADABLE_TENANTS.set(len(state.unreadable))
            log.info("reconcile.scheduler.credentials_readable_again", tenant=tenant)
        for provider in Provider:
            if getattr(credentials, provider.value) is None:
                continue
            tick = scheduled_tick(tenant, provider, deps.settings.cadence_for(provider), now)
            if sent.get((tenant, provider)) == tick.tick_id:
                continue
            async with deps.engine.connect() as conn:
                # A gateway the tenant has not tracked one payment through yet has nothing to sweep.
                if not await tenants_repo.has_payments(conn, tenant, provider.value):
                    continue
            await deps.outbound.tick(tick)
            sent[(tenant, provider)] = tick.tick_id
            published += 1
    return published
