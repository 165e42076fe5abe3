"""An operator's status override, as the observation that carries it to the projector.

An override goes the way every other fact goes: onto `paysync.payment-observations.v1`, keyed
by its payment, so the projector applies it in the payment's order, records it in history
(source `override`, with who and why in its evidence) and the merge holds it
(`paysync_core.domain.merge`: older gateway facts never undo it; a newer one that disagrees opens
an `override_contradicted` sync issue).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from paysync_core import topics
from paysync_core.contracts import Evidence, ObservationSource, PaymentObservation
from paysync_core.domain.status import UnifiedStatus

#: Longest reason and actor name an override keeps.
MAX_REASON = 500
MAX_BY = 100


def override_observation(
    payment: Any, status: UnifiedStatus, reason: str, by: str, *, at: datetime | None = None
) -> PaymentObservation:
    """The observation that sets `payment`'s status to `status` now, for `reason`, by `by`.

    `payment` is a payments row (tenant_id, provider, provider_ref). The id is new each time: two
    overrides are two decisions, both kept in history.
    """
    at = at or datetime.now(UTC)
    return PaymentObservation(
        observation_id=f"override_{uuid.uuid4().hex}",
        tenant=payment.tenant_id,
        provider=payment.provider,
        provider_ref=payment.provider_ref,
        status=status,
        provider_time=at,
        source=ObservationSource.OVERRIDE,
        verified=True,
        evidence=Evidence(override_by=by, override_reason=reason),
        observed_at=at,
    )


def override_record(obs: PaymentObservation) -> tuple[str, bytes, bytes]:
    """(topic, key, value) of the record that carries an override."""
    spec = topics.PAYMENT_OBSERVATIONS
    return spec.name, spec.key_for(obs), obs.to_bytes()
