"""The bare endpoint: the same server stack as the services (uvicorn + FastAPI), no checks, no Kafka,
no database: webhook-ingest's webhook route (bench/webhook_ingest) and api-gateway's payment routes
(bench/api_reads)."""

from __future__ import annotations

import os

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from paysync_core.web import serve

app = FastAPI()


async def bare(request: Request) -> JSONResponse:
    """Read the body and answer like webhook-ingest does, without authenticity or durability."""
    await request.body()
    return JSONResponse({"received": True, "ingest_id": "bare"})


# Routed exactly as webhook-ingest routes its webhooks (a plain Starlette route in a FastAPI app).
app.router.routes.append(Route("/webhooks/{tenant}/stripe", bare, methods=["POST"]))


async def bare_read(request: Request) -> JSONResponse:
    """A payment-shaped answer, as `GET /v1/payments/{id}` gives, without a key check or a read."""
    return JSONResponse(PAYMENT)


async def bare_register(request: Request) -> JSONResponse:
    """Read the registration and answer 201 with a payment, without a key check or a write."""
    await request.json()
    return JSONResponse(PAYMENT, status_code=201)


#: What api-gateway answers for a registered Stripe payment, in size and shape.
PAYMENT = {
    "id": "0b9f2a8e-3c1d-5e7f-9a2b-4c6d8e0f1a3b",
    "provider": "stripe",
    "provider_ref": "cs_test_4f8a1c2e9b7d4a6f8e0c2b4d6f8a0c2e",
    "domain": "jobs",
    "entity_id": "job-1a2b3c",
    "status": "pending",
    "amount_minor": 2500,
    "amount_received_minor": 0,
    "amount_refunded_minor": 0,
    "currency": "USD",
    "mode": "test",
    "metadata": {},
    "created_at": "2026-12-06T08:00:00.000000Z",
    "updated_at": "2026-12-06T08:00:00.000000Z",
}

# The API's routes, for bench/api_reads: the same paths api-gateway serves.
app.router.routes.append(Route("/v1/payments/{payment_id}", bare_read, methods=["GET"]))
app.router.routes.append(Route("/v1/payments", bare_register, methods=["POST"]))


@app.get("/readyz")
async def ready() -> dict[str, str]:
    """Always ready."""
    return {"status": "ready"}


if __name__ == "__main__":
    serve(app, "127.0.0.1", int(os.environ["BARE_PORT"]))
