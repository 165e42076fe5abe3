"""Composition root of the reconciler: broker, database, gateway ports, subscribers, scheduler."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from functools import partial

import structlog
from fastapi import FastAPI

from paysync_core.contracts import Provider
from paysync_core.crypto import CredentialsCipher
from paysync_core.db.engine import make_engine
from paysync_core.dead_letters import is_outage
from paysync_core.kafka import DurableProducer, durable_broker
from paysync_core.logging import configure_logging
from paysync_core.web import service_app
from paysync_reconciler import service
from paysync_reconciler.checkouts import settle_initiating_checkouts
from paysync_reconciler.gateways import GatewayDirectory, follow_credential_changes
from paysync_reconciler.handlers import reconciler_router
from paysync_reconciler.listing import PoolReader, read_inline
from paysync_reconciler.outbound import KafkaOutbound
from paysync_reconciler.runner import TaskRunner
from paysync_reconciler.service import Deps
from paysync_reconciler.settings import ReconcilerSettings

log = structlog.get_logger()


def create_app(settings: ReconcilerSettings | None = None) -> FastAPI:
    """The reconciler as an ASGI app (ops endpoints); consuming and scheduling start in its lifespan."""
    settings = settings or ReconcilerSettings()
    common = settings.common
    configure_logging("reconciler", common.log_level, common.log_json)
    # The stripe SDK logs every request at INFO; the reconciler's own logs say what each sweep did.
    logging.getLogger("stripe").setLevel(max(logging.WARNING, logging.getLogger().level))
    _warn_deprecated(settings)
    keys = common.credentials_keys.get_secret_value()
    cipher = CredentialsCipher(keys) if keys else None
    engine = make_engine(
        common.database_url,
        pool_size=max(10, settings.max_concurrent_sweeps + 4),
        application_name="paysync-reconciler",
        ping_after_idle_seconds=common.database_ping_after_idle_seconds,
    )
    broker = durable_broker(common.kafka_bootstrap, client_id="paysync-reconciler")
    gateways = GatewayDirectory(engine, cipher, settings)
    producer = DurableProducer(common.kafka_bootstrap, client_id="paysync-reconciler", linger_ms=5)
    outbound = KafkaOutbound(producer)
    reader = PoolReader(settings.list_read_workers) if settings.list_read_workers else None
    deps = Deps(
        engine=engine,
        gateways=gateways,
        outbound=outbound,
        settings=settings,
        read_pages=reader or read_inline,
    )
    gateways.on_circuit = partial(service.circuit_changed, deps)
    sweeps = TaskRunner(settings.max_concurrent_sweeps, "sweeps")
    checks = TaskRunner(settings.max_concurrent_requests, "checks")
    broker.include_router(reconciler_router(deps, sweeps, checks))
    lifecycle = _Lifecycle(outbound, reader, sweeps, checks, gateways)

    # Named closures: a background loop's task is named (and its crash logged) after its function.
    async def schedule_ticks() -> None:
        await _schedule_ticks(deps)

    async def recover_orphaned_requests() -> None:
        await _recover_orphaned_requests(deps, checks)

    async def forget_changed_credentials() -> None:
        await follow_credential_changes(common.database_url, gateways)

    async def settle_checkouts() -> None:
        await _settle_checkouts(deps)

    loops = [recover_orphaned_requests, forget_changed_credentials, settle_checkouts]
    if settings.scheduler_enabled:
        loops.append(schedule_ticks)
    return service_app(
        "paysync reconciler",
        broker=broker,
        engine=engine,
        background=loops,
        before_start=lifecycle.start,
        after_stop=lifecycle.stop,
    )


def _warn_deprecated(settings: ReconcilerSettings) -> None:
    """Say so when a setting that no longer does anything is still set."""
    if settings.replicas is not None:
        log.warning(
            "reconcile.settings.replicas_ignored",
            detail="PAYSYNC_RECONCILER_REPLICAS is deprecated and ignored: replicas share each gateway "
            "budget through PostgreSQL; remove it",
        )


@dataclass(frozen=True)
class _Lifecycle:
    """What the reconciler starts before consuming and stops after, in order."""

    outbound: KafkaOutbound
    reader: PoolReader | None
    sweeps: TaskRunner
    checks: TaskRunner
    gateways: GatewayDirectory

    async def start(self) -> None:
        """Connect the producer; spawn the page readers (they warm up in the background)."""
        await self.outbound.start()
        if self.reader is not None:
            self.reader.start()

    async def stop(self) -> None:
        """Finish the work in hand, close the gateway clients and the producer, stop the readers."""
        await self.sweeps.close()
        await self.checks.close()
        await self.gateways.close()
        await self.outbound.stop()
        if self.reader is not None:
            await asyncio.to_thread(self.reader.close)  # waits for the workers to exit


async def _schedule_ticks(deps: Deps) -> None:
    """The scheduler's loop: due ticks published a few times per shortest cadence."""
    settings = deps.settings
    state = service.SchedulerState()
    pause = min(max(min(settings.cadence_for(p) for p in Provider) / 4, 0.05), 5.0)
    while True:
        try:
            await service.publish_due_ticks(deps, state)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("reconcile.scheduler.retrying", error=str(exc))
        await asyncio.sleep(pause)


async def _recover_orphaned_requests(deps: Deps, checks: TaskRunner) -> None:
    """Take over requests whose worker died; now and then, forget old answered requests and ticks."""
    settings = deps.settings
    purged_at = 0.0
    while True:
        await asyncio.sleep(settings.recovery_poll_seconds)
        try:
            await service.recover_requests(deps, checks)
            if time.monotonic() - purged_at > 600:
                purged_at = time.monotonic()
                await service.forget_old_records(deps)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("reconcile.recovery.retrying", error=str(exc))


async def _settle_checkouts(deps: Deps) -> None:
    """Finish or expire checkouts whose api-gateway died mid-call (`checkouts.py`), now and then."""
    while True:
        await asyncio.sleep(deps.settings.checkout_sweep_seconds)
        try:
            await settle_initiating_checkouts(deps)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("checkout.settle.retrying", error=str(exc))
