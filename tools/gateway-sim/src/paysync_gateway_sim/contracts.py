"""The control API's messages, shared by the server and `SimulatorClient`."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from paysync_core.contracts.common import Provider

__all__ = [
    "Account",
    "AccountSpec",
    "AccountStats",
    "AccountUpdate",
    "Action",
    "ActionRequest",
    "ActionResult",
    "ApiFaults",
    "ApiStats",
    "Burst",
    "BurstKind",
    "DeliveryRecord",
    "Faults",
    "PaymentSpec",
    "PaymentView",
    "Provider",
    "Stats",
    "WebhookFaults",
    "WebhookStats",
]

_ACCOUNT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookFaults(_Model):
    """What happens to an account's webhooks between the gateway and the receiver."""

    drop_ratio: float = Field(default=0.0, ge=0, le=1, description="Share never delivered")
    duplicate_ratio: float = Field(default=0.0, ge=0, le=1, description="Share delivered twice")
    delay_min: float = Field(default=0.0, ge=0, description="Seconds before the first attempt")
    delay_max: float = Field(default=0.0, ge=0)
    reorder_window: int = Field(
        default=0, ge=0, description="Hold this many webhooks and release them newest first (< 2: off)"
    )
    reorder_hold_seconds: float = Field(default=1.0, gt=0, description="Release a partial window after")
    drop_next: int = Field(default=0, ge=0, description="Drop the next N webhooks, then go back to ratios")


class ApiFaults(_Model):
    """Errors the account's API answers by chance, drawn from the seeded generator."""

    rate_limit_ratio: float = Field(default=0.0, ge=0, le=1)
    server_error_ratio: float = Field(default=0.0, ge=0, le=1)


class Faults(_Model):
    """Every fault setting of one account."""

    webhooks: WebhookFaults = Field(default_factory=WebhookFaults)
    api: ApiFaults = Field(default_factory=ApiFaults)


class BurstKind(StrEnum):
    """A kind of error answered to the next N API requests."""

    RATE_LIMIT = "rate_limit"  # Stripe/Paystack 429; Daraja spike arrest 500.003.02
    SERVER_ERROR = "server_error"
    QUOTA = "quota"  # Daraja quota violation 500.003.03 (a 429 elsewhere)


class Burst(_Model):
    """Answer the next `count` API requests of an account with `kind`."""

    kind: BurstKind
    count: int = Field(ge=1, le=1_000_000)


class AccountSpec(_Model):
    """One tenant's credentials at one gateway; anything left out is generated."""

    provider: Provider
    id: str | None = Field(default=None, pattern=_ACCOUNT_ID)
    webhook_url: str | None = Field(
        default=None, description="Stripe/Paystack endpoint; M-Pesa: the default CallBackURL"
    )
    secret_key: str | None = Field(default=None, description="Stripe or Paystack secret key")
    webhook_secret: str | None = Field(default=None, description="Stripe endpoint signing secret (whsec_…)")
    consumer_key: str | None = None
    consumer_secret: str | None = None
    shortcode: str | None = Field(default=None, pattern=r"^[0-9]{5,7}$")
    till_number: str | None = Field(
        default=None,
        pattern=r"^[0-9]{5,7}$",
        description="M-Pesa: a Buy Goods till of the store `shortcode`; None: `shortcode` is a PayBill",
    )
    passkey: str | None = None
    rate_limit: float | None = Field(
        default=None, ge=0, description="Requests per second; None: the gateway's default; 0: unlimited"
    )
    lock_subscriber: bool = Field(
        default=True, description="M-Pesa: refuse a push to a phone that has one pending (500.001.1001)"
    )
    faults: Faults | None = None


class AccountUpdate(_Model):
    """Fields of an account that can change while it runs."""

    webhook_url: str | None = None
    rate_limit: float | None = Field(default=None, ge=0)
    lock_subscriber: bool | None = None


class Account(_Model):
    """An account as the simulator holds it, credentials included (tests need them)."""

    id: str
    provider: Provider
    webhook_url: str | None
    secret_key: str | None
    webhook_secret: str | None
    consumer_key: str | None
    consumer_secret: str | None
    shortcode: str | None
    till_number: str | None = None
    passkey: str | None
    rate_limit: float | None = Field(description="Effective requests per second; None: unlimited")
    lock_subscriber: bool
    faults: Faults


class PaymentSpec(_Model):
    """A payment created directly, as if the merchant had called the gateway."""

    kind: Literal["checkout_session", "payment_intent", "invoice", "transaction", "stk_push"] | None = None
    amount_minor: int = Field(default=2000, gt=0, description="Minor units; M-Pesa needs whole shillings")
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    metadata: dict[str, Any] | None = None
    payment_intent_metadata: dict[str, str] | None = None
    client_reference_id: str | None = None
    reference: str | None = Field(default=None, description="Paystack transaction reference")
    email: str = "customer@example.com"
    phone: str = Field(default="254708374149", pattern=r"^2547[0-9]{8}$|^2541[0-9]{8}$")
    callback_url: str | None = Field(default=None, description="M-Pesa CallBackURL (else the account's URL)")
    account_reference: str = Field(default="paysync", max_length=12)
    description: str = Field(default="Payment", max_length=13)


class Action(StrEnum):
    """A scenario step: what the customer, the merchant or time does to a payment."""

    PAY = "pay"
    FAIL = "fail"
    CANCEL = "cancel"
    ABANDON = "abandon"
    EXPIRE = "expire"
    PROCESS = "process"  # a delayed payment method or an OTP: in progress, not yet paid
    REFUND = "refund"
    DISPUTE = "dispute"


class ActionRequest(_Model):
    """Options of a scenario step; each applies only where it makes sense."""

    amount_minor: int | None = Field(default=None, gt=0, description="Refund this much (default: the rest)")
    outcome: Literal["open", "won", "lost"] = "open"
    result_code: int | None = Field(default=None, description="M-Pesa ResultCode for `fail`")
    retry: bool = Field(default=False, description="Stripe invoice `fail`: Stripe will try again later")
    status: Literal["ongoing", "pending"] = "ongoing"


class PaymentView(_Model):
    """A payment's state: the gateway's own status and the object its API would return."""

    provider: Provider
    kind: str
    ref: str
    status: str
    amount_minor: int
    currency: str
    object: dict[str, Any]


class ActionResult(_Model):
    """What a scenario step changed and which webhooks it queued (by event type)."""

    payment: PaymentView
    webhooks: list[str]


class ApiStats(_Model):
    """What one account's API saw; `over_limit` counts requests refused by its rate limiter."""

    requests: int = 0
    served: int = 0
    over_limit: int = 0
    injected_rate_limit: int = 0
    injected_server_error: int = 0
    injected_quota: int = 0
    by_operation: dict[str, int] = Field(
        default_factory=dict,
        description="Requests per operation, e.g. `GET /v1/events`, `GET /v1/payment_intents/{intent_id}`",
    )


class WebhookStats(_Model):
    """What happened to one account's webhooks."""

    queued: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    no_endpoint: int = 0
    pending: int = 0


class AccountStats(_Model):
    """One account's API and webhook counters."""

    api: ApiStats = Field(default_factory=ApiStats)
    webhooks: WebhookStats = Field(default_factory=WebhookStats)


class Stats(_Model):
    """Counters per account, their totals, and requests no account could be found for."""

    accounts: dict[str, AccountStats]
    total: AccountStats
    unauthenticated: dict[str, int]


class DeliveryRecord(_Model):
    """One step in a webhook's life: queued, dropped, duplicated, held, attempted."""

    seq: int
    delivery_id: int
    account: str
    provider: Provider
    label: str = Field(description="Stripe/Paystack event type, or `stkCallback`")
    ref: str
    event_id: str | None = None
    outcome: Literal[
        "queued", "dropped", "duplicated", "held", "delivered", "failed", "gave_up", "no_endpoint"
    ]
    attempt: int = 0
    status_code: int | None = None
    error: str | None = None
    at: float = Field(description="Unix time (wall clock)")
