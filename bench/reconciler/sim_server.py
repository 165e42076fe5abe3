"""The gateway simulator for the benchmark: filled through its own use cases in-process, then served.

Creating 100,000 payments over the control API takes the simulator a quarter of an hour (it
answers about 200 control requests a second); calling the same use cases in-process takes
seconds and leaves the same state. The Stripe API it then serves is the simulator's own, with
Stripe's test-mode rate limit enforced and counted.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import typer
import uvicorn

from paysync_gateway_sim.app import create_app
from paysync_gateway_sim.config import STRIPE_TEST_MODE_RATE, SimConfig
from paysync_gateway_sim.contracts import (
    AccountSpec,
    Action,
    ActionRequest,
    Faults,
    PaymentSpec,
    WebhookFaults,
)


def main(
    port: int = typer.Option(..., help="Port to serve on"),
    payments: int = typer.Option(100_000, help="Checkout Sessions to create"),
    open_share: float = typer.Option(0.03, help="Share left open"),
    expired_share: float = typer.Option(0.25, help="Share expired (the rest are paid)"),
    out: Path = typer.Option(..., help="Where to write the account and the references"),
) -> None:
    """Create the account and its payments, write them to `out`, then serve until SIGTERM."""
    app = create_app(SimConfig(stripe_rate_limit=STRIPE_TEST_MODE_RATE))
    sim = app.state.sim
    account = sim.create_account(
        AccountSpec(provider="stripe", id="bench", faults=Faults(webhooks=WebhookFaults(drop_ratio=1.0)))
    )
    outcomes: list[str | None] = [None] * int(payments * open_share)
    outcomes += ["expire"] * int(payments * expired_share)
    outcomes += ["pay"] * (payments - len(outcomes))
    random.Random(42).shuffle(outcomes)
    made: dict[str, str] = {}
    for outcome in outcomes:
        ref = sim.create_payment(
            account.id, PaymentSpec(kind="checkout_session", amount_minor=2000, currency="usd")
        ).payment.ref
        if outcome is not None:
            sim.act(account.id, ref, Action(outcome), ActionRequest())
        made[ref] = outcome or "open"
    out.write_text(
        json.dumps(
            {
                "account": account.id,
                "secret_key": account.secret_key,
                "events": len(account.stripe.events),
                "payments": made,
            }
        )
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    typer.run(main)
