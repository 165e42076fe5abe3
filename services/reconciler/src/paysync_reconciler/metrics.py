"""The reconciler's Prometheus metrics (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TICKS = Counter("paysync_reconciler_ticks_total", "Ticks received, by outcome", ["outcome"])
REQUESTS = Counter(
    "paysync_reconciler_requests_total", "On-demand check requests, by kind and outcome", ["kind", "outcome"]
)
CHECKED = Counter(
    "paysync_reconciler_payments_checked_total", "Payments checked, by gateway and how", ["provider", "how"]
)
FIXED = Counter(
    "paysync_reconciler_payments_fixed_total", "Checks that corrected a payment's status", ["provider"]
)
ISSUES = Counter("paysync_reconciler_sync_issues_total", "Sync issues raised (each alerted once)", ["kind"])
GATEWAY_ERRORS = Counter(
    "paysync_reconciler_gateway_errors_total", "Checks the gateway could not answer", ["provider", "code"]
)
GATEWAY_CALLS = Counter(
    "paysync_reconciler_gateway_calls_total",
    "Requests sent to gateways (budget tokens)",
    ["provider", "priority"],
)
CHECK_FAILURES = Counter(
    "paysync_reconciler_check_failures_total",
    "Checks of one payment that failed for a reason of their own (not the gateway's), by error type",
    ["provider", "error"],
)
THROTTLED = Counter(
    "paysync_reconciler_gateway_throttled_total",
    "Answers that said too many requests",
    ["provider", "priority"],
)
OBSERVATIONS = Counter("paysync_reconciler_observations_total", "Observations published", ["provider", "how"])
THROTTLED_RATE = Gauge(
    "paysync_reconciler_throttled_rate", "A budget's requests/s right after its last slow-down", ["provider"]
)
CIRCUIT_OPEN = Gauge(
    "paysync_reconciler_circuits_open", "Tenant circuits open now, per gateway", ["provider"]
)
RUN_STATS = Counter("paysync_reconciler_run_stats_total", "Totals of every run's stats", ["provider", "stat"])
LAST_RUN = Gauge("paysync_reconciler_last_run_stat", "The last completed sweep's stats", ["provider", "stat"])
SWEEP_SECONDS = Histogram(
    "paysync_reconciler_sweep_seconds",
    "Duration of a sweep",
    ["provider"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
)
UNREADABLE_TENANTS = Gauge(
    "paysync_reconciler_tenants_credentials_unreadable",
    "Tenants whose gateway credentials no configured key decrypts (not swept until re-encrypted)",
)
