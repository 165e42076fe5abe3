"""What the live stream reports on `/metrics`: who is connected, what was delivered, and how late."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

CLIENTS = Gauge("paysync_notifier_stream_clients", "Live streams connected to this replica", ["tenant"])
DELIVERED = Counter(
    "paysync_notifier_stream_events_delivered_total", "Status changes sent on live streams", ["tenant"]
)
DELIVERY_LAG = Histogram(
    "paysync_notifier_stream_delivery_lag_seconds",
    "From a status change (its `changed_at`) to its event being sent on a live stream",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RESYNCS = Counter(
    "paysync_notifier_stream_resyncs_total", "`stream.resync` events sent, by reason", ["reason"]
)


def delivered(tenant: str, changed_at: datetime) -> None:
    """Count one event sent to a client of `tenant`, and how long after the change it went."""
    DELIVERED.labels(tenant).inc()
    DELIVERY_LAG.observe(max((datetime.now(UTC) - changed_at).total_seconds(), 0.0))
