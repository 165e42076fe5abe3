"""The gateway simulator for the end-to-end benchmark: the real simulator, plus one route of the bench's.

`POST /_bench/paid` makes payments at one account and pays them with the simulator's own use cases,
in-process (its control API answers ~200 requests a second: too slow to make tens of thousands), and
answers with the webhook each payment's success sends — the simulator's own body, signed now with the
simulator's own `signed_headers` (M-Pesa: its callback URL, which carries the tenant's token) — so
that the bench's load generator, not the simulator, sends it. The simulator keeps every payment, so
the reconciler's STK Push Queries that confirm M-Pesa callbacks get the simulator's answer.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated

import typer
import uvicorn
from fastapi import APIRouter, Depends
from pydantic import BaseModel

from paysync_core.contracts.common import Provider
from paysync_gateway_sim.app import create_app
from paysync_gateway_sim.config import SimConfig
from paysync_gateway_sim.contracts import Action, ActionRequest, PaymentSpec
from paysync_gateway_sim.runtime import Simulator, get_sim
from paysync_gateway_sim.webhooks import signed_headers

router = APIRouter(prefix="/_bench")

#: What each gateway's payments are, and the one webhook of a success that settles it in paysync.
KINDS = {
    Provider.STRIPE: ("checkout_session", "checkout.session.completed"),
    Provider.PAYSTACK: ("transaction", "charge.success"),
    Provider.MPESA: ("stk_push", "stkCallback"),
}


class PaidBatch(BaseModel):
    """`count` payments to make and pay at one account (M-Pesa: callbacks go to `callback_url`)."""

    account: str
    count: int
    amount_minor: int
    currency: str
    callback_url: str | None = None


class SignedWebhook(BaseModel):
    """One payment's settling webhook, as the gateway would send it now."""

    ref: str
    url: str | None
    body: str  # base64
    headers: dict[str, str]


@router.post("/paid")
async def paid(batch: PaidBatch, sim: Annotated[Simulator, Depends(get_sim)]) -> list[SignedWebhook]:
    """Make and pay `count` payments; each one's webhook, signed now, for the bench to send."""
    account = sim.account(batch.account)
    gateway = sim.gateway(account.provider)
    kind, label = KINDS[account.provider]
    spec = PaymentSpec(
        kind=kind, amount_minor=batch.amount_minor, currency=batch.currency, callback_url=batch.callback_url
    )
    now = int(time.time())
    made = []
    for _ in range(batch.count):
        ref, _ = gateway.create(account, spec)
        # gateway.act, not sim.act: the webhooks are returned, never queued for the simulator to send.
        hook = next(o for o in gateway.act(account, ref, Action.PAY, ActionRequest()) if o.label == label)
        made.append(
            SignedWebhook(
                ref=ref,
                url=hook.url,
                body=base64.b64encode(hook.body).decode(),
                headers=signed_headers(hook, account, now),
            )
        )
    return made


def main(port: int = typer.Option(..., help="Port to serve on")) -> None:
    """Serve the simulator (no rate limits: the bench measures paysync, not the budgets) until SIGTERM."""
    app = create_app(
        SimConfig(
            stripe_rate_limit=None, paystack_rate_limit=None, daraja_rate_limit=None, stk_timeout_seconds=None
        )
    )
    app.include_router(router)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    typer.run(main)
