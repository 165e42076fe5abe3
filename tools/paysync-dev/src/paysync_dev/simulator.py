"""Tenants whose gateways are the simulator's accounts: credentials that never reach a real gateway."""

from __future__ import annotations

from collections.abc import Mapping

from paysync_core.credentials import (
    GatewayCredentials,
    MpesaCredentials,
    PaystackCredentials,
    StripeCredentials,
)
from paysync_gateway_sim import SimulatorClient
from paysync_gateway_sim.contracts import Account

#: Where placeholder credentials send API calls: nothing listens there, so asking a gateway with
#: them fails at once on this machine instead of reaching a real one.
NOWHERE = "http://127.0.0.1:9"


def simulator_credentials(
    sim: SimulatorClient, accounts: Mapping[str, Account], *, stripe_webhook_secret: str, callback_token: str
) -> GatewayCredentials:
    """Credentials that point each gateway with an account in `accounts` at that simulator account."""
    stripe, paystack, mpesa = (accounts.get(p) for p in ("stripe", "paystack", "mpesa"))
    return GatewayCredentials(
        stripe=StripeCredentials(
            secret_key=stripe.secret_key or "",
            webhook_secrets=(stripe_webhook_secret,),
            api_base=sim.stripe_base,
        )
        if stripe
        else None,
        paystack=PaystackCredentials(secret_key=paystack.secret_key or "", api_base=sim.paystack_base)
        if paystack
        else None,
        mpesa=MpesaCredentials(
            consumer_key=mpesa.consumer_key or "",
            consumer_secret=mpesa.consumer_secret or "",
            shortcode=mpesa.shortcode or "",
            till_number=mpesa.till_number,
            passkey=mpesa.passkey or "",
            callback_token=callback_token,
            api_base=sim.daraja_base,
        )
        if mpesa
        else None,
    )
