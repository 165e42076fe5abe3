"""Composition root of the notifier."""

from __future__ import annotations

from fastapi import FastAPI

from paysync_core.kafka import durable_broker
from paysync_core.logging import configure_logging
from paysync_core.web import service_app
from paysync_notifier.endpoints import stream_router
from paysync_notifier.handlers import notifier_router
from paysync_notifier.hooks_wiring import app_webhooks
from paysync_notifier.service import LiveStream
from paysync_notifier.settings import NotifierSettings


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    """The notifier: consumes status changes and serves them as server-sent events."""
    settings = settings or NotifierSettings()
    common = settings.common
    configure_logging("notifier", common.log_level, common.log_json)
    broker = durable_broker(common.kafka_bootstrap, client_id="paysync-notifier")
    stream = LiveStream(settings.replay_buffer, settings.subscriber_queue)
    broker.include_router(notifier_router(stream, settings))

    hooks = app_webhooks(settings, broker)
    app = service_app("paysync notifier", broker=broker, engine=hooks.engine, background=hooks.loops)
    app.include_router(stream_router(stream, common.internal_token, settings.send_timeout_seconds))
    return app
