"""What the operator commands share: a database, a producer, a progress bar, JSON output."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.db import engine as db_engine
from paysync_core.kafka import DurableProducer
from paysync_core.settings import CommonSettings

console = Console()
#: `--json`: machine-readable output on stdout instead of tables.
JsonOption = typer.Option("--json", help="Print JSON instead of tables (for scripts)")


@asynccontextmanager
async def database() -> AsyncIterator[AsyncEngine]:
    """An engine on PAYSYNC_DATABASE_URL, disposed afterwards."""
    engine = db_engine.make_engine(CommonSettings().database_url, pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def producer(client_id: str) -> AsyncIterator[DurableProducer]:
    """The one durable producer (acks=all, idempotent) on PAYSYNC_KAFKA_BOOTSTRAP."""
    sender = DurableProducer(CommonSettings().kafka_bootstrap, client_id=client_id)
    await sender.start()
    try:
        yield sender
    finally:
        await sender.stop()


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float, every: float = 0.2) -> bool:
    """Poll `check()` until it holds (True) or `seconds` have passed (False)."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every)
    return True


def print_json(value: Any) -> None:
    """JSON on stdout, nothing else (rich would wrap and colour it)."""
    typer.echo(json.dumps(value, default=str, indent=2))


def fail(message: str, code: int = 1) -> typer.Exit:
    """Say what went wrong on stderr; the caller raises the returned Exit."""
    Console(stderr=True).print(f"[red]{message}[/]")
    return typer.Exit(code)


class RateColumn(ProgressColumn):
    """How many a second so far, in the task's `unit` field (records unless it names another)."""

    def render(self, task: Task) -> Text:
        """The task's speed, as `<n> <unit>/s`."""
        speed = task.finished_speed or task.speed or 0
        unit = task.fields.get("unit", "records")
        return Text(f"{speed:,.{1 if speed < 10 else 0}f} {unit}/s", style="progress.data.speed")


def progress_bar(*, transient: bool = True) -> Progress:
    """A bar with the count done of the total, the rate, the time left and the time taken, on stderr
    (stdout stays clean for `--json`)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=transient,
    )
