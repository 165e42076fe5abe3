"""Typed answers of the refresh, follow-up and stats routes (the OpenAPI schema comes from these)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from paysync_core.contracts.reconcile import CheckedPayment


class CheckCounts(BaseModel):
    """What a check did."""

    request_id: str
    payments_checked: int
    payments_updated: int
    payments_found_paid: int
    gateway_errors: int


class EntityChecked(CheckCounts):
    """`POST /v1/domains/{domain}/{entity_id}/payments/refresh`: each payment of the entity checked."""

    domain: str | None
    entity_id: str | None
    payments: list[CheckedPayment]


class BulkChecked(CheckCounts):
    """`POST /v1/payments/refresh`: counts over every unsettled payment of the tenant."""

    entities_checked: int


class StillChecking(BaseModel):
    """202: the check goes on; follow `follow_up` (also the `Location` header)."""

    request_id: str
    status: Literal["checking"]
    follow_up: str


class CheckState(BaseModel):
    """`GET /v1/reconcile-requests/{id}`: `checking`; `failed` with a reason; or `completed` with the
    fields of the answer the refresh would have given (those of `EntityChecked` or `BulkChecked`)."""

    model_config = {"extra": "allow"}
    request_id: str
    status: Literal["checking", "completed", "failed"]
    reason: str | None = Field(default=None, description="Why it failed (only when `failed`)")


class CurrencyTotals(BaseModel):
    """Amounts of one currency, in minor units."""

    registered_minor: int
    received_minor: int
    refunded_minor: int = Field(description="Refunded so far (partial and full refunds)")


class Stats(BaseModel):
    """`GET /v1/stats`: the tenant's payments counted by status, and amounts by currency."""

    total: int
    by_status: dict[str, int]
    by_currency: dict[str, CurrencyTotals] = Field(description="`unknown` for payments of no currency")
