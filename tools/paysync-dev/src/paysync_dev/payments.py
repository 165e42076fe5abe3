"""Payments for tests: registered the way api-gateway registers them, observations of them, their rows."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.contracts import DisputeFact, Evidence, PaymentObservation
from paysync_core.db import REGISTERED_CHANNEL
from paysync_core.db import tenants as tenant_repo
from paysync_core.db.schema import payment_refs, payments
from paysync_core.domain.ids import payment_id_for
from paysync_core.domain.status import UnifiedStatus
from paysync_core.kafka import DurableProducer
from paysync_dev.service_fixtures import fetch

#: When the observations `observation()` builds happened: minute 0.
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_counter = itertools.count()


@dataclass(frozen=True)
class Registered:
    """A payment registered the way api-gateway registers one."""

    id: uuid.UUID
    tenant: str
    provider: str
    provider_ref: str
    domain: str | None
    entity_id: str | None
    amount_minor: int | None
    currency: str | None


async def register_payment(
    engine: AsyncEngine,
    tenant: str,
    *,
    provider: str = "stripe",
    provider_ref: str | None = None,
    domain: str | None = "jobs",
    entity_id: str | None = None,
    amount_minor: int | None = 5000,
    currency: str | None = "USD",
    aliases: tuple[str, ...] = (),
) -> Registered:
    """Insert payments + payment_refs, NOTIFY paysync_registered: as api-gateway's register_payment does."""
    return (
        await register_payments(
            engine,
            tenant,
            [
                dict(
                    provider=provider,
                    provider_ref=provider_ref,
                    domain=domain,
                    entity_id=entity_id,
                    amount_minor=amount_minor,
                    currency=currency,
                    aliases=aliases,
                )
            ],
        )
    )[0]


async def register_payments(
    engine: AsyncEngine, tenant: str, specs: list[dict[str, Any]]
) -> list[Registered]:
    """Register many payments in one transaction (each spec: register_payment's keyword arguments)."""
    registered, refs = [], []
    for spec in specs:
        provider = spec.get("provider", "stripe")
        ref = spec.get("provider_ref") or f"cs_test_{uuid.uuid4().hex}"
        domain = spec.get("domain", "jobs")
        entity = spec.get("entity_id") or (f"e-{uuid.uuid4().hex[:10]}" if domain else None)
        payment_id = payment_id_for(tenant, provider, ref)
        registered.append(
            Registered(
                payment_id,
                tenant,
                provider,
                ref,
                domain,
                entity,
                spec.get("amount_minor", 5000),
                spec.get("currency", "USD"),
            )
        )
        refs += [
            {"tenant_id": tenant, "provider": provider, "ref": r, "payment_id": payment_id}
            for r in (ref, *spec.get("aliases", ()))
        ]
    async with engine.begin() as conn:
        await conn.execute(
            insert(payments)
            .values(
                [
                    {
                        "id": p.id,
                        "tenant_id": tenant,
                        "provider": p.provider,
                        "provider_ref": p.provider_ref,
                        "domain": p.domain,
                        "entity_id": p.entity_id,
                        "amount_minor": p.amount_minor,
                        "currency": p.currency,
                        "metadata": {},
                    }
                    for p in registered
                ]
            )
            .on_conflict_do_nothing()
        )
        await conn.execute(insert(payment_refs).values(refs).on_conflict_do_nothing())
        await conn.execute(text(f"NOTIFY {REGISTERED_CHANNEL}"))
    return registered


async def new_tenant(engine: AsyncEngine) -> str:
    """A fresh tenant id, created in the database."""
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    async with engine.begin() as conn:
        await tenant_repo.create_tenant(conn, tenant, "projector test")
    return tenant


def observation(
    payment: Registered | None = None,
    status: UnifiedStatus | None = UnifiedStatus.SUCCEEDED,
    minute: int = 0,
    *,
    oid: str | None = None,
    tenant: str | None = None,
    provider: str | None = None,
    ref: str | None = None,
    aliases: tuple[str, ...] = (),
    amount: int | None = 5000,
    currency: str | None = "USD",
    refunded: int | None = None,
    dispute: DisputeFact | None = None,
    verified: bool = True,
    evidence: dict[str, Any] | None = None,
) -> PaymentObservation:
    """One observation of a payment (or of a bare reference), with a unique id unless given one."""
    return PaymentObservation(
        observation_id=oid or f"obs-{next(_counter)}-{uuid.uuid4().hex[:8]}",
        tenant=tenant or payment.tenant,  # type: ignore[union-attr]
        provider=provider or (payment.provider if payment else "stripe"),
        provider_ref=ref or payment.provider_ref,  # type: ignore[union-attr]
        aliases=aliases,
        status=status,
        amount_minor=amount,
        currency=currency,
        amount_refunded_minor=refunded,
        dispute=dispute,
        provider_time=T0 + timedelta(minutes=minute),
        source="webhook",
        verified=verified,
        evidence=Evidence(**(evidence or {})),
        observed_at=T0 + timedelta(minutes=minute),
    )


async def payment_row(engine: AsyncEngine, payment: Registered) -> Any:
    """The payment's row as the projector left it."""
    return (await fetch(engine, select(payments).where(payments.c.id == payment.id)))[0]


async def publish_observations(
    bootstrap: str, batch: list[PaymentObservation], *, partition: int | None = None
) -> None:
    """Publish as webhook-ingest does (keyed by payment, acks=all), in order, each acknowledged.

    `partition` puts every record on that partition instead of the key's, to fix their order.
    """
    producer = DurableProducer(
        bootstrap, client_id="paysync-tests", partitioner=None if partition is None else lambda *_: partition
    )
    await producer.start()
    try:
        for obs in batch:
            await producer.send(
                topics.PAYMENT_OBSERVATIONS.name, topics.PAYMENT_OBSERVATIONS.key_for(obs), obs.to_bytes()
            )
    finally:
        await producer.stop()
