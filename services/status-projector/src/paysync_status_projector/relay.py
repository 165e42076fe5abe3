"""Background loops: the outbox relay (woken by NOTIFY) and the parked-observation matcher."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.dead_letters import is_outage
from paysync_status_projector.domains import DomainSpec
from paysync_status_projector.metrics import RELAYED
from paysync_status_projector.service import Publish, relay_outbox, unpark

log = structlog.get_logger()


class Wakeup:
    """An event set by NOTIFY on a channel, or by this process directly."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def set(self, *_: object) -> None:
        """Wake the waiting loop (also usable as an asyncpg listener callback)."""
        self.event.set()

    async def wait(self, timeout: float) -> None:
        """Return when woken or after `timeout` seconds."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()


async def listen(dsn: str, channels: dict[str, Wakeup]) -> None:
    """Keep a connection LISTENing on the channels; reconnect when it drops."""
    while True:
        try:
            conn = await asyncpg.connect(dsn)
            try:
                for channel, wakeup in channels.items():
                    await conn.add_listener(channel, wakeup.set)
                    wakeup.set()  # catch up on anything committed while not listening
                while not conn.is_closed():
                    await asyncio.sleep(1)
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("listen.reconnecting", error=str(exc))
            await asyncio.sleep(1)


async def relay_loop(engine: AsyncEngine, publish: Publish, wakeup: Wakeup, batch: int, poll: float) -> None:
    """Publish committed outbox events until cancelled."""
    while True:
        try:
            sent = await relay_outbox(engine, publish, batch)
            RELAYED.inc(sent)
            if sent == batch:
                continue  # more waiting
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("relay.retrying", error=str(exc))
        await wakeup.wait(poll)


async def unpark_loop(engine: AsyncEngine, domains: dict[str, DomainSpec], wakeup: Wakeup, poll: float,
                      on_committed: Callable[[], None]) -> None:
    """Apply parked observations once their payments are registered, until cancelled."""
    while True:
        try:
            result = await unpark(engine, domains)
            if result.status_changes:
                on_committed()
            if result.applied or result.duplicates:
                continue
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("unpark.retrying", error=str(exc))
        await wakeup.wait(poll)

