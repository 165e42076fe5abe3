"""Composition root of the notifier."""

from __future__ import annotations

from fastapi import FastAPI

from paysync_core.kafka import durable_broker
from paysync_core.logging import configure_logging
from paysync_core.web import service_app
from paysync_notifier.endpoints import stream_router
from paysync_notifier.handlers import notifier_router
from paysync_notifier.service import LiveStream
from paysync_notifier.settings import NotifierSettings
from paysync_notifier.status_feed import StatusFeed


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    """The notifier: reads status changes (its own feed) and serves them as server-sent events."""
    settings = settings or NotifierSettings()
    common = settings.common
    configure_logging("notifier", common.log_level, common.log_json)
    broker = durable_broker(common.kafka_bootstrap, client_id="paysync-notifier")
    stream = LiveStream(
        settings.resume_events_per_partition, settings.resume_window_seconds, settings.subscriber_queue
    )
    feed = StatusFeed(
        common.kafka_bootstrap,
        stream,
        window_seconds=settings.resume_window_seconds,
        per_partition=settings.resume_events_per_partition,
    )
    broker.include_router(notifier_router(settings))

    async def feed_started() -> bool:
        return stream.ready.is_set()

    app = service_app(
        "paysync notifier", broker=broker, background=[feed.run], readiness={"live_feed": feed_started}
    )
    app.include_router(stream_router(stream, common.internal_token, settings))
    return app
