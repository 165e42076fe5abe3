"""The HTTP shell every service shares: lifespan wiring, liveness, readiness, metrics, serving."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from paysync_core import tracing
from paysync_core.server import ServerSettings, bounded_http_protocol

log = structlog.get_logger()

#: Allocations between young collections (CPython's default is 700): fewer collections under load.
_GC_YOUNG_THRESHOLD = 10_000

#: How long a service's shutdown waits for its Kafka clients to stop before it goes on without them.
BROKER_STOP_SECONDS = 15.0

#: A named dependency check; it raises or returns False when the dependency is not usable.
ReadinessCheck = Callable[[], Awaitable[bool | None]]
#: A loop the service runs for as long as it lives (the outbox relay, say).
BackgroundLoop = Callable[[], Coroutine[Any, Any, None]]


def service_app(
    title: str,
    *,
    broker: KafkaBroker | None = None,
    engine: AsyncEngine | None = None,
    background: Sequence[BackgroundLoop] = (),
    before_start: Callable[[], Awaitable[None]] | None = None,
    after_stop: Callable[[], Awaitable[None]] | None = None,
    public_docs: bool = False,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    advisory: Mapping[str, ReadinessCheck] | None = None,
) -> FastAPI:
    """A service's app: broker and loops start in the lifespan and stop after requests drain.

    `readiness` checks decide `/readyz`; `advisory` checks are only reported (a failing one makes
    the service "degraded", still ready): for dependencies that only part of the service needs.
    """
    crashed: list[str] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if before_start is not None:
            await before_start()
        if broker is not None:
            await broker.start()
        tasks = [asyncio.create_task(loop(), name=loop.__name__) for loop in background]
        for task in tasks:
            task.add_done_callback(lambda t: _on_loop_end(t, crashed))
        settle_garbage_collector()
        try:
            yield
        finally:
            if broker is not None:
                await _stop_broker(broker)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if after_stop is not None:
                await after_stop()
            if engine is not None:
                await engine.dispose()

    app = FastAPI(
        title=title,
        lifespan=lifespan,
        docs_url="/docs" if public_docs else None,
        redoc_url="/redoc" if public_docs else None,
        openapi_url="/openapi.json" if public_docs else None,
        telemetry=_fastapi_telemetry(),
    )
    app.state.broker = broker  # its subscribers and publishers make the AsyncAPI document
    checks: dict[str, ReadinessCheck] = {}
    if broker is not None:
        checks["broker"] = lambda: broker.ping(timeout=2.0)
    if engine is not None:
        checks["database"] = lambda: _database_answers(engine)
    checks.update(readiness or {})
    app.include_router(ops_router(checks, crashed=crashed, advisory=advisory))
    return app


#: Paths of the ops router: probes and scrapes, every few seconds, are no one's trace.
_OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _fastapi_telemetry() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry: its spans when this process traces (`paysync_core.tracing`, set up
    before the app is made), never its metrics or logs (the services' metrics are Prometheus').

    Said once here rather than found out per request: left to itself FastAPI asks, on every request,
    whether a tracer, a meter and a logger provider are installed (three environment lookups, ~5 µs of
    CPU a request on the bench host, bench/README.md, API reads and registrations).
    """
    return {"exclude": _is_ops_request, "tracing": tracing.enabled(), "metrics": False, "logs": False}


def _is_ops_request(scope: MutableMapping[str, Any]) -> bool:
    """Whether FastAPI's own OpenTelemetry spans (on once `paysync_core.tracing` installed a tracer
    provider) skip this request."""
    return scope.get("path") in _OPS_PATHS


async def _stop_broker(broker: KafkaBroker) -> None:
    """Stop the broker's consumers and producer, but never hang the shutdown on them.

    aiokafka can wait for ever in a consumer's stop when the group is rebalancing at that moment;
    offsets that matter are committed by the consumers themselves as work completes, so giving up
    after `BROKER_STOP_SECONDS` loses nothing that was acknowledged.
    """
    try:
        async with asyncio.timeout(BROKER_STOP_SECONDS):
            await broker.stop()
    except TimeoutError:
        log.error("broker.stop_timed_out", seconds=BROKER_STOP_SECONDS)


def settle_garbage_collector() -> None:
    """Keep the cyclic GC off everything loaded at start-up, and run its young collections less often.

    Without this a full collection walks every module, class and function of the service (hundreds of
    thousands of objects) every second or two under load, because the objects of in-flight requests
    outlive two young collections and count towards the next full one: a 100 ms stall each time,
    which was most of webhook-ingest's p99. Frozen objects are still freed by reference counting.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, 20, 20)


def serve(
    app: FastAPI, host: str, port: int, *, graceful_seconds: int = 20, limits: ServerSettings | None = None
) -> None:
    """Serve until SIGTERM, within the server limits (`PAYSYNC_HTTP_*`); in-flight requests finish first."""
    limits = limits or ServerSettings()
    served: ASGIApp = app
    if limits.metrics_port is not None:
        served = _without_metrics(app)
        start_http_server(limits.metrics_port, addr=host)  # a daemon thread; it ends with the process
    uvicorn.run(
        served,
        host=host,
        port=port,
        http=bounded_http_protocol(limits),
        # uvicorn annotates this int, but only hands it to loop.call_later, which takes fractions.
        timeout_keep_alive=limits.keep_alive_seconds,  # type: ignore[arg-type]
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=graceful_seconds,
    )


def _without_metrics(app: ASGIApp) -> ASGIApp:
    """`app` with /metrics answered 404: the service's port may be public, its metrics are not."""
    not_found = JSONResponse({"error": "not_found", "message": "no such endpoint", "problems": []}, 404)

    async def serve_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/metrics":
            await not_found(scope, receive, send)
        else:
            await app(scope, receive, send)

    return serve_app


def ops_router(
    checks: Mapping[str, ReadinessCheck],
    *,
    crashed: list[str] | None = None,
    timeout: float = 2.0,
    advisory: Mapping[str, ReadinessCheck] | None = None,
) -> APIRouter:
    """`/healthz` (the process and its loops are alive), `/readyz` (dependencies answer), `/metrics`.

    `/readyz` is 503 "not_ready" when a check of `checks` fails, else 200: "ready", or "degraded"
    when an `advisory` check fails (named in `checks` with the others, and listed in `degraded`).
    """
    router = APIRouter(include_in_schema=False)
    crashed = crashed if crashed is not None else []
    advisory = advisory or {}

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        if crashed:
            return JSONResponse({"status": "failed", "crashed": crashed}, 500)
        return JSONResponse({"status": "ok"})

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        every = {**checks, **advisory}
        results = await asyncio.gather(*(_probe(check, timeout) for check in every.values()))
        body = dict(zip(every, results, strict=True))
        ok = all(body[name] == "ok" for name in checks) and not crashed
        if not ok:
            return JSONResponse({"status": "not_ready", "checks": body}, 503)
        degraded = [name for name in advisory if body[name] != "ok"]
        if degraded:
            return JSONResponse({"status": "degraded", "checks": body, "degraded": degraded})
        return JSONResponse({"status": "ready", "checks": body})

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def _database_answers(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


def _on_loop_end(task: asyncio.Task[None], crashed: list[str]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    crashed.append(task.get_name())
    log.error("background.crashed", loop=task.get_name(), exc_info=exc)


async def _probe(check: ReadinessCheck, timeout: float) -> str:
    try:
        result = await asyncio.wait_for(check(), timeout)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
        return f"error: {type(exc).__name__}"
    return "ok" if result is not False else "error: check failed"
