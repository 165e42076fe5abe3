"""One observation of one payment's state at a gateway."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from paysync_core.contracts.common import (
    Contract,
    Currency,
    EntityRef,
    ObservationSource,
    Provider,
    TenantId,
    UtcDatetime,
)
from paysync_core.domain.observation import Dispute, Observation
from paysync_core.domain.status import UnifiedStatus

Ref = Annotated[str, Field(min_length=1, max_length=255)]


class Evidence(Contract):
    """The gateway-side ids and positions that show where an observation came from."""

    provider_event_id: str | None = None
    event_type: str | None = None
    ingest_id: str | None = None
    raw_partition: int | None = None
    raw_offset: int | None = None
    session_id: str | None = None
    payment_intent_id: str | None = None
    invoice_id: str | None = None
    charge_id: str | None = None
    transaction_id: str | None = None
    receipt_number: str | None = None
    phone_masked: str | None = None
    detail: str | None = Field(default=None, description="The gateway's own words, e.g. ResultDesc")
    override_by: str | None = Field(default=None, description="Who overrode the status (an override)")
    override_reason: str | None = Field(default=None, description="Why the status was overridden")


class DisputeFact(Contract):
    """The state of one dispute (chargeback) on a payment."""

    dispute_id: Ref
    state: Literal["open", "won", "lost"]


class PaymentObservation(Contract):
    """A payment was in `status` at `provider_time`, as seen through `source`."""

    schema_version: Literal[1] = 1
    observation_id: str = Field(
        min_length=1,
        max_length=200,
        description="Deterministic: the provider event id, or a hash of the signed content",
    )
    tenant: TenantId
    provider: Provider
    provider_ref: Ref = Field(description="The reference this observation is about")
    aliases: tuple[Ref, ...] = Field(
        default=(), description="Other references of the same payment this observation reveals"
    )
    status: UnifiedStatus | None = Field(
        default=None, description="None when the status cannot be determined"
    )
    amount_minor: int | None = Field(default=None, ge=0)
    currency: Currency | None = None
    amount_refunded_minor: int | None = Field(
        default=None, ge=0, description="Cumulative amount refunded so far"
    )
    dispute: DisputeFact | None = None
    provider_time: UtcDatetime
    source: ObservationSource
    verified: bool = Field(description="False for hints that a gateway query must confirm")
    entity: EntityRef | None = Field(default=None, description="From the gateway's metadata")
    evidence: Evidence = Field(default_factory=Evidence)
    observed_at: UtcDatetime
    mode: Literal["test", "live"] | None = Field(
        default=None,
        description="The gateway's mode, where it says (Stripe `livemode`, Paystack `domain`); "
        "the projector never applies an observation to a payment of the other mode",
    )
    phone_hash: str | None = Field(
        default=None,
        description="M-Pesa: the payer's number as its keyed hash (`paysync_core.phones`), never the number; "
        "the projector keeps it on the payment for lookups by phone",
    )

    @property
    def refs(self) -> tuple[str, ...]:
        """Every reference this observation can be matched by."""
        return (self.provider_ref, *self.aliases)

    def to_domain(self) -> Observation:
        """What the status merge reads of this message (`paysync_core.domain.observation`)."""
        # Evidence holds only str and int fields: str() of each is its JSON text, without a model dump
        # per observation on the projector's hot path; its __dict__ is its fields (it keeps no extras),
        # read in the names' sorted order (no sort per observation).
        given = self.evidence.__dict__
        evidence = tuple(
            [
                (name, value if type(value) is str else str(value))
                for name in _EVIDENCE_NAMES
                if (value := given[name]) is not None
            ]
        )
        dispute = self.dispute
        return Observation(
            self.observation_id,
            self.provider_time,
            self.verified,
            self.status,
            self.amount_minor,
            self.currency,
            self.amount_refunded_minor,
            Dispute(dispute.dispute_id, dispute.state) if dispute is not None else None,
            evidence,
            self.source is ObservationSource.OVERRIDE,
        )


#: Evidence's field names in sorted order: the order of `Observation.evidence`.
_EVIDENCE_NAMES = tuple(sorted(Evidence.model_fields))
