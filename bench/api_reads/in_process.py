"""api-gateway's CPU a status read and a registration, with no HTTP server and no load generator.

    .venv/bin/python bench/api_reads/in_process.py [--rounds 2] [--requests 4000] [--profile OUT]

The app (its whole middleware stack, the hot routes of `hot.py`) is called through ASGI by 16
concurrent callers in this process, against a database of its own on the local cluster (no broker:
neither route uses it). Each round: CPU ms a request of this process (the app and its callers) and of
PostgreSQL's backends of that database. On a shared host this moves far less than a server's rate:
run it from two checkouts in turns (before, after, after, before) to compare them. `--profile`
writes a cProfile (CPU clock) of one more round of each route to OUT.GET.prof and OUT.POST.prof.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import typer
from cryptography.fernet import Fernet

from paysync_core.db.engine import upgrade
from paysync_dev import postgres
from paysync_dev.fixtures import create_tenant, stripe_registration

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
CALLERS = 16


async def call(
    app: App, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> list:
    """One request through ASGI; the messages the app sent."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "state": {},
    }
    sent: list = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


class Backends:
    """CPU seconds of PostgreSQL's backends connected to one database, read from /proc."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def seconds(self) -> float:
        rows = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        ticks = 0
        for row in rows:
            try:
                fields = Path(f"/proc/{row['pid']}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it ended meanwhile
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")


async def measure(work: list[Awaitable[None]], count: int, backends: Backends) -> tuple[float, float]:
    """CPU ms a request of this process and of the database's backends, running `work` at once."""
    database, cpu = await backends.seconds(), time.process_time()
    await asyncio.gather(*work)
    cpu = time.process_time() - cpu
    database = await backends.seconds() - database
    return cpu / count * 1000, database / count * 1000


async def run(database: str, rounds: int, requests: int, profile: str | None) -> None:
    from paysync_api_gateway.app import create_app
    from paysync_api_gateway.settings import ApiGatewaySettings

    keys = Fernet.generate_key().decode()
    tenant = create_tenant(database, keys, gateways=("stripe",))
    os.environ |= {
        "PAYSYNC_DATABASE_URL": database,
        "PAYSYNC_KAFKA_BOOTSTRAP": "127.0.0.1:1",  # never connected: no lifespan, no broker
        "PAYSYNC_CREDENTIALS_KEYS": keys,
        "PAYSYNC_LOG_LEVEL": "WARNING",
    }
    app = create_app(ApiGatewaySettings())
    await app.state.driver_pool.start()
    auth = [(b"authorization", f"Bearer {tenant.api_key}".encode()), (b"host", b"api")]
    json_auth = [*auth, (b"content-type", b"application/json")]
    made = await call(app, "POST", "/v1/payments", json_auth, json.dumps(stripe_registration()).encode())
    read = f"/v1/payments/{json.loads(made[1]['body'])['id']}"

    async def reads(count: int) -> None:
        for _ in range(count):
            await call(app, "GET", read, auth)

    async def registrations(bodies: list[bytes]) -> None:
        for body in bodies:
            assert (await call(app, "POST", "/v1/payments", json_auth, body))[0]["status"] == 201

    def work(kind: str, count: int) -> list[Awaitable[None]]:
        if kind == "GET":
            return [reads(count // CALLERS) for _ in range(CALLERS)]
        bodies = [json.dumps(stripe_registration()).encode() for _ in range(count)]
        return [registrations(bodies[i::CALLERS]) for i in range(CALLERS)]

    watcher = await asyncpg.connect(database.replace("postgresql+asyncpg", "postgresql").split("?")[0])
    backends = Backends(watcher)
    try:
        await measure(work("GET", 800), 800, backends)  # warm-up: connections, prepared statements
        await measure(work("POST", 400), 400, backends)
        for number in range(rounds):
            got, registered = [
                await measure(work(kind, requests), requests, backends) for kind in ("GET", "POST")
            ]
            print(
                f"round {number}: GET {got[0]:.3f} ms CPU (PostgreSQL {got[1]:.3f}), "
                f"POST {registered[0]:.3f} ms CPU (PostgreSQL {registered[1]:.3f})",
                flush=True,
            )
        for kind in ("GET", "POST") if profile else ():
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            await measure(work(kind, requests), requests, backends)
            profiler.disable()
            profiler.dump_stats(f"{profile}.{kind}.prof")
    finally:
        await watcher.close()
        await app.state.matcher_wakeups.close()  # as the service's stop: the wake-up owed, sent
        await app.state.driver_pool.close()
        await app.state.engine.dispose()


def main(
    rounds: int = typer.Option(2, help="Rounds of reads then registrations"),
    requests: int = typer.Option(4000, help="Requests of each route a round"),
    profile: str | None = typer.Option(
        None, help="Profile one more round of each route to PROFILE.GET/POST.prof"
    ),
) -> None:
    """CPU ms a request of api-gateway's hot routes, in process."""
    admin = postgres.ensure_postgres()
    database = postgres.create_database(f"paysync_inproc_{uuid.uuid4().hex[:8]}", admin)
    try:
        upgrade(database)
        asyncio.run(run(database, rounds, requests, profile))
    finally:
        postgres.drop_database(postgres.database_name(database), admin)


if __name__ == "__main__":
    typer.run(main)
