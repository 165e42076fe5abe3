"""Shared fixtures and builders of the projector's integration and end-to-end tests."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.contracts import DisputeFact, Evidence, PaymentObservation, payment_key
from paysync_core.db import REGISTERED_CHANNEL
from paysync_core.db import tenants as tenant_repo
from paysync_core.db.schema import payment_refs, payments
from paysync_core.domain.status import UnifiedStatus
from paysync_status_projector.domains import Domains, load_domains
from paysync_status_projector.settings import BUILTIN_DOMAINS

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
#: The namespace api-gateway derives payment ids in (paysync_api_gateway.repository.payment_id_for).
_PAYMENT_NAMESPACE = uuid.UUID("6f6e6c79-2d70-6179-7379-6e632d706179")
_counter = itertools.count()


@pytest.fixture(scope="session")
async def domains(engine: AsyncEngine) -> Domains:
    """The built-in domains, bound to the database's tables."""
    bound = Domains(load_domains(BUILTIN_DOMAINS))
    await bound.bind(engine)
    return bound


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
        payment_id = uuid.uuid5(_PAYMENT_NAMESPACE, f"{tenant}:{provider}:{ref}")
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


async def commit_group_at_end(bootstrap: str, group: str, topic: str) -> None:
    """Start a new consumer group where the topic ends now, so it does not re-read other tests' records."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        if not consumer.partitions_for_topic(topic):
            await consumer._client.force_metadata_update()  # noqa: SLF001 - no public call for this
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.commit({tp: ends[tp] for tp in partitions})
    finally:
        await consumer.stop()


async def publish_observations(
    bootstrap: str, batch: list[PaymentObservation], *, partition: int | None = None
) -> None:
    """Publish as webhook-ingest does (keyed by payment, acks=all), in order, each acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for obs in batch:
            key = payment_key(obs.tenant, obs.provider, obs.provider_ref).encode()
            await producer.send_and_wait(
                topics.PAYMENT_OBSERVATIONS.name, obs.to_bytes(), key=key, partition=partition
            )
    finally:
        await producer.stop()


async def fetch(engine: AsyncEngine, statement: Any) -> list[Any]:
    """Rows of a query."""
    async with engine.connect() as conn:
        return list(await conn.execute(statement))


async def payment_row(engine: AsyncEngine, payment: Registered) -> Any:
    """The payment's row as the projector left it."""
    return (await fetch(engine, select(payments).where(payments.c.id == payment.id)))[0]


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """This module's builders, for tests (a conftest is not importable under importlib mode)."""
    return SimpleNamespace(
        commit_group_at_end=commit_group_at_end,
        publish=publish_observations,
        register=register_payment,
        register_many=register_payments,
        observation=observation,
        fetch=fetch,
        payment_row=payment_row,
        new_tenant=new_tenant,
        T0=T0,
    )
