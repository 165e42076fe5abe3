"""Routes served without FastAPI's dependency resolution, for the few that front ends call in a loop.

FastAPI resolves a route's dependencies, validates its parameters and records them for telemetry on
every request: on `GET /v1/payments/{id}` (polled by every page that shows a payment) that was a
third of api-gateway's CPU per request, more than the read itself (bench/README.md, API reads). A
route declared with `route_class_override=served_by(handler)` keeps its endpoint, signature and
dependencies as the OpenAPI document shows them, but each request goes to `handler(request)`, which
resolves what the endpoint needs by hand, in the order FastAPI would, and calls it. Errors it raises
reach the app's error handlers as any route's do. With tracing on, the request keeps FastAPI's request
span and its `fastapi.endpoint` span; there is no `fastapi.dependencies` span, nothing being resolved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from fastapi.telemetry._api import _operation

Handler = Callable[[Request], Awaitable[Response]]


def served_by(handler: Handler) -> type[APIRoute]:
    """A route class whose requests `handler` answers (see the module's docstring)."""

    class DirectRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Any]:
            endpoint = self.endpoint

            async def serve(request: Request) -> Response:
                # The operation span FastAPI opens around an endpoint when tracing is on (a no-op off).
                with _operation(name="endpoint", function=endpoint):
                    return await handler(request)

            return serve

    return DirectRoute
