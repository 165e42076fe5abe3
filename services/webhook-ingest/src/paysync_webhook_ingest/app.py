"""Composition root: wires settings, database, broker and routes into the webhook-ingest app."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import TENANTS_CHANNEL
from paysync_core.db.engine import make_engine
from paysync_core.db.notify import asyncpg_dsn, listen
from paysync_core.kafka import DurableProducer, durable_broker
from paysync_core.logging import configure_logging
from paysync_core.ratelimit import KeyedBuckets
from paysync_core.web import BackgroundLoop, service_app
from paysync_webhook_ingest.credentials import CredentialsStore
from paysync_webhook_ingest.endpoints import routes
from paysync_webhook_ingest.errors import install_error_handlers
from paysync_webhook_ingest.handlers import normalizer_router
from paysync_webhook_ingest.lag import watch_normalizer_lag
from paysync_webhook_ingest.openapi import openapi_document
from paysync_webhook_ingest.quarantine import Quarantine, expire_quarantine
from paysync_webhook_ingest.settings import WebhookIngestSettings


def create_app(settings: WebhookIngestSettings | None = None) -> FastAPI:
    """The webhook-ingest ASGI app; the broker and database connect in its lifespan."""
    settings = settings or WebhookIngestSettings()
    common = settings.common
    configure_logging("webhook-ingest", common.log_level, common.log_json)
    engine = make_engine(
        common.database_url,
        application_name="paysync-webhook-ingest",
        ping_after_idle_seconds=common.database_ping_after_idle_seconds,
    )
    broker = durable_broker(common.kafka_bootstrap, client_id="paysync-webhook-ingest")
    if settings.run_normalizer:
        broker.include_router(normalizer_router(settings))
    credentials = CredentialsStore(
        engine,
        CredentialsCipher(common.credentials_keys.get_secret_value()),
        settings.credentials_cache_seconds,
    )
    quarantine = Quarantine(engine)
    # The request path publishes with aiokafka directly: FastStream's publish machinery costs
    # more per call than the rest of the request, and acks=all + idempotence are the same.
    producer = DurableProducer(
        common.kafka_bootstrap, client_id="paysync-webhook-ingest-raw", linger_ms=settings.produce_linger_ms
    )

    async def publish_raw(key: bytes, value: bytes) -> object:
        return await producer.send(topics.WEBHOOKS_RAW.name, key, value)

    app = service_app(
        "paysync webhook-ingest",
        broker=broker,
        engine=engine,
        background=_background_loops(settings, engine, credentials, quarantine),
        before_start=producer.start,
        after_stop=producer.stop,
    )
    app.state.settings = settings
    app.state.credentials = credentials
    app.state.quarantine = quarantine
    app.state.auth_failures = KeyedBuckets(settings.auth_failure_rate, settings.auth_failure_burst)
    app.state.publish_raw = publish_raw
    install_error_handlers(app, settings.retry_after_seconds)
    app.router.routes.extend(routes)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def _background_loops(
    settings: WebhookIngestSettings,
    engine: AsyncEngine,
    credentials: CredentialsStore,
    quarantine: Quarantine,
) -> list[BackgroundLoop]:
    """The loops that run beside the request path: quarantine, credentials, the normalizer's lag."""
    common = settings.common

    # Named closures: a background loop's task is named (and its crash logged) after its function.
    async def write_quarantine() -> None:
        await quarantine.run()

    async def delete_expired_quarantine() -> None:
        await expire_quarantine(
            engine,
            timedelta(days=settings.quarantine_retention_days),
            settings.quarantine_expiry_every_seconds,
            settings.quarantine_expiry_batch,
        )

    async def forget_changed_credentials() -> None:
        await listen(
            asyncpg_dsn(common.database_url),
            {TENANTS_CHANNEL: credentials.invalidate},
            on_connect=credentials.invalidate,
        )

    async def report_normalizer_lag() -> None:
        await watch_normalizer_lag(common.kafka_bootstrap, settings.normalizer_group)

    loops = [write_quarantine, delete_expired_quarantine, forget_changed_credentials]
    if settings.run_normalizer:
        loops.append(report_normalizer_lag)
    return loops
