"""The composition root: one FastAPI app serving Stripe, Paystack, Daraja and the control API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paysync_core.testing.builders import random_token
from paysync_gateway_sim import control
from paysync_gateway_sim.config import SimConfig
from paysync_gateway_sim.errors import GatewayError, ScenarioError
from paysync_gateway_sim.gateways import daraja_api, paystack_api, stripe_api
from paysync_gateway_sim.runtime import Simulator

#: Where each API lives; a client's base URL is the server's URL plus the prefix.
PREFIXES = {"stripe": "/stripe", "paystack": "/paystack", "mpesa": "/daraja", "control": "/_sim"}


def create_app(config: SimConfig | None = None) -> FastAPI:
    """The simulator as an ASGI app; its webhook sender and expiry sweeper run in the lifespan."""
    sim = Simulator(config or SimConfig())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(sim.sender.run(), name="webhook-sender"),
            asyncio.create_task(sim.run_sweeper(), name="expiry-sweeper"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app = FastAPI(title="paysync gateway simulator", lifespan=lifespan)
    app.state.sim = sim
    app.include_router(stripe_api.router, prefix=PREFIXES["stripe"])
    app.include_router(paystack_api.router, prefix=PREFIXES["paystack"])
    app.include_router(daraja_api.router, prefix=PREFIXES["mpesa"])
    app.include_router(control.router, prefix=PREFIXES["control"])

    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(ScenarioError)
    async def scenario_error(_: Request, exc: ScenarioError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    app.add_middleware(StripeRequestId)
    return app


class StripeRequestId:
    """Stripe answers every request with a Request-Id, which its libraries log.

    Plain ASGI, not `@app.middleware("http")`: Starlette's BaseHTTPMiddleware wraps every request of
    every gateway in a task and a streamed response, a sixth of the simulator's CPU per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIXES["stripe"]):
            await self.app(scope, receive, send)
            return

        async def with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                request_id = f"req_{random_token(14)}".encode()
                message = {**message, "headers": [*message.get("headers", ()), (b"request-id", request_id)]}
            await send(message)

        await self.app(scope, receive, with_request_id)
