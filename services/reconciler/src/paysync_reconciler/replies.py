"""The reply to an on-demand check: what each payment's check came to, and the counts."""

from __future__ import annotations

import uuid
from datetime import datetime

from paysync_core.contracts import CheckedPayment, ReconcileReply, ReconcileRequest
from paysync_core.domain.status import UnifiedStatus
from paysync_core.providers.clients import NotFoundAtGateway
from paysync_reconciler.models import Target
from paysync_reconciler.ports import Answer


def build_reply(
    request: ReconcileRequest,
    targets: list[Target],
    answers: list[Answer],
    after: dict[uuid.UUID, str],
    now: datetime,
) -> ReconcileReply:
    checked: list[CheckedPayment] = []
    updated = found_paid = errors = 0
    entities: set[tuple[str, str]] = set()
    for target, answer in zip(targets, answers, strict=True):
        before = target.status.value if target.status else None
        status_after = after.get(target.payment_id) if target.payment_id else None
        changed = status_after is not None and status_after != before
        error = None if answer.answered else (str(answer.error) if answer.error else "no answer")[:300]
        if isinstance(answer.error, NotFoundAtGateway):
            error = f"not found at {target.provider.display_name}"
        errors += error is not None
        updated += changed
        if (
            status_after is not None
            and changed
            and UnifiedStatus(status_after).money_moved
            and not (target.status and target.status.money_moved)
        ):
            found_paid += 1
        if target.domain and target.entity_id:
            entities.add((target.domain, target.entity_id))
        checked.append(
            CheckedPayment(
                payment_id=str(target.payment_id) if target.payment_id else None,
                provider=target.provider,
                provider_ref=target.provider_ref,
                status_before=before,
                status_after=status_after,
                changed=changed,
                error=error,
            )
        )
    return ReconcileReply(
        request_id=request.request_id,
        tenant=request.tenant,
        kind=request.kind,
        entities_checked=len(entities),
        payments_checked=len(targets),
        payments_updated=updated,
        payments_found_paid=found_paid,
        gateway_errors=errors,
        payments=tuple(checked) if request.kind != "bulk" else (),
        completed_at=now,
    )
