"""`make dev`: the whole system on this machine, a demo tenant, and one command to try it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid

import httpx
import typer
from cryptography.fernet import Fernet
from rich.console import Console

from paysync_core.credentials import GatewayCredentials, StripeCredentials
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import tenants as tenant_repo
from paysync_core.db.engine import make_engine, upgrade
from paysync_core.kafka import provision_topics
from paysync_core.providers.stripe import sign_stripe
from paysync_core.testing.builders.stripe import checkout_session, stripe_event, to_body
from paysync_dev import kafka, paths, postgres
from paysync_dev.stack import SERVICES, start_stack, stop_stack

DEMO_TENANT = "demo"
DEMO_API_KEY = "psk_demo_local_only_not_a_secret"
DEMO_STRIPE_WEBHOOK_SECRET = "whsec_demo_local_only_not_a_secret"
INGEST = f"http://127.0.0.1:{SERVICES['webhook-ingest'][2]}"
API = f"http://127.0.0.1:{SERVICES['api-gateway'][2]}"

app = typer.Typer(help="Run paysync locally and try a payment.", no_args_is_help=True)
console = Console()


def _dev_credentials_key() -> str:
    """A credentials key kept under .local/, made once, so restarts can read what was stored."""
    path = paths.local_dir() / "dev-credentials.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


async def _prepare(bootstrap: str, database_url: str, keys: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    await provision_topics(bootstrap)
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await tenant_repo.create_tenant(conn, DEMO_TENANT, "Demo workshop")
            await tenant_repo.install_api_key(conn, DEMO_TENANT, DEMO_API_KEY)
            await tenant_repo.set_credentials(conn, DEMO_TENANT, GatewayCredentials(
                stripe=StripeCredentials(secret_key="sk_test_demo", webhook_secrets=(DEMO_STRIPE_WEBHOOK_SECRET,)),
            ), CredentialsCipher(keys))
    finally:
        await engine.dispose()


@app.command("run")
def run() -> None:
    """Broker, database, migrations, topics, demo tenant, and the five services until Ctrl-C."""
    started = time.monotonic()
    bootstrap = kafka.start()
    database_url = os.environ.get("PAYSYNC_DATABASE_URL") or postgres.ensure_postgres()
    keys = os.environ.get("PAYSYNC_CREDENTIALS_KEYS") or _dev_credentials_key()
    asyncio.run(_prepare(bootstrap, database_url, keys))
    env = {"PAYSYNC_KAFKA_BOOTSTRAP": bootstrap, "PAYSYNC_DATABASE_URL": database_url,
           "PAYSYNC_CREDENTIALS_KEYS": keys, "PAYSYNC_LOG_JSON": "true"}
    log_dir = paths.local_dir() / "logs"
    procs = start_stack(env, log_dir, ports={name: port for name, (_, _, port) in SERVICES.items()})
    console.print(f"[green]paysync is up[/] in {time.monotonic() - started:.1f}s "
                  f"(Apache Kafka {kafka.version()} at {bootstrap}; PostgreSQL at {postgres.redact(database_url)})")
    for name, proc in procs.items():
        console.print(f"  {name:<17} {proc.url}   (log: {proc.log_path})")
    console.print(f"  API docs          {API}/docs")
    console.print(f"\nDemo tenant [bold]{DEMO_TENANT}[/], API key {DEMO_API_KEY}")
    console.print("Try a payment (in another terminal):  [bold]make try[/]\nCtrl-C stops the services.")
    stop = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            for name, proc in procs.items():
                if proc.process and proc.process.poll() is not None:
                    console.print(f"[red]{name} exited[/]:\n{proc.log_tail()}")
                    stop.set()
            await asyncio.wait([asyncio.create_task(stop.wait())], timeout=1)

    try:
        asyncio.run(wait())
    finally:
        console.print("stopping services…")
        stop_stack(procs)


@app.command("try")
def try_payment(amount_minor: int = 12500, currency: str = "USD") -> None:
    """Register a Stripe Checkout payment for a job, send its signed webhook, read the result."""
    auth = {"Authorization": f"Bearer {DEMO_API_KEY}"}
    session_id = f"cs_test_{uuid.uuid4().hex}"
    job_id = f"job-{uuid.uuid4().hex[:6]}"
    registered = httpx.post(f"{API}/v1/payments", headers=auth, json={
        "provider": "stripe", "provider_ref": session_id, "domain": "jobs", "entity_id": job_id,
        "amount_minor": amount_minor, "currency": currency})
    registered.raise_for_status()
    payment = registered.json()
    console.print(f"registered payment {payment['id']} for job {job_id}: [bold]{payment['status']}[/]")

    body = to_body(stripe_event("checkout.session.completed", checkout_session(
        id=session_id, payment_status="paid", amount_total=amount_minor, currency=currency.lower())))
    started = time.monotonic()
    sent = httpx.post(f"{INGEST}/webhooks/{DEMO_TENANT}/stripe", content=body, headers={
        "Stripe-Signature": sign_stripe(body, DEMO_STRIPE_WEBHOOK_SECRET, int(time.time())),
        "Content-Type": "application/json"})
    console.print(f"signed checkout.session.completed delivered: HTTP {sent.status_code}")
    while True:
        current = httpx.get(f"{API}/v1/payments/{payment['id']}", headers=auth).json()
        elapsed = time.monotonic() - started
        if current["status"] == "succeeded" or elapsed > 10:
            break
        time.sleep(0.02)
    console.print(f"after {elapsed * 1000:.0f} ms: [bold]{current['status']}[/]")
    console.print_json(json.dumps(current))
    if current["status"] != "succeeded":
        raise typer.Exit(1)


def main() -> None:
    """Entry point of `python -m paysync_dev.demo`."""
    app()


if __name__ == "__main__":
    main()
