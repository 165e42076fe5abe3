"""`make dev`: the whole system on this machine, a demo tenant at the gateway simulator, and a try.

The demo tenant's gateways are accounts of the gateway simulator (started with the services):
the reconciler's sweeps ask it, its webhooks go to webhook-ingest, and no real gateway is called.
"""

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

from paysync_core.credentials import GatewayCredentials
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import tenants as tenant_repo
from paysync_core.db.engine import make_engine, upgrade
from paysync_core.kafka import provision_topics
from paysync_dev import kafka, paths, postgres
from paysync_dev.simulator import simulator_credentials
from paysync_dev.stack import SERVICES, ServiceProcess, start_stack, stop_stack
from paysync_gateway_sim import SimulatorClient
from paysync_gateway_sim.cli import DEFAULT_PORT as SIM_PORT
from paysync_gateway_sim.contracts import Account
from paysync_gateway_sim.process import SimulatorProcess

DEMO_TENANT = "demo"
DEMO_API_KEY = "psk_demo_local_only_not_a_secret"
DEMO_STRIPE_WEBHOOK_SECRET = "whsec_demo_local_only_not_a_secret"  # noqa: S105 - the local demo's own value, documented in the README
DEMO_MPESA_CALLBACK_TOKEN = "demo_callback_token_local_only"  # noqa: S105 - the local demo's own value, documented in the README
INGEST = f"http://127.0.0.1:{SERVICES['webhook-ingest'][2]}"
API = f"http://127.0.0.1:{SERVICES['api-gateway'][2]}"
SIM = f"http://127.0.0.1:{SIM_PORT}"
#: The simulator's accounts of the demo tenant: the names `paysync-gateway-sim scenario` uses by default.
DEMO_ACCOUNTS = {provider: f"demo-{provider}" for provider in ("stripe", "paystack", "mpesa")}

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


def _demo_accounts(sim: SimulatorClient) -> dict[str, Account]:
    """The demo tenant's account at each simulated gateway, whose webhooks go to webhook-ingest."""
    hooks = f"{INGEST}/webhooks/{DEMO_TENANT}"
    return {
        "stripe": sim.create_account(
            "stripe",
            id=DEMO_ACCOUNTS["stripe"],
            webhook_url=f"{hooks}/stripe",
            webhook_secret=DEMO_STRIPE_WEBHOOK_SECRET,
        ),
        "paystack": sim.create_account(
            "paystack", id=DEMO_ACCOUNTS["paystack"], webhook_url=f"{hooks}/paystack"
        ),
        "mpesa": sim.create_account(
            "mpesa", id=DEMO_ACCOUNTS["mpesa"], webhook_url=f"{hooks}/mpesa/{DEMO_MPESA_CALLBACK_TOKEN}"
        ),
    }


async def _prepare(bootstrap: str, database_url: str, keys: str, credentials: GatewayCredentials) -> None:
    await asyncio.to_thread(upgrade, database_url)
    await provision_topics(bootstrap)
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await tenant_repo.create_tenant(conn, DEMO_TENANT, "Demo workshop")
            await tenant_repo.install_api_key(conn, DEMO_TENANT, DEMO_API_KEY)
            await tenant_repo.set_credentials(conn, DEMO_TENANT, credentials, CredentialsCipher(keys))
    finally:
        await engine.dispose()


@app.command("run")
def run() -> None:
    """Broker, database, migrations, topics, gateway simulator, demo tenant, the services until Ctrl-C."""
    started = time.monotonic()
    bootstrap = kafka.start()
    database_url = os.environ.get("PAYSYNC_DATABASE_URL") or postgres.ensure_postgres()
    keys = os.environ.get("PAYSYNC_CREDENTIALS_KEYS") or _dev_credentials_key()
    log_dir = paths.local_dir() / "logs"
    simulator = SimulatorProcess.start(port=SIM_PORT, log_path=log_dir / "gateway-sim.log", log_level="info")
    try:
        with SimulatorClient(simulator.url) as sim:
            credentials = simulator_credentials(
                sim,
                _demo_accounts(sim),
                stripe_webhook_secret=DEMO_STRIPE_WEBHOOK_SECRET,
                callback_token=DEMO_MPESA_CALLBACK_TOKEN,
            )
        asyncio.run(_prepare(bootstrap, database_url, keys, credentials))
        env = {
            "PAYSYNC_KAFKA_BOOTSTRAP": bootstrap,
            "PAYSYNC_DATABASE_URL": database_url,
            "PAYSYNC_CREDENTIALS_KEYS": keys,
            "PAYSYNC_LOG_JSON": "true",
        }
        procs = start_stack(env, log_dir, ports={name: port for name, (_, _, port) in SERVICES.items()})
    except BaseException:
        simulator.stop()
        raise
    _print_running(time.monotonic() - started, bootstrap, database_url, procs, simulator)
    watched = {**{name: proc.process for name, proc in procs.items()}, "gateway simulator": simulator.process}
    stop = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            for name, process in watched.items():
                if process is not None and process.poll() is not None:
                    tail = procs[name].log_tail() if name in procs else simulator.log_path.read_text()[-2000:]
                    console.print(f"[red]{name} exited[/]:\n{tail}")
                    stop.set()
            await asyncio.wait([asyncio.create_task(stop.wait())], timeout=1)

    try:
        asyncio.run(wait())
    finally:
        console.print("stopping services…")
        stop_stack(procs)
        simulator.stop()


def _print_running(
    took: float,
    bootstrap: str,
    database_url: str,
    procs: dict[str, ServiceProcess],
    simulator: SimulatorProcess,
) -> None:
    """Where everything runs, the demo tenant, and what to try next."""
    console.print(
        f"[green]paysync is up[/] in {took:.1f}s "
        f"(Apache Kafka {kafka.version()} at {bootstrap}; "
        f"PostgreSQL at {postgres.redact(database_url)})"
    )
    for name, proc in procs.items():
        console.print(f"  {name:<17} {proc.url}   (log: {proc.log_path})")
    console.print(f"  API docs          {API}/docs")
    console.print(f"  gateway simulator {simulator.url}   (log: {simulator.log_path})")
    console.print(
        f"\nDemo tenant [bold]{DEMO_TENANT}[/], API key {DEMO_API_KEY}; its Stripe, Paystack and "
        f"M-Pesa accounts at the simulator: {', '.join(DEMO_ACCOUNTS.values())}"
    )
    console.print("Try a payment (in another terminal):  [bold]make try[/]\nCtrl-C stops the services.")


@app.command("try")
def try_payment(amount_minor: int = 12500, currency: str = "USD") -> None:
    """A customer pays a job's Checkout Session at the simulated Stripe; its signed webhook; the result."""
    auth = {"Authorization": f"Bearer {DEMO_API_KEY}"}
    account = DEMO_ACCOUNTS["stripe"]
    job_id = f"job-{uuid.uuid4().hex[:6]}"
    with SimulatorClient(SIM) as sim:
        session = sim.create_payment(
            account,
            kind="checkout_session",
            amount_minor=amount_minor,
            currency=currency.lower(),
            client_reference_id=job_id,
        )
        registered = httpx.post(
            f"{API}/v1/payments",
            headers=auth,
            json={
                "provider": "stripe",
                "provider_ref": session.ref,
                "domain": "jobs",
                "entity_id": job_id,
                "amount_minor": amount_minor,
                "currency": currency,
            },
        )
        registered.raise_for_status()
        payment = registered.json()
        console.print(
            f"registered Checkout Session {session.ref} (payment {payment['id']}) "
            f"for job {job_id}: [bold]{payment['status']}[/]"
        )

        started = time.monotonic()
        paid = sim.pay(account, session.ref)
        console.print(f"the customer paid at the simulated Stripe; it sends {', '.join(paid.webhooks)}")
        while True:
            current = httpx.get(f"{API}/v1/payments/{payment['id']}", headers=auth).json()
            elapsed = time.monotonic() - started
            if current["status"] == "succeeded" or elapsed > 10:
                break
            time.sleep(0.02)
        for delivery in sim.deliveries(account, label="checkout.session.completed"):
            if delivery.ref == session.ref and delivery.outcome in ("delivered", "failed", "gave_up"):
                console.print(
                    f"signed checkout.session.completed {delivery.outcome}: "
                    f"HTTP {delivery.status_code or delivery.error}"
                )
    console.print(f"after {elapsed * 1000:.0f} ms: [bold]{current['status']}[/]")
    console.print_json(json.dumps(current))
    if current["status"] != "succeeded":
        raise typer.Exit(1)


def main() -> None:
    """Entry point of `python -m paysync_dev.demo`."""
    app()


if __name__ == "__main__":
    main()
