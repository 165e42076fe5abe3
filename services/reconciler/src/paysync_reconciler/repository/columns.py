"""What the reconciler reads of payments and their check schedules, shared by its queries."""

from __future__ import annotations

from paysync_core.db.schema import payments, reconcile_checks

#: Statuses before money moved that a gateway may still change.
OPEN = ("pending", "requires_action", "processing")


#: What a check needs of a payment (`_target` reads these).
TARGET_COLUMNS = (
    payments.c.tenant_id,
    payments.c.provider,
    payments.c.provider_ref,
    payments.c.status,
    payments.c.amount_minor,
    payments.c.currency,
    payments.c.domain,
    payments.c.entity_id,
)


PAYMENT_COLUMNS = (payments.c.id, *TARGET_COLUMNS)


CHECK_COLUMNS = (
    reconcile_checks.c.payment_id,
    reconcile_checks.c.step,
    reconcile_checks.c.listed_at,
    reconcile_checks.c.listed_status,
    *TARGET_COLUMNS,
)
