"""Background loops: the outbox relay (woken by NOTIFY), the parked-observation matcher, the drift check."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import timedelta

import structlog
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.dead_letters import is_outage
from paysync_core.domains import Domains
from paysync_core.kafka import DurableProducer, until_broker_answers
from paysync_status_projector.metrics import ALERTS, RELAYED
from paysync_status_projector.service import Publish, check_drift, purge_outbox, relay_outbox, unpark

log = structlog.get_logger()


class Wakeup:
    """An event set by NOTIFY on a channel, or by this process directly."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def set(self, *_: object) -> None:
        """Wake the waiting loop (usable as a NOTIFY listener)."""
        self.event.set()

    async def wait(self, timeout: float) -> None:
        """Return when woken or after `timeout` seconds."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()


async def relay_with_producer(
    bootstrap: str,
    engine: AsyncEngine,
    wakeup: Wakeup,
    batch: int,
    poll: float,
    keep: timedelta,
    partitioner: Callable[..., int],
) -> None:
    """The relay with a producer of its own (a `DurableProducer`), started once the broker answers."""
    producer = DurableProducer(
        bootstrap, client_id="paysync-status-projector-relay", linger_ms=1, partitioner=partitioner
    )
    await until_broker_answers(producer.start, "relay.producer_starting")
    try:
        await relay_loop(engine, producer.submit, wakeup, batch, poll, keep)
    finally:
        await producer.stop()


async def relay_loop(
    engine: AsyncEngine, publish: Publish, wakeup: Wakeup, batch: int, poll: float, keep: timedelta
) -> None:
    """Publish committed outbox events until cancelled; now and then forget long-published ones."""
    purged_at = time.monotonic()
    while True:
        try:
            sent = await relay_outbox(engine, publish, batch)
            RELAYED.inc(sent)
            if sent == batch:
                continue  # more waiting
            if time.monotonic() - purged_at > 60:
                purged_at = time.monotonic()
                await purge_outbox(engine, keep)
        except Exception as exc:
            if not _broker_or_database_away(exc):
                raise
            log.warning("relay.retrying", error=str(exc))
        await wakeup.wait(poll)


def _broker_or_database_away(exc: Exception) -> bool:
    """An outage (`is_outage`), or a failure the broker's client says may pass on retry: a producer that has
    not published to a topic yet waits for its metadata, and gives up with "unknown topic or partition"
    while the broker is away."""
    return is_outage(exc) or (isinstance(exc, KafkaError) and exc.retriable)


async def unpark_loop(
    engine: AsyncEngine, domains: Domains, wakeup: Wakeup, poll: float, on_committed: Callable[[], None]
) -> None:
    """Apply parked observations once their payments are registered, until cancelled."""
    while True:
        try:
            result = await unpark(engine, domains)
            if result.status_changes or result.alerts:
                on_committed()
            if result.applied or result.duplicates:
                continue
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("unpark.retrying", error=str(exc))
        await wakeup.wait(poll)


async def drift_loop(
    engine: AsyncEngine, domains: Domains, every: float, on_committed: Callable[[], None]
) -> None:
    """Check domain rows against payments every `every` seconds, until cancelled."""
    while True:
        await asyncio.sleep(every)
        try:
            raised = await check_drift(engine, domains)
            if raised:
                ALERTS.labels("drift").inc(raised)
                on_committed()
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("drift.retrying", error=str(exc))
