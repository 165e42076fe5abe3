"""webhook-ingest's Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

WEBHOOKS = Counter(
    "paysync_webhooks_total",
    "Webhook requests by tenant, gateway and outcome",
    ["tenant", "provider", "outcome"],
)
IN_FLIGHT = Gauge(
    "paysync_webhooks_in_flight",
    "Webhook requests being answered now (most of them wait for the broker's acknowledgement)",
)
PRODUCE_SECONDS = Histogram(
    "paysync_webhook_produce_seconds",
    "Time from request to broker acknowledgement of the raw record",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
NORMALIZED = Counter(
    "paysync_normalizer_records_total",
    "Raw records processed by the normalizer, by gateway and outcome",
    ["provider", "outcome"],
)
QUARANTINE_DROPPED = Counter(
    "paysync_webhook_quarantine_dropped_total",
    "Refused requests whose quarantine record could not be kept (queue full or database away)",
)
QUARANTINE_EXPIRED = Counter(
    "paysync_webhook_quarantine_expired_total", "Quarantine records deleted past their retention"
)
NORMALIZER_LAG = Gauge(
    "paysync_normalizer_lag_records", "Raw records not yet normalized, by partition", ["partition"]
)
CONFIRMATIONS = Counter(
    "paysync_normalizer_confirmations_requested_total", "M-Pesa callbacks sent to the reconciler to confirm"
)
