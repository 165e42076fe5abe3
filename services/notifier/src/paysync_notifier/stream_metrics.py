"""What the live stream reports on `/metrics`: who is connected, what was delivered, and how late."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

from paysync_notifier.service import StreamEvent

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


def delivered(events: Sequence[StreamEvent]) -> None:
    """Count events sent in a row to one client (one tenant's), and how long after each change they went."""
    if not events:
        return
    DELIVERED.labels(events[0].tenant).inc(len(events))
    now = datetime.now(UTC)
    for event in events:
        DELIVERY_LAG.observe(max((now - event.changed_at).total_seconds(), 0.0))
