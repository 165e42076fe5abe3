"""Composition root of the status-projector: consumer, relay and matcher loops, ops endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from paysync_core.db.engine import make_engine
from paysync_core.kafka import durable_broker
from paysync_core.logging import configure_logging
from paysync_core.web import ops_router
from paysync_core.db import OUTBOX_CHANNEL, REGISTERED_CHANNEL
from paysync_status_projector.domains import check_tables, load_domains
from paysync_status_projector.handlers import register_projector
from paysync_status_projector.relay import Wakeup, listen, relay_loop, unpark_loop
from paysync_status_projector.settings import StatusProjectorSettings


def create_app(settings: StatusProjectorSettings | None = None) -> FastAPI:
    """The projector as an ASGI app; consuming starts in its lifespan."""
    settings = settings or StatusProjectorSettings()
    common = settings.common
    configure_logging("status-projector", common.log_level, common.log_json)
    domains = load_domains(settings.domains_file)
    engine = make_engine(common.database_url, application_name="paysync-status-projector")
    broker = durable_broker(common.kafka_bootstrap, client_id="paysync-status-projector")
    outbox_wakeup, registered_wakeup = Wakeup(), Wakeup()
    register_projector(broker, engine, domains, settings, on_committed=outbox_wakeup.set)

    async def publish(topic: str, key: bytes, value: bytes) -> object:
        return await broker.publish(value, topic, key=key)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await check_tables(engine, domains)
        await broker.start()
        dsn = common.database_url.replace("+asyncpg", "")
        tasks = [
            asyncio.create_task(listen(dsn, {OUTBOX_CHANNEL: outbox_wakeup,
                                             REGISTERED_CHANNEL: registered_wakeup})),
            asyncio.create_task(relay_loop(engine, publish, outbox_wakeup, settings.relay_batch,
                                           settings.relay_poll_seconds)),
            asyncio.create_task(unpark_loop(engine, domains, registered_wakeup, settings.unpark_poll_seconds,
                                            outbox_wakeup.set)),
        ]
        try:
            yield
        finally:
            await broker.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await engine.dispose()

    async def database_ready() -> bool:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    app = FastAPI(title="paysync status-projector", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(ops_router({"broker": lambda: broker.ping(timeout=2.0), "database": database_ready}))
    return app
