"""Checkouts whose api-gateway process died between the gateway call and the registration.

api-gateway records a checkout before it calls the gateway; a checkout still `initiating` long after
(`PAYSYNC_RECONCILER_CHECKOUT_GRACE_SECONDS`) lost its answer. A Stripe one whose call was under way
is finished: the session is created again with the same arguments and idempotency key, which makes
Stripe answer with the session it made the first time, and that session is registered. The others
end `expired` (Paystack's payment was registered before the call and is checked like any other; an
M-Pesa push cannot be looked up by our reference: its callback, if paid, is parked and becomes a
payment as a success with no record) or, when the last call failed with a known error, `failed`.
"""

from __future__ import annotations

from typing import Any

import httpx
import structlog

from paysync_core.checkout import stripe_session_args
from paysync_core.errors import GatewayError
from paysync_core.providers.clients import Initiated, StripeGatewayClient
from paysync_core.providers.modes import credentials_mode
from paysync_core.tls import client_tls
from paysync_reconciler.ports import Deps
from paysync_reconciler.repository import checkouts as checkouts_repo
from paysync_reconciler.repository import unrecorded as unrecorded_repo

log = structlog.get_logger()

_BATCH = 100  # checkouts settled per round, at most


async def settle_initiating_checkouts(deps: Deps) -> int:
    """Finish or expire the checkouts left `initiating`, one transaction each; how many were settled.

    First, M-Pesa payments pushed again after their checks ended are checked again.
    """
    async with deps.engine.begin() as conn:
        rearmed = await checkouts_repo.rearm_retried_pushes(conn)
    if rearmed:
        log.info("checkout.checks_rearmed", payments=rearmed)
    settled = 0
    while settled < _BATCH:
        async with deps.engine.begin() as conn:
            checkout = await checkouts_repo.claim_initiating(conn, deps.settings.checkout_grace_seconds)
            if checkout is None:
                break
            await _settle(deps, conn, checkout)
        settled += 1
    return settled


async def _settle(deps: Deps, conn: Any, checkout: Any) -> None:
    fields = {
        "tenant": checkout.tenant_id,
        "provider": checkout.provider,
        "payment_id": str(checkout.payment_id),
    }
    if checkout.provider != "stripe" or checkout.sending_since is None:
        outcome = "expired" if checkout.sending_since is not None or not checkout.last_error else "failed"
        await checkouts_repo.settle(conn, checkout, outcome, error=checkout.last_error)
        log.info("checkout.settled", outcome=outcome, **fields)
        return
    try:
        credentials = await deps.gateways.credentials(checkout.tenant_id)
        if credentials.stripe is None:
            raise GatewayError("no Stripe credentials any more", provider="stripe", retryable=False)
        async with httpx.AsyncClient(verify=client_tls()) as http:
            client = StripeGatewayClient(checkout.tenant_id, credentials.stripe, http)
            started = await client.create_checkout_session(
                **stripe_session_args(checkout.payment_id, checkout.request)
            )
    except GatewayError as exc:
        # Later (touched, so the others come first) when retrying can help; failed when it cannot.
        state = "initiating" if exc.retryable else "failed"
        await checkouts_repo.settle(conn, checkout, state, error=f"{exc.code}: {exc}"[:500])
        log.warning("checkout.settle_failed", error=exc.code, state=state, **fields)
        return
    await _register(conn, checkout, started, credentials_mode(credentials.stripe))
    log.info("checkout.settled", outcome="started", session_id=started.provider_ref, **fields)


async def _register(conn: Any, checkout: Any, started: Initiated, mode: str | None) -> None:
    """Register the session as api-gateway would have, and keep the answer a repeat of the request gets."""
    request = checkout.request
    values = {
        "id": checkout.payment_id,
        "tenant_id": checkout.tenant_id,
        "provider": "stripe",
        "provider_ref": started.provider_ref,
        "domain": request["domain"],
        "entity_id": request["entity_id"],
        "amount_minor": request["amount_minor"],
        "currency": request["currency"],
        "metadata": {"started_by": "checkout", "finished_by": "reconciler"},
        "mode": mode,
    }
    await unrecorded_repo.create_payment(conn, values, [started.provider_ref])
    answer = {
        "payment_id": str(checkout.payment_id),
        "provider": "stripe",
        "provider_ref": started.provider_ref,
        "session_id": started.provider_ref,
        "checkout_url": started.checkout_url,
        "status": "pending",
        "sends": 1,
    }
    await checkouts_repo.settle(conn, checkout, "started", answer=answer)
