"""`paysync-reconciler`: serve (the default), or publish a tick for an operator."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer

from paysync_core import topics
from paysync_core.contracts import Provider
from paysync_core.kafka import DurableProducer
from paysync_core.web import serve as serve_app
from paysync_reconciler.models import manual_tick
from paysync_reconciler.settings import ReconcilerSettings

app = typer.Typer(help="The reconciler: sweeps on ticks, on-demand checks.", add_completion=False)


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """With no command: serve."""
    if ctx.invoked_subcommand is None:
        serve()


@app.command()
def serve() -> None:
    """Consume ticks and check requests until SIGTERM."""
    from paysync_reconciler.app import create_app

    settings = ReconcilerSettings()
    serve_app(create_app(settings), settings.host, settings.port)


@app.command()
def tick(
    tenant: Annotated[str, typer.Option(help="The tenant to sweep")],
    provider: Annotated[Provider, typer.Option(help="The gateway to sweep")],
) -> None:
    """Publish a tick now: one replica sweeps the tenant's payments at the gateway."""
    message = manual_tick(tenant, provider, datetime.now(UTC))
    asyncio.run(_publish(message.to_bytes(), topics.RECONCILE_TICKS.key_for(message)))
    typer.echo(f"tick {message.tick_id} published")


async def _publish(value: bytes, key: bytes | None) -> None:
    producer = DurableProducer(
        ReconcilerSettings().common.kafka_bootstrap, client_id="paysync-reconciler-cli"
    )
    await producer.start()
    try:
        await producer.send(topics.RECONCILE_TICKS.name, key, value)
    finally:
        await producer.stop()
