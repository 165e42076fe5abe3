"""Composition root of the api-gateway."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_api_gateway import (
    admin,
    admin_dead_letters,
    admin_sweeps,
    admin_topics,
    alert_admin,
    app_webhooks,
    checkout,
    console,
    cors_admin,
    evidence,
    overrides,
    own_key,
    stream_tokens,
    sync_issues,
)
from paysync_api_gateway.cors import OriginDirectory, TenantCors
from paysync_api_gateway.driver_pool import DriverPool
from paysync_api_gateway.endpoints import HOT_ROUTES, router
from paysync_api_gateway.errors import install_error_handlers
from paysync_api_gateway.handlers import replies_router
from paysync_api_gateway.hot import HotRoutes
from paysync_api_gateway.inputs import strict_parameters
from paysync_api_gateway.key_cache import ApiKeyCache
from paysync_api_gateway.limits import BodySizeLimit, FailedKeyThrottle
from paysync_api_gateway.openapi_answers import document_answers
from paysync_api_gateway.presses import RefreshPresses
from paysync_api_gateway.refresh import RefreshCoordinator
from paysync_api_gateway.registrations import CredentialModes, wake_matcher
from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_api_gateway.stream import StreamSlots, notifier_answers, notifier_client
from paysync_api_gateway.stream import router as stream_router
from paysync_api_gateway.wakeups import MatcherWakeups
from paysync_core import topics
from paysync_core.crypto import CredentialsCipher
from paysync_core.db.engine import make_engine
from paysync_core.kafka import durable_broker
from paysync_core.logging import configure_logging
from paysync_core.publishers import TopicPublisher
from paysync_core.settings import CommonSettings
from paysync_core.web import service_app

#: Connections each of the two pools keeps (SQLAlchemy's may open as many again past it, for a while).
_POOL_SIZE = 20
_APPLICATION_NAME = "paysync-api-gateway"


def _engine(common: CommonSettings) -> AsyncEngine:
    """Pooled connections for as many requests as one replica runs at once: a connection opened past
    the pool is closed when returned, and opening one (TLS, type introspection, statements prepared
    anew) costs more CPU than the requests it serves (bench/README.md, API reads)."""
    return make_engine(
        common.database_url,
        pool_size=_POOL_SIZE,
        application_name=_APPLICATION_NAME,
        ping_after_idle_seconds=common.database_ping_after_idle_seconds,
    )


def create_app(settings: ApiGatewaySettings | None = None) -> FastAPI:
    """The api-gateway ASGI app: the /v1 API, the admin API, and the live stream."""
    settings = settings or ApiGatewaySettings()
    common = settings.common
    configure_logging("api-gateway", common.log_level, common.log_json)
    engine = _engine(common)
    pool = DriverPool(engine, _POOL_SIZE, _APPLICATION_NAME)
    wakeups = MatcherWakeups(lambda: wake_matcher(pool))
    broker = durable_broker(common.kafka_bootstrap, client_id="paysync-api-gateway")

    requests_out = TopicPublisher(broker, topics.RECONCILE_REQUESTS)
    refresh = RefreshCoordinator(requests_out.publish)
    broker.include_router(replies_router(refresh))
    observations_out = TopicPublisher(broker, topics.PAYMENT_OBSERVATIONS, "Status overrides")
    ticks_out = TopicPublisher(broker, topics.RECONCILE_TICKS, "Window sweeps an operator asked for")
    notifier = notifier_client(settings.notifier_url, common.internal_token)

    async def replies_reach_us() -> bool:
        return refresh.listening.is_set()

    async def after_stop() -> None:
        await notifier.aclose()
        await wakeups.close()
        await pool.close()

    app = service_app(
        "paysync API",
        broker=broker,
        engine=engine,
        public_docs=True,
        before_start=pool.start,
        after_stop=after_stop,
        readiness={"reconcile_replies": replies_reach_us},
        # Reported, not required: everything but /v1/stream works without the notifier, and a
        # readiness tied to a shared downstream would take every replica out of service at once.
        advisory={"notifier": lambda: notifier_answers(notifier)},
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.driver_pool = pool
    app.state.matcher_wakeups = wakeups
    app.state.refresh = refresh
    app.state.observations_out = observations_out
    app.state.ticks_out = ticks_out
    app.state.notifier = notifier
    app.state.credential_modes = _credential_modes(common)
    app.add_middleware(HotRoutes, owner=app, routes=HOT_ROUTES)  # inside CORS and the body's bound
    _guard_keys(app, engine, settings)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.state.stream_slots = StreamSlots(settings.stream_max_per_tenant, settings.stream_max_total)
    app.state.stream_tokens = stream_tokens.StreamTokens(
        settings.stream_token_secret, settings.stream_token_ttl_seconds
    )
    install_error_handlers(app)
    _include_routers(app)
    document_answers(app)
    return app


def _include_routers(app: FastAPI) -> None:
    """Every route: the `/v1` API, the live stream, the admin API, the console."""
    app.include_router(router)
    app.include_router(checkout.router)
    app.include_router(stream_router, dependencies=[Depends(strict_parameters)])
    app.include_router(stream_tokens.router)
    app.include_router(sync_issues.router)
    app.include_router(admin.router)
    app.include_router(cors_admin.router)
    app.include_router(evidence.router)
    app.include_router(overrides.router)
    app.include_router(app_webhooks.router)
    app.include_router(admin_sweeps.router)
    app.include_router(admin_dead_letters.router)
    app.include_router(admin_topics.router)
    app.include_router(alert_admin.router)
    _include_console(app)


def _credential_modes(common: CommonSettings) -> CredentialModes:
    """The one cipher of tenants' credentials (None: no keys configured), made once for every request
    that needs it, and the modes of the credentials it decrypted."""
    keys = common.credentials_keys.get_secret_value()
    return CredentialModes(CredentialsCipher(keys) if keys else None)


def _guard_keys(app: FastAPI, engine: AsyncEngine, settings: ApiGatewaySettings) -> None:
    """API-key checks (cached; failed ones throttled), tenants' web origins (CORS) and the refresh
    presses' rates."""
    app.state.failed_keys = FailedKeyThrottle(settings.failed_key_rate, settings.failed_key_burst)
    app.state.api_keys = ApiKeyCache(
        engine,
        settings.api_key_cache_seconds,
        settings.api_key_negative_cache_seconds,
        settings.api_key_cache_max_entries,
    )
    app.state.cors_origins = OriginDirectory(engine, settings.api_key_cache_seconds)
    app.state.refresh_presses = RefreshPresses(settings.refresh_press_rate, settings.refresh_press_burst)
    app.add_middleware(TenantCors, origins=app.state.cors_origins, max_age=settings.cors_max_age_seconds)


def _include_console(app: FastAPI) -> None:
    """The operator console and `paysync.js`, and the `/v1` routes only the console needs so far."""
    app.include_router(overrides.tenant_router)
    app.include_router(own_key.router)
    app.include_router(console.router)
