"""The API's request and response bodies (the OpenAPI schema is generated from these)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from paysync_core.contracts.alert import AlertKind
from paysync_core.contracts.common import Currency, Provider
from paysync_core.domain.status import UnifiedStatus

Ref = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_\-.:]+$")]


class RegisterPayment(BaseModel):
    """A payment for paysync to track, tied to one domain entity."""

    model_config = ConfigDict(extra="forbid")

    provider: Provider
    provider_ref: Ref = Field(description="Checkout Session / PaymentIntent / Invoice id, Paystack reference, or CheckoutRequestID")
    domain: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
    entity_id: Annotated[str, Field(min_length=1, max_length=200)]
    amount_minor: int = Field(ge=0, le=10**15, description="Integer minor units (cents, kobo; M-Pesa: cents of KES)")
    currency: Currency
    aliases: list[Ref] = Field(default_factory=list, max_length=20)
    metadata: dict[str, Any] = Field(default_factory=dict)


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


class SyncIssuePage(BaseModel):
    """One page of open sync issues; pass `next_cursor` as `cursor` for the next."""

    items: list[SyncIssue]
    next_cursor: str | None


class Problem(BaseModel):
    """An error answer."""

    error: str
    message: str
