"""Composition root of the notifier."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from paysync_core.crypto import CredentialsCipher
from paysync_core.db.engine import make_engine
from paysync_core.kafka import durable_broker
from paysync_core.logging import configure_logging
from paysync_core.web import service_app
from paysync_notifier.alert_channels import AlertSender
from paysync_notifier.delivery import AlertDelivery
from paysync_notifier.endpoints import stream_router
from paysync_notifier.handlers import notifier_router
from paysync_notifier.hooks_wiring import app_webhooks
from paysync_notifier.rules import RuleEvaluator
from paysync_notifier.service import LiveStream
from paysync_notifier.settings import NotifierSettings
from paysync_notifier.status_feed import StatusFeed


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    """The notifier: serves status changes as server-sent events (its own feed), POSTs them to tenants'
    endpoints and delivers admin alerts."""
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
    # One pool for the alert and app-webhook senders: as many connections as deliveries in flight, and a few.
    engine = make_engine(
        common.database_url,
        pool_size=min(settings.hooks_concurrency + 4, 24),
        application_name="paysync-notifier",
        ping_after_idle_seconds=common.database_ping_after_idle_seconds,
    )
    http = httpx.AsyncClient(follow_redirects=False)
    keys = common.credentials_keys.get_secret_value()
    alerts = AlertDelivery(
        engine, settings.alerts, CredentialsCipher(keys) if keys else None, AlertSender(settings.alerts, http)
    )
    broker.include_router(notifier_router(settings, alerts))
    rules = [RuleEvaluator(engine, settings.alerts, common.kafka_bootstrap).run]
    if not settings.alerts.alert_rules_enabled:
        rules = []
    hooks = app_webhooks(settings, broker, engine)

    async def feed_started() -> bool:
        return stream.ready.is_set()

    app = service_app(
        "paysync notifier",
        broker=broker,
        engine=engine,
        background=[feed.run, alerts.run, *rules, *hooks.loops],
        readiness={"live_feed": feed_started},
        after_stop=http.aclose,
    )
    app.include_router(stream_router(stream, common.internal_token, settings))
    return app
