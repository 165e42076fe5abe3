"""Composition root of the api-gateway."""

from __future__ import annotations

from fastapi import FastAPI

from paysync_api_gateway import admin
from paysync_api_gateway.endpoints import router
from paysync_api_gateway.errors import install_error_handlers
from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_core.db.engine import make_engine
from paysync_core.logging import configure_logging
from paysync_core.web import service_app


def create_app(settings: ApiGatewaySettings | None = None) -> FastAPI:
    """The api-gateway ASGI app."""
    settings = settings or ApiGatewaySettings()
    common = settings.common
    configure_logging("api-gateway", common.log_level, common.log_json)
    engine = make_engine(common.database_url, application_name="paysync-api-gateway")

    app = service_app("paysync API", engine=engine, public_docs=True)
    app.state.settings = settings
    app.state.engine = engine
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(admin.router)
    return app
