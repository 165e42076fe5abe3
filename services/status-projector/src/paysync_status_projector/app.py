"""Composition root of the status-projector: consumer, relay, matcher and drift loops, ops endpoints."""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from paysync_core.db import OUTBOX_CHANNEL, REGISTERED_CHANNEL
from paysync_core.db.engine import ENGINE_OPTIONS
from paysync_core.db.notify import asyncpg_dsn, listen
from paysync_core.domains import Domains, load_domains
from paysync_core.kafka import durable_broker
from paysync_core.logging import configure_logging
from paysync_core.web import service_app
from paysync_status_projector.handlers import projector_consumer, same_partition_as_java_clients
from paysync_status_projector.relay import Wakeup, drift_loop, relay_with_producer, unpark_loop
from paysync_status_projector.settings import StatusProjectorSettings


def _engine(url: str) -> AsyncEngine:
    """paysync's engine, without a ping before each checkout: a round trip less per batch and relay cycle."""
    # A connection that died fails its statement, an outage: the batch is redelivered, nothing is lost.
    engine = create_async_engine(
        url,
        pool_size=5,
        max_overflow=5,
        pool_pre_ping=False,
        connect_args={"server_settings": {"application_name": "paysync-status-projector"}},
        **ENGINE_OPTIONS,
    )
    if engine.dialect.driver != "asyncpg":  # the hot statements are compiled once, for asyncpg
        raise ValueError(f"the status-projector needs postgresql+asyncpg, not {engine.dialect.driver}")
    return engine


def create_app(settings: StatusProjectorSettings | None = None) -> FastAPI:
    """The projector as an ASGI app; consuming starts in its lifespan, after the domains are checked."""
    settings = settings or StatusProjectorSettings()
    common = settings.common
    configure_logging("status-projector", common.log_level, common.log_json)
    domains = Domains(load_domains(settings.domains_file, *settings.extra_domains_files))
    engine = _engine(common.database_url)
    # The broker only publishes dead letters (the consumer is `BatchConsumer`); its own logs at DEBUG.
    broker = durable_broker(
        common.kafka_bootstrap, client_id="paysync-status-projector", log_level=logging.DEBUG
    )
    outbox_wakeup, registered_wakeup = Wakeup(), Wakeup()
    # A batch that changed a status wakes the relay; one that bound an alias a parked row names, the unpark.
    consumer = projector_consumer(broker, engine, domains, settings, outbox_wakeup.set, registered_wakeup.set)

    async def check_domains_then_join() -> None:
        await domains.bind(engine)
        await consumer.start()  # as the subscriber did: a broker out of reach fails the start-up

    async def apply_observations() -> None:
        await consumer.run()

    def catch_up() -> None:
        outbox_wakeup.set()
        registered_wakeup.set()

    async def listen_for_wakeups() -> None:
        channels = {OUTBOX_CHANNEL: outbox_wakeup.set, REGISTERED_CHANNEL: registered_wakeup.set}
        await listen(asyncpg_dsn(common.database_url), channels, on_connect=catch_up)

    async def relay_status_changes() -> None:
        await relay_with_producer(
            common.kafka_bootstrap,
            engine,
            outbox_wakeup,
            settings.relay_batch,
            settings.relay_poll_seconds,
            timedelta(hours=settings.outbox_keep_hours),
            partitioner=same_partition_as_java_clients,
        )

    async def match_parked_observations() -> None:
        await unpark_loop(engine, domains, registered_wakeup, settings.unpark_poll_seconds, outbox_wakeup.set)

    async def check_drift_now_and_then() -> None:
        await drift_loop(engine, domains, settings.drift_check_seconds, outbox_wakeup.set)

    return service_app(
        "paysync status-projector",
        broker=broker,
        engine=engine,
        before_start=check_domains_then_join,
        background=(
            apply_observations,
            listen_for_wakeups,
            relay_status_changes,
            match_parked_observations,
            check_drift_now_and_then,
        ),
    )
