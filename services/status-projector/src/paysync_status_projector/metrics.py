"""status-projector's Prometheus metrics."""

from prometheus_client import Counter, Histogram

OBSERVATIONS = Counter("paysync_projector_observations_total", "Observations by outcome", ["outcome"])
STATUS_CHANGES = Counter("paysync_projector_status_changes_total", "Status changes written", ["status"])
ALERTS = Counter("paysync_projector_alerts_total", "Alerts raised (amount mismatch, drift)", ["source"])
RELAYED = Counter("paysync_outbox_relayed_total", "Outbox events published")
BATCH_SECONDS = Histogram(
    "paysync_projector_batch_seconds",
    "Time to apply one batch in PostgreSQL",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SIZE = Histogram(
    "paysync_projector_batch_size",
    "Observations per batch",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000),
)
