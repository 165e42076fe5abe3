"""webhook-ingest's Prometheus metrics."""

from prometheus_client import Counter, Histogram

WEBHOOKS = Counter(
    "paysync_webhooks_total",
    "Webhook requests by tenant, gateway and outcome",
    ["tenant", "provider", "outcome"],
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
