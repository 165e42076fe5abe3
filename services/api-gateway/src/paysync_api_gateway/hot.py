"""The routes front ends call in a loop, answered ahead of FastAPI's router and dependency resolution.

`GET /v1/payments/{id}` (polled by every page that shows a payment) and `POST /v1/payments` spent
more of api-gateway's CPU in FastAPI than in their own work: matching the request against the
included routers (three passes over them in FastAPI's router), the per-request exit stacks and, for
the registration, resolving its dependencies and body (half of its CPU; bench/README.md, API reads
and registrations). `HotRoutes`, an ASGI middleware inside the CORS and body-size middleware, takes
each request of a route declared hot, resolves what its endpoint needs by hand, in FastAPI's order
and with the same functions (the query and header checks, the API key through its cache, the body as
its model), and calls the same endpoint. The routes stay declared as they are, so the OpenAPI
document, and any request the middleware passes on, are theirs.

What a client sees is the route's answer, by construction: an error raised while resolving or in the
endpoint is answered by the app's own exception handler for it, as the router's exception middleware
would; a body FastAPI would refuse (not JSON, not the model, another content type) is passed on,
unread as far as the route can tell, and refused by the route itself. With tracing on, the request
span gets the route (`http.route`) and the work runs in `fastapi.dependencies` and `fastapi.endpoint`
spans, as in a routed request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, APIRouter
from fastapi.telemetry._api import _operation, _route_selected
from pydantic import BaseModel, ValidationError
from starlette._utils import get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

M = TypeVar("M", bound=BaseModel)
#: The endpoint's arguments, resolved from the request (and its body, for a route that takes one).
Resolver = Callable[[Request, Any], Awaitable[dict[str, Any]]]
#: An app's exception handler, as the router's exception middleware calls it.
Handler = Callable[[Request, Exception], Awaitable[Response]]
#: The work of a request FastAPI does not trace (tracing off): no span, and no look for one.
_UNTRACED = nullcontext()


@dataclass(frozen=True)
class HotRoute:
    """A declared route, how to resolve its endpoint's arguments by hand, and its body's model if any."""

    route: APIRoute
    resolve: Resolver
    body: type[BaseModel] | None = None


def hot_route(
    router: APIRouter, endpoint: Callable[..., Any], resolve: Resolver, body: type[BaseModel] | None = None
) -> HotRoute:
    """The route of `router` whose endpoint is `endpoint`, resolved by `resolve` (with its `body`)."""
    route = next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint)
    return HotRoute(route, resolve, body)


async def model_body(request: Request, model: type[M]) -> M | None:
    """The request's JSON body as `model`; None when FastAPI could see it otherwise (another content
    type, no body, not JSON, not the model), so the route itself refuses it in its own words."""
    if request.headers.get("content-type") != "application/json":
        return None
    body = await request.body()
    try:
        # Parsed and validated in one pass. Where that and FastAPI's `json.loads` then validation could
        # disagree (a byte-order mark, say), this one refuses, and the route decides as ever.
        return model.model_validate_json(body) if body else None
    except ValidationError:  # not JSON, or not the model
        return None


class HotRoutes:
    """ASGI middleware: requests of the hot routes are answered here (see the module's docstring)."""

    def __init__(self, app: ASGIApp, owner: FastAPI, routes: Sequence[HotRoute]) -> None:
        self.app, self.owner = app, owner
        self.routes = [(r.route.methods or set(), r) for r in routes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a hot route's request; anything else goes on to the router."""
        if scope["type"] == "http":
            method, path = scope["method"], get_route_path(scope)
            for methods, hot in self.routes:
                matched = hot.route.path_regex.match(path) if method in methods else None
                if matched is not None:
                    await self._serve(hot, matched.groupdict(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self, hot: HotRoute, params: dict[str, str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        route = hot.route
        scope["route"] = route  # as the router sets them
        scope["path_params"] = {k: route.param_convertors[k].convert(v) for k, v in params.items()}
        _route_selected(scope=scope, path=route.path_format)
        request = Request(scope, receive)
        try:
            # Read first, as FastAPI does: a body it would refuse is left to the route, and no span is
            # opened for it here (it has none of its own).
            body = await model_body(request, hot.body) if hot.body is not None else None
            if hot.body is not None and body is None:
                await self.app(scope, _replayed(await request.body(), receive), send)
                return
            traced = scope.get("fastapi.telemetry") is not None  # FastAPI traces this request
            with _operation(name="dependencies", function=route.endpoint) if traced else _UNTRACED:
                arguments = await hot.resolve(request, body)
            with _operation(name="endpoint", function=route.endpoint) if traced else _UNTRACED:
                response = await route.endpoint(**arguments)
        except Exception as exc:
            handler = _handler_of(self.owner.exception_handlers, exc)
            if handler is None:
                raise  # as from the router: the server-error middleware answers it
            response = await handler(request, exc)
        await response(scope, receive, send)


def _handler_of(handlers: Mapping[Any, Any], exc: Exception) -> Handler | None:
    """The app's handler of `exc` that the router's exception middleware would call (not the
    catch-all `Exception` one: that is the server-error middleware's, outside this one)."""
    for kind in type(exc).__mro__:
        if kind is not Exception and kind in handlers:
            handler: Handler = handlers[kind]
            return handler
    return None


def _replayed(body: bytes, receive: Receive) -> Receive:
    """`receive` that gives `body` first again: the request passed on reads the body already read."""
    pending = True

    async def receive_again() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again
