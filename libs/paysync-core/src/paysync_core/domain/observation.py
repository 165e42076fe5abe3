"""What the status merge knows of one observation: a domain value, free of the wire format.

The wire message (`paysync_core.contracts.PaymentObservation`) carries more (tenant, source,
references, test/live mode) and changes with its schema; `PaymentObservation.to_domain()` is the one
conversion into this value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from paysync_core.domain.status import UnifiedStatus

DisputeState = Literal["open", "won", "lost"]


@dataclass(frozen=True, slots=True)
class Dispute:
    """The state of one dispute (chargeback) on a payment."""

    dispute_id: str
    state: DisputeState


@dataclass(frozen=True, slots=True)
class Observation:
    """One observation of one payment: a status at a provider time, and what came with it."""

    observation_id: str
    provider_time: datetime
    #: False for hints (an unsigned callback) that a gateway query must confirm: they change nothing.
    verified: bool
    #: None when the gateway's answer did not determine a status.
    status: UnifiedStatus | None = None
    amount_minor: int | None = None
    currency: str | None = None
    #: Cumulative amount refunded so far, where the gateway says.
    amount_refunded_minor: int | None = None
    dispute: Dispute | None = None
    #: The gateway-side ids and words that came with it (session, charge, receipt, detail...), as
    #: sorted (name, value) pairs.
    evidence: tuple[tuple[str, str], ...] = ()
    #: An operator's status override (source "override"): it sets the status shown until a newer one,
    #: and no gateway fact older than it undoes it.
    override: bool = False

    @property
    def detail(self) -> str | None:
        """The gateway's own words (e.g. M-Pesa's ResultDesc), if it gave any."""
        return next((value for name, value in self.evidence if name == "detail"), None)
