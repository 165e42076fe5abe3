"""Composition root of the api-gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from paysync_api_gateway.endpoints import router
from paysync_api_gateway.errors import install_error_handlers
from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_core.db.engine import make_engine
from paysync_core.logging import configure_logging
from paysync_core.web import ops_router


def create_app(settings: ApiGatewaySettings | None = None) -> FastAPI:
    """The api-gateway ASGI app."""
    settings = settings or ApiGatewaySettings()
    common = settings.common
    configure_logging("api-gateway", common.log_level, common.log_json)
    engine = make_engine(common.database_url, application_name="paysync-api-gateway")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await engine.dispose()

    async def database_ready() -> bool:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    app = FastAPI(title="paysync API", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(ops_router({"database": database_ready}))
    return app
