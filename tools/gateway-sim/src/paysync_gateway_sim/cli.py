"""`paysync-gateway-sim`: serve the simulator, and drive scenarios on a running one."""

from __future__ import annotations

import json
import os
import uuid

import typer
from rich.console import Console
from rich.table import Table

from paysync_gateway_sim import app_checkout
from paysync_gateway_sim.client import URL_ENV, SimulatorClient, SimulatorError
from paysync_gateway_sim.config import STRIPE_TEST_MODE_RATE, SimConfig
from paysync_gateway_sim.contracts import Action, Faults, Provider, WebhookFaults

DEFAULT_PORT = 8010

app = typer.Typer(
    help="A Stripe/Paystack/Daraja simulator with signed webhooks and faults.", no_args_is_help=True
)
scenario_app = typer.Typer(help="Drive a running simulator: customer pays, cancels, …", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")
console = Console()

_URL = typer.Option(
    os.environ.get(URL_ENV, f"http://127.0.0.1:{DEFAULT_PORT}"),
    "--url",
    help=f"The running simulator (env {URL_ENV})",
)

_API = typer.Option(
    os.environ.get("PAYSYNC_SIM_APP_API", app_checkout.DEMO_API),
    "--api",
    help="paysync's API, which starts the demo tenant's new payments (env PAYSYNC_SIM_APP_API)",
)
_API_KEY = typer.Option(
    os.environ.get("PAYSYNC_SIM_APP_API_KEY", app_checkout.DEMO_API_KEY),
    "--api-key",
    help="The API key it is called with (env PAYSYNC_SIM_APP_API_KEY; default: the demo tenant's)",
)

_THROUGH = typer.Option(
    None,
    "--through-paysync/--direct",
    help="Start a new payment through paysync's API, or make it at the simulator only "
    "(default: through paysync for the demo accounts)",
)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
    port: int = typer.Option(DEFAULT_PORT, help="Port to listen on"),
    seed: int = typer.Option(0, help="Seed of every fault decision"),
    stripe_rate_limit: float = typer.Option(STRIPE_TEST_MODE_RATE, help="Requests/s per Stripe account"),
    paystack_rate_limit: float = typer.Option(0, help="Requests/s per Paystack account; 0: none"),
    daraja_rate_limit: float = typer.Option(0, help="Requests/s per Daraja app; 0: none"),
    drop_ratio: float = typer.Option(0, help="Default share of webhooks dropped"),
    duplicate_ratio: float = typer.Option(0, help="Default share of webhooks sent twice"),
    delay_max: float = typer.Option(0, help="Default random delay of webhooks, up to this many seconds"),
    reorder_window: int = typer.Option(0, help="Default: hold N webhooks and release them newest first"),
    stk_timeout: float = typer.Option(60, help="Seconds until an unanswered STK prompt ends; 0: never"),
    token_ttl: int = typer.Option(3599, help="Daraja access token lifetime in seconds"),
    retry_schedule: str = typer.Option("0.2,0.5,1,2,4", help="Seconds between webhook retries"),
    log_level: str = typer.Option("info", help="Log level"),
) -> None:
    """Run the simulator: Stripe at /stripe, Paystack at /paystack, Daraja at /daraja, control at /_sim."""
    import uvicorn

    from paysync_core.logging import configure_logging
    from paysync_gateway_sim.app import create_app

    configure_logging("gateway-sim", level=log_level, json=False)
    config = SimConfig(
        seed=seed,
        stripe_rate_limit=stripe_rate_limit,
        paystack_rate_limit=paystack_rate_limit,
        daraja_rate_limit=daraja_rate_limit,
        token_ttl_seconds=token_ttl,
        webhook_retry_schedule=tuple(float(s) for s in retry_schedule.split(",") if s.strip()),
        stk_timeout_seconds=stk_timeout or None,
        default_faults=Faults(
            webhooks=WebhookFaults(
                drop_ratio=drop_ratio,
                duplicate_ratio=duplicate_ratio,
                delay_max=delay_max,
                reorder_window=reorder_window,
            )
        ),
    )
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level.lower(), access_log=False)


@app.command()
def account(
    provider: Provider = typer.Argument(..., help="stripe, paystack or mpesa"),
    account_id: str | None = typer.Option(None, "--id", help="Account id (generated if left out)"),
    webhook_url: str | None = typer.Option(None, help="Where webhooks go (M-Pesa: default CallBackURL)"),
    url: str = _URL,
) -> None:
    """Create an account and print its credentials (JSON)."""
    with SimulatorClient(url) as client:
        created = client.create_account(provider, id=account_id, webhook_url=webhook_url)
    console.print_json(created.model_dump_json())


@scenario_app.command("run")
def run_step(
    action: Action = typer.Argument(..., help="pay, fail, cancel, abandon, expire, process, refund, dispute"),
    provider: Provider = typer.Argument(..., help="stripe, paystack or mpesa"),
    account_id: str | None = typer.Option(None, "--account", help="Account id (default: demo-<provider>)"),
    ref: str | None = typer.Option(None, "--ref", help="The payment; left out, a new one is created first"),
    amount: int = typer.Option(2000, help="Amount in minor units for a new payment"),
    metadata: str | None = typer.Option(None, help="JSON metadata for a new payment"),
    outcome: str = typer.Option("open", help="dispute: open, won or lost"),
    refund_amount: int | None = typer.Option(None, help="refund: minor units (default: the rest)"),
    url: str = _URL,
    api: str = _API,
    api_key: str = _API_KEY,
    through_paysync: bool | None = _THROUGH,
) -> None:
    """Apply one step to a payment (creating the account and payment if needed) and print the result.

    A new payment of the demo tenant's account (`demo-<provider>`) is started the way an app starts
    one, through paysync's `POST /v1/payments/checkout` (`--api`), so paysync knows it; other
    accounts get theirs made at the simulator directly.
    """
    with SimulatorClient(url) as client:
        demo = account_id is None or account_id == f"demo-{provider.value}"
        demo = demo if through_paysync is None else through_paysync
        account_id = account_id or f"demo-{provider.value}"
        try:
            client.account(account_id)
        except SimulatorError:
            client.create_account(provider, id=account_id)
        if ref is None and demo:
            ref = _started_through_paysync(api, api_key, provider, amount)
        elif ref is None:
            ref = client.create_payment(
                account_id, amount_minor=amount, metadata=json.loads(metadata) if metadata else None
            ).ref
        options: dict[str, object] = {"outcome": outcome} if action is Action.DISPUTE else {}
        if action is Action.REFUND and refund_amount:
            options["amount_minor"] = refund_amount
        try:
            result = client.act(account_id, ref, action, **options)
        except SimulatorError as exc:
            console.print(f"[red]{exc.status}[/red] {exc.detail}")
            raise typer.Exit(1) from exc
    console.print(f"[bold]{provider.value}[/bold] {ref}: {result.payment.status}")
    console.print(f"webhooks: {', '.join(result.webhooks) or '(none: the gateway sends none for this)'}")


def _started_through_paysync(api: str, api_key: str, provider: Provider, amount: int) -> str:
    entity_id = f"sim-{uuid.uuid4().hex[:8]}"
    try:
        started = app_checkout.start_checkout(api, api_key, provider.value, amount, entity_id)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(
        f"started through paysync: payment {started['payment_id']} "
        f"({app_checkout.DEMO_DOMAINS[provider.value]} {entity_id})"
    )
    return str(started["provider_ref"])


def _step_command(action: Action) -> None:
    """`scenario <action> <provider> --account … --ref …`: a shortcut of `scenario run <action>`."""

    def command(
        provider: Provider = typer.Argument(..., help="stripe, paystack or mpesa"),
        account_id: str | None = typer.Option(None, "--account"),
        ref: str | None = typer.Option(None, "--ref"),
        amount: int = typer.Option(2000),
        url: str = _URL,
        api: str = _API,
        api_key: str = _API_KEY,
        through_paysync: bool | None = _THROUGH,
    ) -> None:
        run_step(
            action, provider, account_id, ref, amount, None, "open", None, url, api, api_key, through_paysync
        )

    command.__doc__ = f"The `{action.value}` step on a payment (a new one unless --ref)."
    scenario_app.command(action.value)(command)


for _action in Action:
    _step_command(_action)


@app.command()
def stats(url: str = _URL) -> None:
    """Print every account's API and webhook counters."""
    with SimulatorClient(url) as client:
        found = client.stats()
    table = Table(
        "account",
        "requests",
        "over limit",
        "injected",
        "queued",
        "delivered",
        "dropped",
        "duplicated",
        "gave up",
        "no endpoint",
        "pending",
    )
    for name, s in sorted(found.accounts.items()):
        injected = s.api.injected_rate_limit + s.api.injected_server_error + s.api.injected_quota
        table.add_row(
            name,
            *(
                str(v)
                for v in (
                    s.api.requests,
                    s.api.over_limit,
                    injected,
                    s.webhooks.queued,
                    s.webhooks.delivered,
                    s.webhooks.dropped,
                    s.webhooks.duplicated,
                    s.webhooks.gave_up,
                    s.webhooks.no_endpoint,
                    s.webhooks.pending,
                )
            ),
        )
    console.print(table)


def main() -> None:
    """Console-script entry point."""
    app()
