"""The API's request and response bodies (the OpenAPI schema is generated from these)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from paysync_api_gateway.inputs import CleanText
from paysync_core.contracts.alert import AlertKind
from paysync_core.contracts.common import Currency, Provider
from paysync_core.domain.status import UnifiedStatus

Ref = Annotated[str, Field(min_length=1, max_length=255)]

#: What each gateway's references look like, and how to say so. Stripe: Checkout Session,
#: PaymentIntent, Invoice and Charge ids; Paystack: "only -, ., = and alphanumeric characters";
#: M-Pesa: the CheckoutRequestID of an STK push.
REFERENCE_RULES: dict[Provider, tuple[re.Pattern[str], str]] = {
    Provider.STRIPE: (
        re.compile(r"(cs|pi|in|ch)_[A-Za-z0-9_]{1,250}"),
        "a Stripe id starting with cs_, pi_, in_ or ch_ (letters, digits and _)",
    ),
    Provider.PAYSTACK: (
        re.compile(r"[A-Za-z0-9.=-]{1,100}"),
        "a Paystack reference: up to 100 letters, digits, '-', '.' or '='",
    ),
    Provider.MPESA: (
        re.compile(r"ws_CO_[A-Za-z0-9_]{1,100}"),
        "an M-Pesa CheckoutRequestID starting with ws_CO_",
    ),
}


def reference_problem(provider: Provider, ref: str) -> str | None:
    """Why `ref` cannot be one of `provider`'s references, or None."""
    pattern, expected = REFERENCE_RULES[provider]
    return None if pattern.fullmatch(ref) else f"{ref!r} is not {expected}"


class RegisterPayment(BaseModel):
    """A payment for paysync to track, tied to one domain entity."""

    model_config = ConfigDict(extra="forbid")

    provider: Provider
    provider_ref: Ref = Field(
        description="Stripe Checkout Session / PaymentIntent / Invoice / Charge id, Paystack reference, "
        "or M-Pesa CheckoutRequestID"
    )
    domain: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
    entity_id: Annotated[CleanText, Field(min_length=1, max_length=200)]
    amount_minor: int = Field(
        strict=True,
        ge=0,
        le=10**15,
        description="A JSON integer of minor units (cents, kobo; M-Pesa: cents of KES), not a string or bool",
    )
    currency: Currency = Field(description="ISO 4217 code; `usd` is taken as `USD`")
    aliases: list[Ref] = Field(
        default_factory=list, max_length=20, description="More references of the same gateway"
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form JSON kept with the payment; size and depth are bounded; no phone numbers "
        "(send `phone`)",
    )
    phone: str | None = Field(
        default=None,
        max_length=32,
        description="M-Pesa only: the payer's number (`+2547…`, `2547…`, `07…`), to find the payment by "
        "(`GET /v1/payments?phone=`); kept only as a keyed hash, never in clear",
    )

    @field_validator("provider_ref")
    @classmethod
    def _gateway_reference(cls, ref: str, info: ValidationInfo) -> str:
        provider = info.data.get("provider")
        if provider is not None and (problem := reference_problem(provider, ref)):
            raise ValueError(problem)
        return ref

    @field_validator("phone")
    @classmethod
    def _mpesa_phone(cls, phone: str | None, info: ValidationInfo) -> str | None:
        if phone is not None and info.data.get("provider") not in (None, Provider.MPESA):
            raise ValueError("only M-Pesa payments have a payer phone number")
        return phone

    @field_validator("aliases")
    @classmethod
    def _gateway_aliases(cls, refs: list[str], info: ValidationInfo) -> list[str]:
        provider = info.data.get("provider")
        problems = [p for ref in refs if provider is not None and (p := reference_problem(provider, ref))]
        if problems:
            raise ValueError("; ".join(problems))
        return refs


class Payment(BaseModel):
    """A tracked payment and its current unified status."""

    id: str
    provider: Provider
    provider_ref: str
    aliases: list[str]
    domain: str | None
    entity_id: str | None
    amount_minor: int | None
    currency: str | None
    status: UnifiedStatus
    mode: Literal["test", "live"] | None = Field(
        description="test or live: the mode of the tenant's credentials for this gateway when the payment "
        "was registered; null when not known (registered before modes were recorded, or a Daraja base URL "
        "that is neither sandbox nor production). Observations of the other mode are never applied"
    )
    amount_received_minor: int | None
    amount_refunded_minor: int
    paid_at: datetime | None
    flags: list[str]
    sequence: int
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class PaymentPage(BaseModel):
    """One page of payments; pass `next_cursor` as `cursor` for the next."""

    items: list[Payment]
    next_cursor: str | None


class SyncIssue(BaseModel):
    """Something about a payment that paysync cannot settle on its own, open until resolved."""

    id: int
    kind: AlertKind
    payment_id: uuid.UUID | None
    domain: str | None
    entity_id: str | None
    detail: str
    facts: dict[str, Any]
    occurrence: int = Field(description="How many times it was raised again after being resolved")
    opened_at: datetime


class Problem(BaseModel):
    """An error answer: the one shape of every error, with a problem per field when fields are at fault."""

    error: str
    message: str
    problems: list[dict[str, str]] = Field(default_factory=list)
