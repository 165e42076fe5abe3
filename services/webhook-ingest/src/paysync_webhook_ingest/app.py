"""Composition root: wires settings, database, broker and routes into the webhook-ingest app."""

from __future__ import annotations

from fastapi import FastAPI

from paysync_core import topics
from paysync_core.crypto import CredentialsCipher
from paysync_core.db.engine import make_engine
from paysync_core.kafka import durable_broker
from paysync_core.logging import configure_logging
from paysync_core.web import service_app
from paysync_webhook_ingest.credentials import CredentialsStore
from paysync_webhook_ingest.endpoints import router
from paysync_webhook_ingest.errors import install_error_handlers
from paysync_webhook_ingest.handlers import register_normalizer
from paysync_webhook_ingest.settings import WebhookIngestSettings


def create_app(settings: WebhookIngestSettings | None = None) -> FastAPI:
    """The webhook-ingest ASGI app; the broker and database connect in its lifespan."""
    settings = settings or WebhookIngestSettings()
    common = settings.common
    configure_logging("webhook-ingest", common.log_level, common.log_json)
    engine = make_engine(common.database_url, application_name="paysync-webhook-ingest")
    broker = durable_broker(common.kafka_bootstrap, client_id="paysync-webhook-ingest")
    if settings.run_normalizer:
        register_normalizer(broker, settings)

    async def publish_raw(key: bytes, value: bytes) -> object:
        return await broker.publish(value, topics.WEBHOOKS_RAW.name, key=key)

    app = service_app("paysync webhook-ingest", broker=broker, engine=engine)
    app.state.settings = settings
    app.state.credentials = CredentialsStore(
        engine, CredentialsCipher(common.credentials_keys.get_secret_value()), settings.credentials_cache_seconds
    )
    app.state.publish_raw = publish_raw
    install_error_handlers(app, settings.retry_after_seconds)
    app.include_router(router)
    return app
