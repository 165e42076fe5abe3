"""A sync issue someone should look at: drift, stuck payments, amount mismatch, gateway errors."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Literal

from pydantic import Field

from paysync_core.contracts.common import Contract, EntityRef, Provider, TenantId, UtcDatetime

_NAMESPACE = uuid.UUID("a1e7c0de-7061-7973-796e-632d616c6572")


class AlertKind(StrEnum):
    """What kind of sync issue an alert reports."""

    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    DOMAIN_PAID_WITHOUT_PAYMENT = "domain_paid_without_payment"
    PAYMENT_SUCCEEDED_DOMAIN_UNPAID = "payment_succeeded_domain_unpaid"
    STUCK_PAYMENT = "stuck_payment"
    GATEWAY_ERROR = "gateway_error"
    # One payment whose check keeps failing for a reason of its own (bad data, an unexpected answer):
    CHECK_FAILED = "check_failed"
    # An observation from the other mode (live for a test payment, or the reverse): recorded, never applied.
    MODE_MISMATCH = "mode_mismatch"
    # A gateway fact newer than an operator's override says something else; the override stands:
    OVERRIDE_CONTRADICTED = "override_contradicted"
    # Drift only a gateway query reveals (the reconciler's checks):
    GATEWAY_PAYMENT_UNRECORDED = "gateway_payment_unrecorded"  # paid at the gateway, no payment record
    PAID_WITHOUT_GATEWAY_SUCCESS = "paid_without_gateway_success"  # paid here, no success at the gateway
    # A tenant's own webhook endpoint failed for too long and the notifier stopped sending to it:
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint_disabled"
    # Rules on status changes, evaluated by the notifier against each tenant's alert settings:
    PAYMENT_PAST_DEADLINE = "payment_past_deadline"  # unsettled longer than its domain's deadline
    GATEWAY_FAILURE_RATE = "gateway_failure_rate"  # too many of a gateway's latest payments failed
    DEAD_LETTERS = "dead_letters"  # a dead-letter topic holds records of the tenant


def alert_id(kind: AlertKind | str, tenant: str, subject: str, occurrence: int = 1) -> str:
    """The deterministic id of the `occurrence`-th alert of `kind` about `subject` (a payment or entity)."""
    return str(uuid.uuid5(_NAMESPACE, f"{AlertKind(kind).value}|{tenant}|{subject}|{occurrence}"))


class Alert(Contract):
    """A sync issue of `kind` about one payment or domain entity; `alert_id` makes duplicates recognisable."""

    schema_version: Literal[1] = 1
    alert_id: str = Field(description="Deterministic per (kind, tenant, subject, occurrence)")
    kind: AlertKind
    tenant: TenantId
    payment_id: str | None = None
    provider: Provider | None = None
    provider_ref: str | None = None
    entity: EntityRef | None = Field(default=None, description="The domain row concerned, if any")
    detail: str = Field(max_length=2000, description="What is wrong, in words an operator can act on")
    facts: dict[str, str | int | bool | None] = Field(
        default_factory=dict, description="The values behind the detail (expected vs seen, ...)"
    )
    occurrence: int = Field(default=1, ge=1, description="Counts re-openings of the same issue")
    raised_at: UtcDatetime
