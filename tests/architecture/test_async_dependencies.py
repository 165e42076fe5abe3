"""Every HTTP endpoint and dependency of every service is `async def`.

FastAPI runs a plain `def` endpoint or dependency (a function, or a class it instantiates) on a
worker thread: a thread hop, and a wait for a free thread, per call and request, even for one that
only reads an attribute. On api-gateway's `GET /v1/payments/{id}` five such dependencies were a
large part of each request's CPU (bench/README.md, API reads). Anything that truly blocks runs in
`asyncio.to_thread` inside an async function, where it shows.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

SERVICES = ("api_gateway", "notifier", "webhook_ingest", "reconciler", "status_projector")


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "routes", None) or getattr(
            getattr(route, "original_router", None), "routes", None
        )
        if inner:
            yield from _routes(inner)


def _on_loop(call: Any) -> bool:
    """Whether FastAPI awaits `call` (a coroutine or async generator function, or an object whose
    `__call__` is one) rather than running it on a worker thread."""
    if inspect.isclass(call):
        return False
    candidates = (call, getattr(call, "__call__", None))  # noqa: B004 - instances such as HTTPBearer
    return any(inspect.iscoroutinefunction(c) or inspect.isasyncgenfunction(c) for c in candidates)


def _threaded(dependant: Dependant, path: str) -> Iterator[str]:
    for sub in dependant.dependencies:
        if sub.call is not None and not _on_loop(sub.call):
            yield f"{path}: {getattr(sub.call, '__qualname__', sub.call)}"
        yield from _threaded(sub, path)


@pytest.mark.parametrize("service", SERVICES)
def test_no_endpoint_or_dependency_runs_on_a_worker_thread(service: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PAYSYNC_CREDENTIALS_KEYS", Fernet.generate_key().decode())
    app = importlib.import_module(f"paysync_{service}.app").create_app()
    threaded = []
    for route in _routes(app.routes):
        if not _on_loop(route.endpoint):
            threaded.append(f"{route.path}: the endpoint {route.name}")
        threaded.extend(_threaded(route.dependant, route.path))
    assert list(_routes(app.routes)) or service in ("reconciler", "status_projector")
    assert threaded == []
