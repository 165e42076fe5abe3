"""Composition root of the status-projector: consumer, relay and matcher loops, ops endpoints."""

from __future__ import annotations

from fastapi import FastAPI

from paysync_core.db import OUTBOX_CHANNEL, REGISTERED_CHANNEL
from paysync_core.db.engine import make_engine
from paysync_core.kafka import durable_broker
from paysync_core.logging import configure_logging
from paysync_core.web import service_app
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

    dsn = common.database_url.replace("+asyncpg", "")

    async def listen_for_wakeups() -> None:
        await listen(dsn, {OUTBOX_CHANNEL: outbox_wakeup, REGISTERED_CHANNEL: registered_wakeup})

    async def relay_status_changes() -> None:
        await relay_loop(engine, publish, outbox_wakeup, settings.relay_batch, settings.relay_poll_seconds)

    async def match_parked_observations() -> None:
        await unpark_loop(engine, domains, registered_wakeup, settings.unpark_poll_seconds, outbox_wakeup.set)

    return service_app(
        "paysync status-projector",
        broker=broker,
        engine=engine,
        before_start=lambda: check_tables(engine, domains),
        background=(listen_for_wakeups, relay_status_changes, match_parked_observations),
    )
