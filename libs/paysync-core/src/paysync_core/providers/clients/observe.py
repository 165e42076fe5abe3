"""What the clients share to turn a gateway answer into a verified reconcile observation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from paysync_core.contracts.common import ObservationSource, Provider
from paysync_core.contracts.observation import PaymentObservation
from paysync_core.providers._common import Facts, build_observation, sha256_hex
from paysync_core.providers.base import ParseContext

_MAX_ID = 200  # PaymentObservation.observation_id's limit


def reconcile_context(tenant: str, observed_at: datetime) -> ParseContext:
    """The context of an answer paysync asked a gateway for: verified by construction."""
    return ParseContext(
        tenant=tenant, source=ObservationSource.RECONCILE, verified=True, observed_at=observed_at
    )


def observation_id(provider: Provider, reference: str, *parts: object) -> str:
    """`<provider>:<reference>:<part>:…`, the same for the same answer, hashed only when too long."""
    text = ":".join([provider.value, reference, *(str(p) for p in parts)])
    if len(text) <= _MAX_ID:
        return text
    return f"{provider.value}:{sha256_hex(reference, *(str(p) for p in parts))}"


def observe_facts(
    provider: Provider,
    facts: Facts,
    *,
    tenant: str,
    observed_at: datetime,
    provider_time: datetime,
    kind: str,
    id_parts: tuple[object, ...],
) -> PaymentObservation:
    """A verified RECONCILE observation of `facts`, with an id that repeats for an unchanged answer."""
    return build_observation(
        provider=provider,
        observation_id=observation_id(provider, facts.provider_ref, *id_parts),
        provider_time=provider_time,
        facts=facts,
        ctx=reconcile_context(tenant, observed_at),
        event_type=kind,
        verified=True,
    )


@dataclass(frozen=True, slots=True)
class Initiated:
    """A payment a gateway has started: the reference to register and what the front end shows."""

    provider: Provider
    provider_ref: str  # register this with paysync: session id, Paystack reference, CheckoutRequestID
    checkout_url: str | None = None  # where to send the customer (Stripe, Paystack)
    customer_message: str | None = None  # what to tell the customer (M-Pesa: "check your phone")
    details: Mapping[str, str] = field(default_factory=dict)  # access_code, MerchantRequestID, …
