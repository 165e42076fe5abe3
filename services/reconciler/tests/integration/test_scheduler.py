"""The scheduler and tenants it cannot sweep: said once, shown on /metrics, the others swept on."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from paysync_core.db.schema import reconcile_ticks
from paysync_dev.fixtures import create_gateway_tenant, create_tenant
from paysync_dev.reconcile import register
from paysync_dev.service_fixtures import fetch, wait_until

pytestmark = pytest.mark.integration


async def test_a_tenant_whose_credentials_no_key_decrypts_is_reported_once_and_does_not_stop_the_rest(
    start_reconciler, migrated_database, credentials_keys, engine, gateway_sim
) -> None:
    lost_key = create_tenant(migrated_database, Fernet.generate_key().decode())  # a key the service lacks
    readable = await create_gateway_tenant(engine, credentials_keys, gateway_sim, providers=("stripe",))
    ref = gateway_sim.create_payment(readable.account("stripe").id, kind="checkout_session").ref
    await register(engine, readable.id, "stripe", ref)
    [reconciler] = await start_reconciler(
        scheduler_tenants=f"{lost_key.id},{readable.id}", stripe_cadence_seconds=0.5
    )

    async def reported() -> bool:
        return reconciler.metric("paysync_reconciler_tenants_credentials_unreadable") == 1

    async def readable_swept() -> bool:
        ticks = await fetch(
            engine, select(reconcile_ticks.c.tick_id).where(reconcile_ticks.c.tenant_id == readable.id)
        )
        return len(ticks) >= 2

    await wait_until(reported, 60, "the unreadable tenant on /metrics")
    await wait_until(readable_swept, 60, "the readable tenant's ticks, round after round")
    log = reconciler.process.log_path.read_text()
    assert log.count("reconcile.scheduler.credentials_unreadable") == 1  # not once per round
    assert lost_key.id in log and "gAAAA" not in log  # the tenant named; no ciphertext, no secret
