"""Folding a payment's batch with its observations staged ahead writes what folding them then does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from paysync_core.domain.status import UnifiedStatus as S
from paysync_dev.payments import observation
from paysync_status_projector.repository.payments import PaymentRow
from paysync_status_projector.service.folding import Folded, fold, stage

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def registered() -> PaymentRow:
    """A payment as `lock_for_batch` reads it, nothing projected yet."""
    ref = f"cs_test_{uuid.uuid4().hex}"
    return PaymentRow(
        uuid.uuid4(), "t-fold", "stripe", ref, "jobs", "e-1", 5000, "USD", "pending", 0, None, 0, {}, None
    )


def written(f: Folded) -> tuple[object, ...]:
    """What a fold leads to in the database and on the topics."""
    return (f.state, f.status, f.sequence, f.history, [c.model_dump() for c in f.changes])


def test_a_batch_staged_ahead_folds_into_the_same_rows_as_one_staged_as_it_is_folded() -> None:
    payment = registered()
    ref = payment.provider_ref
    batch = [
        observation(None, S.PROCESSING, 1, tenant="t-fold", ref=ref),
        observation(None, S.SUCCEEDED, 2, tenant="t-fold", ref=ref, evidence={"charge_id": "ch_1"}),
        observation(None, S.PARTIALLY_REFUNDED, 3, tenant="t-fold", ref=ref, refunded=1000),
    ]
    staged = {(o.tenant, o.observation_id): stage(o) for o in batch}

    assert written(fold(payment, batch, NOW, staged)) == written(fold(payment, batch, NOW))


def test_what_was_staged_for_another_copy_of_an_observation_id_is_not_used() -> None:
    payment = registered()
    paid = observation(None, S.SUCCEEDED, 2, oid="evt_1", tenant="t-fold", ref=payment.provider_ref)
    other = observation(None, S.FAILED, 2, oid="evt_1", tenant="t-fold", ref=payment.provider_ref)

    folded = fold(payment, [paid], NOW, {("t-fold", "evt_1"): stage(other)})

    assert (folded.status, folded.history[0]["status_after"]) == ("succeeded", "succeeded")
