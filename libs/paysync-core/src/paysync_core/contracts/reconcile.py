"""Requests for the reconciler to check payments with their gateway now."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from paysync_core.contracts.common import Contract, Provider, TenantId, UtcDatetime


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
