"""The projector's use cases: fold observations into payments and domain rows; relay the outbox."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paysync_core import topics
from paysync_core.contracts import PaymentObservation, PaymentStatusChanged, Provider, payment_key
from paysync_core.domain.merge import Expectation, PaymentState, apply
from paysync_core.domain.status import UnifiedStatus
from paysync_status_projector import repository as repo
from paysync_status_projector.domains import DomainSpec, write_domain_row

log = structlog.get_logger()

#: Publishes (topic, key, value) and returns once the broker acknowledged it.
Publish = Callable[[str, bytes, bytes], Awaitable[object]]


@dataclass(slots=True)
class BatchResult:
    """What one batch did."""

    applied: int = 0
    duplicates: int = 0
    parked: int = 0
    status_changes: list[PaymentStatusChanged] = field(default_factory=list)


async def project(
    engine: AsyncEngine,
    batch: Sequence[PaymentObservation],
    domains: dict[str, DomainSpec],
    *,
    attempts: int = 5,
) -> BatchResult:
    """Apply a batch in one transaction, retrying when PostgreSQL reports a deadlock."""
    for attempt in range(1, attempts + 1):
        try:
            async with engine.begin() as conn:
                return await project_in(conn, batch, domains)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) not in ("40P01", "40001") or attempt == attempts:
                raise
            await asyncio.sleep(0.01 * attempt)
    raise AssertionError("unreachable")


async def project_in(
    conn: AsyncConnection, batch: Sequence[PaymentObservation], domains: dict[str, DomainSpec]
) -> BatchResult:
    """Apply observations inside the caller's transaction: payments, history, domain rows, outbox."""
    result = BatchResult()
    unique = list({(o.tenant, o.observation_id): o for o in batch}.values())
    result.duplicates += len(batch) - len(unique)
    refs = await repo.resolve_refs(
        conn, ((o.tenant, o.provider.value, ref) for o in unique for ref in o.refs)
    )
    by_payment: dict[Any, list[PaymentObservation]] = defaultdict(list)
    orphans = []
    for obs in unique:
        payment_id = next((refs[k] for k in ((obs.tenant, obs.provider.value, r) for r in obs.refs) if k in refs), None)
        if payment_id is None:
            orphans.append(obs)
        else:
            by_payment[payment_id].append(obs)
    await repo.park(conn, orphans)
    result.parked = len(orphans)

    locked = await repo.lock_payments(conn, by_payment)
    for payment_id in sorted(locked):
        await _apply_to_payment(conn, locked[payment_id], by_payment[payment_id], domains, result)
    return result


async def _apply_to_payment(
    conn: AsyncConnection,
    payment: Any,
    batch: list[PaymentObservation],
    domains: dict[str, DomainSpec],
    result: BatchResult,
) -> None:
    expected = Expectation(payment.amount_minor, payment.currency)
    state = PaymentState.from_json(payment.merge_state)
    status, sequence = payment.status, payment.sequence
    history, changes = [], []
    # Re-applying an observation already in the state changes nothing (the merge is idempotent),
    # so one pass gives each new observation's effect; the history insert then tells which were new.
    for obs in sorted(batch, key=lambda o: (o.provider_time, o.observation_id)):
        state = apply(state, obs, expected)
        history.append(_history_row(payment.id, obs, state.status.value))
        if state.status.value != status:
            sequence += 1
            changes.append(_status_change(payment, obs, state, status, sequence))
            status = state.status.value
    fresh = await repo.record_history(conn, history)
    result.duplicates += len(batch) - len(fresh)
    result.applied += len(fresh)
    if not fresh:
        return
    if changes:
        await _follow_in_domain(conn, payment, state, domains)
    result.status_changes += changes
    await repo.add_refs(conn, [
        {"tenant_id": payment.tenant_id, "provider": payment.provider, "ref": ref, "payment_id": payment.id}
        for obs in batch if obs.observation_id in fresh for ref in obs.aliases
    ])
    await repo.update_payment(conn, payment.id, {
        "merge_state": state.to_json(),
        "status": status,
        "sequence": sequence,
        "flags": sorted(state.flags),
        "amount_received_minor": state.success.amount_minor if state.success else None,
        "amount_refunded_minor": state.refunded_minor,
        "paid_at": state.paid_at,
        **({"status_changed_at": _now()} if changes else {}),
    })
    key = payment_key(payment.tenant_id, payment.provider, payment.provider_ref)
    await repo.enqueue(conn, [
        {"topic": topics.PAYMENT_STATUS.name, "key": key, "payload": orjson.loads(c.to_bytes())}
        for c in changes
    ])


async def _follow_in_domain(
    conn: AsyncConnection, payment: Any, state: PaymentState, domains: dict[str, DomainSpec]
) -> None:
    """Write the entity's row as a function of the payment's merged state (never of the path)."""
    spec = domains.get(payment.domain or "")
    if spec is None or payment.entity_id is None:
        return
    provider = Provider(payment.provider)
    context = {
        "status": state.status.value,
        "provider": provider.value,
        "provider_title": provider.title,
        "provider_ref": payment.provider_ref,
        "session_id": payment.provider_ref,
        "amount_minor": payment.amount_minor,
        "currency": payment.currency or (state.success.currency if state.success else None),
        "amount_received_minor": state.success.amount_minor if state.success else None,
        "amount_refunded_minor": state.refunded_minor,
        "paid_at": state.paid_at,
        "changed_at": _now(),
    }
    values: dict[str, Any] = {}
    # Refunds and disputes follow a success: the row shows the payment too, then what came after.
    if state.status.money_moved and state.status is not UnifiedStatus.SUCCEEDED:
        values.update(spec.values_for(UnifiedStatus.SUCCEEDED, context) or {})
    values.update(spec.values_for(state.status, context) or {})
    if values:
        await write_domain_row(conn, spec, payment.tenant_id, payment.entity_id, values)


def _status_change(
    payment: Any, obs: PaymentObservation, state: PaymentState, old: str | None, sequence: int
) -> PaymentStatusChanged:
    return PaymentStatusChanged(
        event_id=f"{payment.id}:{sequence}",
        tenant=payment.tenant_id,
        payment_id=str(payment.id),
        provider=payment.provider,
        provider_ref=payment.provider_ref,
        domain=payment.domain,
        entity_id=payment.entity_id,
        old_status=old,
        new_status=state.status,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        amount_received_minor=state.success.amount_minor if state.success else None,
        amount_refunded_minor=state.refunded_minor,
        flags=tuple(sorted(state.flags)),
        sequence=sequence,
        observation_id=obs.observation_id,
        evidence=obs.evidence,
        changed_at=_now(),
    )


def _history_row(payment_id: Any, obs: PaymentObservation, status_after: str) -> dict[str, Any]:
    return {
        "tenant_id": obs.tenant,
        "observation_id": obs.observation_id,
        "payment_id": payment_id,
        "provider_ref": obs.provider_ref,
        "status": obs.status.value if obs.status else None,
        "provider_time": obs.provider_time,
        "source": obs.source.value,
        "verified": obs.verified,
        "amount_minor": obs.amount_minor,
        "currency": obs.currency,
        "evidence": obs.evidence.model_dump(mode="json", exclude_none=True),
        "status_after": status_after,
    }


async def unpark(engine: AsyncEngine, domains: dict[str, DomainSpec], limit: int = 500) -> BatchResult:
    """Apply parked observations whose payment has been registered since."""
    async with engine.begin() as conn:
        matched = await repo.take_matched_parked(conn, limit)
        return await project_in(conn, matched, domains) if matched else BatchResult()


async def relay_outbox(engine: AsyncEngine, publish: Publish, limit: int) -> int:
    """Publish committed events in id order (per payment: commit order); returns how many."""
    async with engine.begin() as conn:
        if not await repo.try_relay_lock(conn):
            return 0
        rows = await repo.unpublished(conn, limit)
        if not rows:
            return 0
        by_key: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            by_key[row.key].append(row)

        async def send_in_order(key_rows: list[Any]) -> None:
            for row in key_rows:
                await publish(row.topic, row.key.encode(), orjson.dumps(row.payload))

        await asyncio.gather(*(send_in_order(r) for r in by_key.values()))
        await repo.mark_published(conn, [row.id for row in rows])
        return len(rows)


def _now() -> datetime:
    return datetime.now(UTC)
