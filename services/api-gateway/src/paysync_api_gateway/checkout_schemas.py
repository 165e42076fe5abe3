"""Bodies of `POST /v1/payments/checkout` and `POST /v1/payments/{id}/retry`, and what they answer."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from paysync_api_gateway.inputs import CleanText, InvalidInput
from paysync_core.contracts.common import Currency, Provider
from paysync_core.providers.clients import normalize_msisdn

Url = Annotated[CleanText, Field(min_length=1, max_length=2000, pattern=r"^https?://\S+$")]

#: The fields each gateway needs (beyond provider, domain, entity, amount and currency), and may take.
REQUIRED: dict[Provider, tuple[str, ...]] = {
    Provider.STRIPE: ("success_url", "cancel_url"),
    Provider.PAYSTACK: ("email",),
    Provider.MPESA: ("phone", "account_reference"),
}
OPTIONAL: dict[Provider, tuple[str, ...]] = {
    Provider.STRIPE: ("product_name", "email"),
    Provider.PAYSTACK: ("callback_url",),
    Provider.MPESA: ("description",),
}
_GATEWAY_FIELDS = (
    "success_url",
    "cancel_url",
    "product_name",
    "email",
    "callback_url",
    "phone",
    "account_reference",
    "description",
)


class StartCheckout(BaseModel):
    """A payment to start at its gateway and register in one call (send an `Idempotency-Key` header)."""

    model_config = ConfigDict(extra="forbid")

    provider: Provider
    domain: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
    entity_id: Annotated[CleanText, Field(min_length=1, max_length=200)]
    amount_minor: int = Field(
        strict=True, ge=1, le=10**15, description="Minor units (M-Pesa: cents of KES, whole shillings only)"
    )
    currency: Currency = Field(description="ISO 4217 code; M-Pesa takes KES only")
    success_url: Url | None = Field(default=None, description="Stripe: where Checkout sends a payer")
    cancel_url: Url | None = Field(default=None, description="Stripe: where Checkout sends one who gives up")
    product_name: Annotated[CleanText, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="Stripe: the line item's name (default: `<domain> <entity_id>`)"
    )
    email: Annotated[CleanText, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = Field(
        default=None, description="Paystack (required), Stripe (optional): the customer's email"
    )
    callback_url: Url | None = Field(default=None, description="Paystack: where it returns the customer")
    phone: Annotated[CleanText, Field(max_length=20)] | None = Field(
        default=None,
        description="M-Pesa: the customer's Kenyan mobile number (07…, 2547…); never stored or logged",
    )
    account_reference: Annotated[CleanText, Field(min_length=1, max_length=12)] | None = Field(
        default=None, description="M-Pesa: AccountReference shown to the customer (1-12 characters)"
    )
    description: Annotated[CleanText, Field(min_length=1, max_length=13)] | None = Field(
        default=None, description="M-Pesa: TransactionDesc (up to 13 characters)"
    )

    def check_gateway_fields(self) -> None:
        """InvalidInput naming every field this gateway needs and lacks, or does not take."""
        wanted = REQUIRED[self.provider]
        allowed = {*wanted, *OPTIONAL[self.provider]}
        problems = [
            {"field": f, "problem": f"required for {self.provider.value}"}
            for f in wanted
            if getattr(self, f) is None
        ]
        problems += [
            {"field": f, "problem": f"not taken by {self.provider.value}"}
            for f in _GATEWAY_FIELDS
            if f not in allowed and getattr(self, f) is not None
        ]
        if self.provider is Provider.MPESA:
            problems += _mpesa_problems(self)
        if problems:
            raise InvalidInput("the request is not valid for this gateway", problems)

    def replayable(self) -> dict[str, object]:
        """What is kept to answer a retry of the same request: everything but the phone number."""
        return self.model_dump(mode="json", exclude={"phone"}, exclude_none=True)


def _mpesa_problems(body: StartCheckout) -> list[dict[str, str]]:
    problems = []
    if body.currency != "KES":
        problems.append({"field": "currency", "problem": "M-Pesa takes KES only"})
    if body.amount_minor % 100:
        problems.append(
            {"field": "amount_minor", "problem": "M-Pesa takes whole shillings (a multiple of 100)"}
        )
    if body.phone is not None and phone_problem(body.phone):
        problems.append({"field": "phone", "problem": phone_problem(body.phone) or ""})
    return problems


def phone_problem(phone: str) -> str | None:
    """Why `phone` is no Kenyan mobile number (without repeating it), or None."""
    try:
        normalize_msisdn(phone)
    except ValueError:
        return "not a Kenyan mobile number (07XXXXXXXX, 2547XXXXXXXX or +2547XXXXXXXX)"
    return None


class RetryPush(BaseModel):
    """The phone to prompt again (paysync keeps no phone number, so the app sends it again)."""

    model_config = ConfigDict(extra="forbid")

    phone: Annotated[CleanText, Field(max_length=20)] = Field(
        description="The customer's Kenyan mobile number; never stored or logged"
    )


class CheckoutStarted(BaseModel):
    """A payment started at its gateway and registered: what the front end needs next."""

    payment_id: str
    provider: Provider
    provider_ref: str = Field(description="Checkout Session id, Paystack reference or CheckoutRequestID")
    status: str
    checkout_url: str | None = Field(description="Stripe Checkout URL / Paystack authorization_url")
    session_id: str | None = Field(default=None, description="Stripe: the Checkout Session id")
    access_code: str | None = Field(default=None, description="Paystack: for Paystack's inline popup")
    reference: str | None = Field(default=None, description="Paystack: the transaction reference")
    checkout_request_id: str | None = Field(default=None, description="M-Pesa: the push's CheckoutRequestID")
    customer_message: str | None = Field(default=None, description="M-Pesa: what to tell the customer")
    sends: int = Field(description="M-Pesa: STK pushes sent for this payment so far (1 for the others)")
