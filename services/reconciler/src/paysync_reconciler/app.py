"""Composition root of the reconciler."""

from __future__ import annotations

from fastapi import FastAPI

from paysync_core.kafka import durable_broker
from paysync_core.logging import configure_logging
from paysync_core.web import service_app
from paysync_reconciler.handlers import register_handlers
from paysync_reconciler.settings import ReconcilerSettings


def create_app(settings: ReconcilerSettings | None = None) -> FastAPI:
    """The reconciler as an ASGI app (ops endpoints); consuming starts in its lifespan."""
    settings = settings or ReconcilerSettings()
    common = settings.common
    configure_logging("reconciler", common.log_level, common.log_json)
    broker = durable_broker(common.kafka_bootstrap, client_id="paysync-reconciler")
    register_handlers(broker, settings)

    return service_app("paysync reconciler", broker=broker)
