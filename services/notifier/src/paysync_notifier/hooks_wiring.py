"""Wiring of app webhooks into the notifier: the database, the dispatcher loop, the intake subscriber."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

import structlog
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.crypto import CredentialsCipher
from paysync_core.publishers import TopicPublisher
from paysync_core.web import BackgroundLoop
from paysync_notifier.hooks import AppWebhooks
from paysync_notifier.hooks_handlers import app_webhooks_router
from paysync_notifier.settings import NotifierSettings

log = structlog.get_logger()


@dataclass(frozen=True)
class AppWebhookWiring:
    """What the notifier's app runs for app webhooks (nothing when they are off)."""

    loops: list[BackgroundLoop] = field(default_factory=list)


def app_webhooks(settings: NotifierSettings, broker: KafkaBroker, engine: AsyncEngine) -> AppWebhookWiring:
    """Subscribe the intake on `broker`, build the dispatcher over `engine`; off without a credentials key."""
    keys = settings.common.credentials_keys.get_secret_value()
    if not settings.hooks_enabled:
        return AppWebhookWiring()
    if not keys:
        log.warning(
            "app_webhook.off", reason="PAYSYNC_CREDENTIALS_KEYS is empty: endpoint secrets cannot be opened"
        )
        return AppWebhookWiring()
    alerts = TopicPublisher(broker, topics.ALERTS, "Webhook endpoints disabled for failing")
    instance = f"{socket.gethostname()}-{os.getpid()}"
    hooks = AppWebhooks(engine, CredentialsCipher(keys), settings, alerts.publish, instance)
    broker.include_router(app_webhooks_router(hooks, settings.group_id, settings.hooks_offset_reset))

    async def deliver_app_webhooks() -> None:
        await hooks.run()

    return AppWebhookWiring([deliver_app_webhooks])
