"""The operational HTTP surface every service shares: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

#: A named dependency check; it raises or returns False when the dependency is not usable.
ReadinessCheck = Callable[[], Awaitable[bool | None]]


def ops_router(checks: Mapping[str, ReadinessCheck], *, timeout: float = 2.0) -> APIRouter:
    """`/healthz` (the process answers), `/readyz` (each dependency answers), `/metrics`."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results = await asyncio.gather(*(_probe(check, timeout) for check in checks.values()))
        body = dict(zip(checks, results, strict=True))
        ok = all(r == "ok" for r in results)
        return JSONResponse({"status": "ready" if ok else "not_ready", "checks": body}, 200 if ok else 503)

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def _probe(check: ReadinessCheck, timeout: float) -> str:
    try:
        result = await asyncio.wait_for(check(), timeout)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
        return f"error: {type(exc).__name__}"
    return "ok" if result is not False else "error: check failed"
