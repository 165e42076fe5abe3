"""api-gateway in-process (its lifespan: broker, database) behind an httpx client, as a front end calls it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from paysync_api_gateway.app import create_app
from paysync_api_gateway.hot import HotRoutes
from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_core.settings import CommonSettings

OpenApi = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
ServeApi = Callable[..., AbstractAsyncContextManager[FastAPI]]


def client_of(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client of a running api-gateway, calling from `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://api")


@pytest.fixture
def client_from() -> Callable[..., httpx.AsyncClient]:
    """`client_from(app, address)`: another client of a running api-gateway, from another address."""
    return client_of


@pytest.fixture
def serve_api(migrated_database: str, kafka_topics: str, credentials_keys: str) -> ServeApi:
    """`async with serve_api(**settings) as app`: an api-gateway with these settings, running
    (`hot_routes=False`: without `hot.py`'s middleware)."""

    @asynccontextmanager
    async def serve(*, hot_routes: bool = True, **settings: object) -> AsyncIterator[FastAPI]:
        common = CommonSettings(
            database_url=migrated_database, kafka_bootstrap=kafka_topics, credentials_keys=credentials_keys
        )
        app = create_app(ApiGatewaySettings(common=common, **settings))
        if not hot_routes:  # every request routed and resolved by FastAPI: the answers `hot.py` must give
            app.user_middleware = [m for m in app.user_middleware if m.cls is not HotRoutes]
        async with app.router.lifespan_context(app):
            yield app

    return serve


@pytest.fixture
def open_api(serve_api: ServeApi) -> OpenApi:
    """`async with open_api(**settings) as client`: an api-gateway with these settings, running."""

    @asynccontextmanager
    async def open_(**settings: object) -> AsyncIterator[httpx.AsyncClient]:
        async with serve_api(**settings) as app, client_of(app) as client:
            yield client

    return open_


@pytest.fixture
async def client(open_api: OpenApi) -> AsyncIterator[httpx.AsyncClient]:
    """An api-gateway with default settings."""
    async with open_api() as api:
        yield api
