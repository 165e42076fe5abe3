"""The reconciler's inputs: schedule ticks, and requests to check payments with their gateway now."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from paysync_core.contracts.common import Contract, Provider, TenantId, UtcDatetime


class ReconcileTick(Contract):
    """Sweep one tenant's payments at one gateway now; `tick_id` makes duplicates recognisable.

    With `since` and `until` it is a window sweep (`paysync reconcile`): only the gateway's list for
    that window is read (Stripe Events, Paystack transactions), published and compared, within the
    gateway's rate budget; the list sweep's watermark and the payments' check schedules are left as
    they are. M-Pesa has no list: the payments registered in the window that have not ended are
    checked one by one (STK query).
    """

    schema_version: Literal[1] = 1
    tick_id: str = Field(
        min_length=1, max_length=200, description="(tenant, provider, cadence slot), or manual"
    )
    tenant: TenantId
    provider: Provider
    scheduled_at: UtcDatetime
    source: Literal["scheduler", "cli", "admin"] = "scheduler"
    since: UtcDatetime | None = Field(default=None, description="A window sweep's start")
    until: UtcDatetime | None = Field(default=None, description="A window sweep's end")

    @property
    def window(self) -> tuple[datetime, datetime] | None:
        """(since, until) of a window sweep; None for a regular sweep."""
        return (self.since, self.until) if self.since is not None and self.until is not None else None


class ReconcileRequest(Contract):
    """Check these payments with the gateway now; reply on `reply_topic` if one is given."""

    schema_version: Literal[1] = 1
    request_id: str = Field(description="Correlates the reply; also the idempotency key")
    tenant: TenantId
    kind: Literal["confirm_callback", "payments", "entity", "bulk"]
    provider: Provider | None = None
    refs: tuple[str, ...] = Field(default=(), description="Provider references to check")
    domain: str | None = None
    entity_id: str | None = None
    reply_topic: str | None = None
    requested_at: UtcDatetime
    reason: str | None = Field(default=None, description="Why: e.g. the callback's ResultDesc")


class CheckedPayment(Contract):
    """One payment a targeted check looked at, and what it found."""

    payment_id: str | None = Field(
        default=None, description="None when the gateway knows it but paysync did not"
    )
    provider: Provider
    provider_ref: str
    status_before: str | None = None
    status_after: str | None = None
    changed: bool = False
    error: str | None = Field(default=None, description="Why the gateway could not be asked, if it could not")


class ReconcileReply(Contract):
    """The answer to a ReconcileRequest, sent once the projector has applied what was found."""

    schema_version: Literal[1] = 1
    request_id: str
    tenant: TenantId
    kind: Literal["confirm_callback", "payments", "entity", "bulk"]
    entities_checked: int = 0
    payments_checked: int = 0
    payments_updated: int = 0
    payments_found_paid: int = 0
    gateway_errors: int = 0
    payments: tuple[CheckedPayment, ...] = Field(default=(), description="Per payment (entity checks only)")
    completed_at: UtcDatetime
