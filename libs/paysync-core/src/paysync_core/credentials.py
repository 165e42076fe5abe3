"""Per-tenant gateway credentials: what is stored encrypted for each gateway."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Credentials(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StripeCredentials(_Credentials):
    """A tenant's Stripe account: API key and the webhook endpoint secrets in force."""

    secret_key: SecretStr
    webhook_secrets: tuple[SecretStr, ...] = Field(
        min_length=1, description="Several during a rotation; any of them verifies"
    )
    tolerance_seconds: int = Field(default=300, ge=1)
    api_base: str | None = Field(default=None, description="Override for tests and the simulator")


class PaystackCredentials(_Credentials):
    """A tenant's Paystack integration: the secret key signs webhooks and calls the API."""

    secret_key: SecretStr
    allowed_ips: tuple[str, ...] = ()
    ip_policy: Literal["enforce", "log"] = "log"
    api_base: str | None = None


class MpesaCredentials(_Credentials):
    """A tenant's Daraja app and till: OAuth keys, shortcode, passkey and the callback token."""

    consumer_key: SecretStr
    consumer_secret: SecretStr
    shortcode: str = Field(description="BusinessShortCode: the PayBill number, or a till's store number")
    till_number: str | None = Field(
        default=None,
        description="Buy Goods till that collects (PartyB of CustomerBuyGoodsOnline); "
        "none: `shortcode` is a PayBill that collects itself",
    )
    passkey: SecretStr
    callback_token: SecretStr = Field(description="Secret path segment of the callback URL (new pushes)")
    previous_callback_tokens: tuple[SecretStr, ...] = Field(
        default=(),
        description="Tokens still accepted during a rotation: callbacks of pushes made before it carry them. "
        "Drop them once those pushes are settled (Daraja gives up on a callback within minutes)",
    )
    allowed_ips: tuple[str, ...] = ()
    ip_policy: Literal["enforce", "log"] = "log"
    api_base: str | None = None

    def accepted_callback_tokens(self) -> tuple[str, ...]:
        """Every callback token that authenticates a callback now: the current one first."""
        return (
            self.callback_token.get_secret_value(),
            *(t.get_secret_value() for t in self.previous_callback_tokens),
        )


class GatewayCredentials(_Credentials):
    """Everything stored for one tenant; a gateway left out is not configured."""

    stripe: StripeCredentials | None = None
    paystack: PaystackCredentials | None = None
    mpesa: MpesaCredentials | None = None

    def to_plain_json(self) -> str:
        """The secrets in clear, only ever to be encrypted right away."""
        return json.dumps(_reveal(self.model_dump(exclude_none=True)), sort_keys=True)


def _reveal(value: object) -> object:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_reveal(v) for v in value]
    return value
