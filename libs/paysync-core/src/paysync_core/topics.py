"""Every Kafka topic paysync uses, in one place: names, partitions, configs."""

from __future__ import annotations

from dataclasses import dataclass, field

_DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as provisioned: its name, partition count and topic-level configs."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def dlq(self) -> TopicSpec:
        """The dead-letter topic for records of this topic that keep failing."""
        return TopicSpec(
            name=f"{self.name}.dlq",
            partitions=min(self.partitions, 3),
            configs={"retention.ms": str(90 * _DAY_MS), "cleanup.policy": "delete"},
            description=f"Records of {self.name} that kept failing, with the error",
        )


WEBHOOKS_RAW = TopicSpec(
    "paysync.webhooks.raw.v1",
    partitions=12,
    # Longer than Stripe's 30-day event window, so any webhook can be replayed.
    configs={"retention.ms": str(40 * _DAY_MS), "cleanup.policy": "delete", "max.message.bytes": "2097152"},
    description="Webhooks as received, with the authenticity verdict: audit log and replay source",
)
PAYMENT_OBSERVATIONS = TopicSpec(
    "paysync.payment-observations.v1",
    partitions=12,
    configs={"retention.ms": str(40 * _DAY_MS), "cleanup.policy": "delete"},
    description="One observation of one payment's state, from any source",
)
RECONCILE_TICKS = TopicSpec(
    "paysync.reconcile.ticks.v1",
    partitions=3,
    configs={"retention.ms": str(7 * _DAY_MS)},
    description="Schedule ticks; a consumer group makes each run once",
)
RECONCILE_REQUESTS = TopicSpec(
    "paysync.reconcile.requests.v1",
    partitions=6,
    configs={"retention.ms": str(7 * _DAY_MS)},
    description="Targeted checks: from refresh buttons, and callbacks to confirm",
)
RECONCILE_REPLIES = TopicSpec(
    "paysync.reconcile.replies.v1",
    partitions=6,
    configs={"retention.ms": str(1 * _DAY_MS)},
    description="Answers to targeted checks, for whoever is waiting",
)
PAYMENT_STATUS = TopicSpec(
    "paysync.payment-status.v1",
    partitions=12,
    configs={"retention.ms": str(40 * _DAY_MS), "cleanup.policy": "delete"},
    description="Status changes, relayed from the projector's outbox after commit",
)
ALERTS = TopicSpec(
    "paysync.alerts.v1",
    partitions=3,
    configs={"retention.ms": str(90 * _DAY_MS)},
    description="Sync issues: drift, stuck payments, amount mismatch, gateway errors",
)

#: The topics whose records may fail processing, and so have a dead-letter topic.
WITH_DLQ = (WEBHOOKS_RAW, PAYMENT_OBSERVATIONS, RECONCILE_REQUESTS, RECONCILE_TICKS, PAYMENT_STATUS, ALERTS)

ALL: tuple[TopicSpec, ...] = (
    WEBHOOKS_RAW,
    PAYMENT_OBSERVATIONS,
    RECONCILE_TICKS,
    RECONCILE_REQUESTS,
    RECONCILE_REPLIES,
    PAYMENT_STATUS,
    ALERTS,
    *(t.dlq for t in WITH_DLQ),
)


def by_name(name: str) -> TopicSpec:
    """The spec of a provisioned topic; KeyError for a name paysync does not use."""
    for spec in ALL:
        if spec.name == name:
            return spec
    raise KeyError(name)
