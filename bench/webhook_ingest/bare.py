"""The bare endpoint: the same server stack as webhook-ingest (uvicorn + FastAPI), no checks, no Kafka."""

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


@app.get("/readyz")
async def ready() -> dict[str, str]:
    """Always ready."""
    return {"status": "ready"}


if __name__ == "__main__":
    serve(app, "127.0.0.1", int(os.environ["BARE_PORT"]))
