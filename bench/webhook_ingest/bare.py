"""The bare endpoint: the same server stack as webhook-ingest (uvicorn + FastAPI), no checks, no Kafka."""

from __future__ import annotations

import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from paysync_core.web import serve

app = FastAPI()


@app.post("/webhooks/{tenant}/stripe")
async def bare(tenant: str, request: Request) -> JSONResponse:
    """Read the body and answer like webhook-ingest does, without authenticity or durability."""
    await request.body()
    return JSONResponse({"received": True, "ingest_id": "bare"})


@app.get("/readyz")
async def ready() -> dict[str, str]:
    """Always ready."""
    return {"status": "ready"}


if __name__ == "__main__":
    serve(app, "127.0.0.1", int(os.environ["BARE_PORT"]))
