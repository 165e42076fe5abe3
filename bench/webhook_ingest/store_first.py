"""The store-first peer: what most apps (and dj-stripe) do with a Stripe webhook, on webhook-ingest's stack.

Verify the signature with the official `stripe` SDK (`stripe.Webhook.construct_event`, the call Stripe's
own docs show), INSERT the raw event into PostgreSQL and answer 200 once the commit returns. The same
server and app shell as webhook-ingest (uvicorn through `paysync_core.web.serve`, `service_app`'s
lifespan and garbage-collector settings, a plain Starlette route at `/webhooks/{tenant}/stripe`), so
`make bench-ingest` compares the two designs and not two stacks.

The peer is given its best honest shot: one INSERT committed on its own (autocommit, so no BEGIN and
COMMIT round trips; PostgreSQL still answers only after the WAL is flushed, `synchronous_commit` being
on as by default), the raw body cast to jsonb by the server (no second serialisation in Python), a pool
of `STORE_FIRST_POOL_SIZE` connections without a ping per checkout. One endpoint secret, from the
environment, as an app with one Stripe account has; the tenant in the path is not looked up.

    STORE_FIRST_PORT=8010 STORE_FIRST_DATABASE_URL=postgresql+asyncpg://... \
    STORE_FIRST_WEBHOOK_SECRET=whsec_... .venv/bin/python bench/webhook_ingest/store_first.py
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import stripe
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from paysync_core.db.engine import ENGINE_OPTIONS
from paysync_core.web import serve, service_app

#: The peer's own table in the bench database: the raw event as it came, and when.
CREATE_TABLE = text(
    """
    CREATE TABLE IF NOT EXISTS store_first_events (
        id text PRIMARY KEY,
        type text NOT NULL,
        payload jsonb NOT NULL,
        received_at timestamptz NOT NULL
    )
    """
)

#: A redelivered event (same id) is answered 200 and stored once.
INSERT_EVENT = text(
    "INSERT INTO store_first_events (id, type, payload, received_at) "
    "VALUES (:id, :type, CAST(:payload AS jsonb), :received_at) ON CONFLICT (id) DO NOTHING"
)


def store_first_app(database_url: str, webhook_secret: str, pool_size: int) -> FastAPI:
    """The peer's app: the table is created in the lifespan, the pool disposed of after requests drain."""
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=0,
        isolation_level="AUTOCOMMIT",
        connect_args={"server_settings": {"application_name": "bench-store-first"}},
        **ENGINE_OPTIONS,
    )

    async def create_table() -> None:
        async with engine.connect() as conn:
            await conn.execute(CREATE_TABLE)

    app = service_app("bench store-first", engine=engine, before_start=create_table)
    # Routed as webhook-ingest routes its webhooks: a plain Starlette route in a FastAPI app.
    stripe_webhook = Route("/webhooks/{tenant}/stripe", _handler(engine, webhook_secret), methods=["POST"])
    app.router.routes.append(stripe_webhook)
    return app


def _handler(engine: AsyncEngine, webhook_secret: str) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def stripe_webhook(request: Request) -> JSONResponse:
        """Verify, store, answer: 200 only once PostgreSQL has committed the event."""
        payload = await request.body()
        try:
            event = stripe.Webhook.construct_event(
                payload, request.headers.get("stripe-signature"), webhook_secret
            )
        except (ValueError, stripe.SignatureVerificationError):
            return JSONResponse({"error": "invalid webhook"}, 400)
        async with engine.connect() as conn:
            await conn.execute(
                INSERT_EVENT,
                {
                    "id": event.id,
                    "type": event.type,
                    "payload": payload.decode(),
                    "received_at": datetime.now(UTC),
                },
            )
        return JSONResponse({"received": True})

    return stripe_webhook


if __name__ == "__main__":
    serve(
        store_first_app(
            os.environ["STORE_FIRST_DATABASE_URL"],
            os.environ["STORE_FIRST_WEBHOOK_SECRET"],
            int(os.environ.get("STORE_FIRST_POOL_SIZE", "20")),
        ),
        "127.0.0.1",
        int(os.environ["STORE_FIRST_PORT"]),
    )
