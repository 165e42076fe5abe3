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
from paysync_gateway_sim.app_checkout import DEMO_API_KEY, DEMO_DOMAINS, start_checkout
from paysync_gateway_sim.cli import DEFAULT_PORT as SIM_PORT
from paysync_gateway_sim.contracts import Account
from paysync_gateway_sim.process import SimulatorProcess

DEMO_TENANT = "demo"
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


#: What each outcome does at the simulator (after a payment when money must have moved first), and the
#: statuses it may end in (a cancelled Stripe Checkout Session is `expired`, as at Stripe).
OUTCOMES: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "pay": (("pay",), frozenset({"succeeded"})),
    "fail": (("fail",), frozenset({"failed"})),
    "cancel": (("cancel",), frozenset({"canceled", "expired", "failed"})),
    "expire": (("expire",), frozenset({"expired", "canceled", "failed"})),
    "refund": (("pay", "refund"), frozenset({"refunded"})),
    "dispute": (("pay", "dispute"), frozenset({"disputed"})),
}
_NO_MONEY_BACK = {"mpesa"}  # Daraja has no refund or dispute that paysync follows (nor does the simulator)


@app.command("try")
def try_payment(
    gateway: str = typer.Option("stripe", help="stripe, paystack or mpesa"),
    outcome: str = typer.Option("pay", help="pay, fail, cancel, expire, refund or dispute"),
    amount_minor: int = typer.Option(12500, help="Minor units (M-Pesa: whole shillings, a multiple of 100)"),
    api: str = typer.Option(API, help="paysync's API"),
    api_key: str = typer.Option(DEMO_API_KEY, help="The tenant's API key"),
    sim_url: str = typer.Option(SIM, "--sim", help="The gateway simulator"),
    account: str | None = typer.Option(None, help="The tenant's simulator account (default demo-<gateway>)"),
    timeout: float = typer.Option(60.0, help="Seconds to wait for the outcome to show in the API"),
) -> None:
    """Start a payment through `POST /v1/payments/checkout`, drive its outcome at the simulator, and
    print its status and its domain entity's payments from the API as they change."""
    if gateway not in DEMO_ACCOUNTS or outcome not in OUTCOMES:
        raise typer.BadParameter(
            f"GATEWAY is one of {sorted(DEMO_ACCOUNTS)}, OUTCOME one of {sorted(OUTCOMES)}"
        )
    if gateway in _NO_MONEY_BACK and outcome in ("refund", "dispute"):
        console.print(f"[red]{gateway} has no {outcome} in paysync (nor at the simulator)[/]")
        raise typer.Exit(2)
    steps, ends = OUTCOMES[outcome]
    entity_id = f"demo-{uuid.uuid4().hex[:6]}"
    try:
        started = start_checkout(api, api_key, gateway, amount_minor, entity_id)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    domain = DEMO_DOMAINS[gateway]
    console.print(
        f"started through POST /v1/payments/checkout: {gateway} {started['provider_ref']} "
        f"(payment {started['payment_id']}, {domain} {entity_id}): [bold]{started['status']}[/]"
    )
    shown = {k: v for k, v in started.items() if k in _FRONT_END_FIELDS and v}
    console.print(f"what the front end gets: {json.dumps(shown)}")
    watch = _Watch(api, api_key, started["payment_id"], domain, entity_id)
    watch.show()
    with SimulatorClient(sim_url) as sim:
        for step in steps:
            result = sim.act(account or DEMO_ACCOUNTS[gateway], started["provider_ref"], step)
            sent = ", ".join(result.webhooks) or "nothing"
            console.print(f"at the simulated gateway: [bold]{step}[/] → it sends {sent}")
            wanted = frozenset({"succeeded"}) if step != steps[-1] else ends
            if not watch.until(wanted, timeout):
                console.print(
                    f"[red]the API did not show {' or '.join(sorted(wanted))} within {timeout:.0f} s[/]"
                )
                raise typer.Exit(1)
    console.print(f"[green]{gateway} {outcome}: the API shows {watch.status}[/]")


_FRONT_END_FIELDS = ("checkout_url", "session_id", "access_code", "checkout_request_id", "customer_message")


class _Watch:
    """The payment and its entity as the API shows them; printed each time they change."""

    def __init__(self, api: str, api_key: str, payment_id: str, domain: str, entity_id: str) -> None:
        self._http = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
        self._payment = f"/v1/payments/{payment_id}"
        self._entity = f"/v1/domains/{domain}/{entity_id}/payments"
        self._label = f"{domain} {entity_id}"
        self.status = ""
        self._last: object = None

    def show(self) -> None:
        """Read both once; print what changed."""
        payment = self._http.get(self._payment).json()
        entity = [
            {
                k: p[k]
                for k in ("provider_ref", "status", "amount_received_minor", "paid_at", "sends")
                if k in p
            }
            for p in self._http.get(self._entity).json()["items"]
        ]
        seen = (payment["status"], payment["amount_received_minor"], payment["amount_refunded_minor"], entity)
        if seen != self._last:
            self._last, self.status = seen, payment["status"]
            console.print(f"  payment: [bold]{payment['status']}[/]  {self._label}: {json.dumps(entity)}")

    def until(self, statuses: frozenset[str], timeout: float) -> bool:
        """Watch until the payment shows one of `statuses`; False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.show()
            if self.status in statuses:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


def main() -> None:
    """Entry point of `python -m paysync_dev.demo`."""
    app()


if __name__ == "__main__":
    main()
