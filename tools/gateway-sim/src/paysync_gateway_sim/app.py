"""The composition root: one FastAPI app serving Stripe, Paystack, Daraja and the control API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

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

    @app.middleware("http")
    async def stripe_request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Stripe answers every request with a Request-Id, which its libraries log.
        response = await call_next(request)
        if request.url.path.startswith(PREFIXES["stripe"]):
            response.headers["Request-Id"] = f"req_{random_token(14)}"
        return response

    return app
