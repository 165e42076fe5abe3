"""All SQL of the reconciler, one module per use case; the names are re-exported here for callers
that want the whole repository (tests, tools)."""

from __future__ import annotations

from paysync_reconciler.repository.checks import (
    analyze_checks,
    claim_due,
    enroll,
    enroll_statement,
    oldest_open_payment,
    release_claims,
    resolve_schedules,
    save_outcomes,
)
from paysync_reconciler.repository.columns import CHECK_COLUMNS, OPEN, PAYMENT_COLUMNS, TARGET_COLUMNS
from paysync_reconciler.repository.issues import issues_so_far, open_issue, open_issues, resolve_issue
from paysync_reconciler.repository.listing import (
    advance_watermark,
    note_listed,
    payments_by_id,
    resolve_refs,
    touch_listed,
    watermark,
)
from paysync_reconciler.repository.payments import (
    applied,
    open_payments,
    payments_by_refs,
    payments_of_entity,
    statuses,
)
from paysync_reconciler.repository.requests import (
    Started,
    claim_orphaned_requests,
    complete_request,
    fail_abandoned_requests,
    fail_request,
    purge_finished,
    renew_lease,
    start_request,
)
from paysync_reconciler.repository.tenants import has_payments, tenant_exists, tenants_with_credentials
from paysync_reconciler.repository.ticks import (
    finish_tick,
    record_tick,
    sweep_lock,
    sweep_lock_key,
)
from paysync_reconciler.repository.unrecorded import (
    create_payment,
    orphaned_successes,
    parked_aliases,
)

__all__ = [
    "CHECK_COLUMNS",
    "OPEN",
    "PAYMENT_COLUMNS",
    "Started",
    "TARGET_COLUMNS",
    "advance_watermark",
    "analyze_checks",
    "applied",
    "claim_due",
    "claim_orphaned_requests",
    "complete_request",
    "create_payment",
    "enroll",
    "enroll_statement",
    "fail_abandoned_requests",
    "fail_request",
    "finish_tick",
    "has_payments",
    "issues_so_far",
    "note_listed",
    "oldest_open_payment",
    "open_issue",
    "open_issues",
    "open_payments",
    "orphaned_successes",
    "parked_aliases",
    "payments_by_id",
    "payments_by_refs",
    "payments_of_entity",
    "purge_finished",
    "record_tick",
    "release_claims",
    "renew_lease",
    "resolve_issue",
    "resolve_refs",
    "resolve_schedules",
    "save_outcomes",
    "start_request",
    "statuses",
    "sweep_lock",
    "sweep_lock_key",
    "tenant_exists",
    "tenants_with_credentials",
    "touch_listed",
    "watermark",
]
