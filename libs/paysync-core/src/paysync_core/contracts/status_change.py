"""A payment's unified status changed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from paysync_core.contracts.common import Contract, Currency, Provider, TenantId, UtcDatetime
from paysync_core.contracts.observation import Evidence
from paysync_core.domain.status import UnifiedStatus


class PaymentStatusChanged(Contract):
    """A payment moved from `old_status` to `new_status`; `sequence` orders a payment's changes."""

    schema_version: Literal[1] = 1
    event_id: str = Field(description="Deterministic per (payment, sequence)")
    tenant: TenantId
    payment_id: str
    provider: Provider
    provider_ref: str
    domain: str | None = None
    entity_id: str | None = None
    old_status: UnifiedStatus | None = None
    new_status: UnifiedStatus
    amount_minor: int | None = None
    currency: Currency | None = None
    amount_received_minor: int | None = None
    amount_refunded_minor: int = 0
    flags: tuple[str, ...] = ()
    sequence: int = Field(ge=1)
    observation_id: str
    evidence: Evidence = Field(default_factory=Evidence)
    changed_at: UtcDatetime
