"""Every Kafka topic paysync uses, in one place: names, partitions, configs, message type and key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from paysync_core.contracts import (
    Alert,
    Contract,
    DeadLetter,
    PaymentObservation,
    PaymentStatusChanged,
    Provider,
    RawWebhook,
    ReconcileReply,
    ReconcileRequest,
    ReconcileTick,
    payment_key,
)

_DAY_MS = 24 * 60 * 60 * 1000

M = TypeVar("M", bound=Contract)


@dataclass(frozen=True, slots=True)
class TopicSpec(Generic[M]):
    """A topic as provisioned (name, partitions, configs), the contract of its records and their key.

    The key decides the partition (Kafka's murmur2 partitioner), so every record about one payment
    keeps its order: producers take it from `key_for`, never work it out themselves.
    """

    name: str
    partitions: int
    message: type[M]
    key: Callable[[M], bytes] = field(repr=False)
    configs: dict[str, str] = field(default_factory=dict)
    description: str = ""
    #: How the key is made, in words (docs/topics.md shows it).
    key_description: str = ""

    def key_for(self, message: M) -> bytes:
        """The Kafka key of a record of this topic."""
        return self.key(message)

    @property
    def dlq(self) -> TopicSpec[DeadLetter]:
        """The dead-letter topic for records of this topic that keep failing."""
        return TopicSpec(
            name=f"{self.name}.dlq",
            partitions=min(self.partitions, 3),
            message=DeadLetter,
            key=_source_key,
            configs={"retention.ms": str(90 * _DAY_MS), "cleanup.policy": "delete"},
            description=f"Records of {self.name} that kept failing, with the error",
            key_description="the source record's key",
        )


def raw_webhook_key(tenant: str, provider: Provider, reference: str | None) -> bytes:
    """The raw topic's key: the payment key when the body names a reference, else `<tenant>:<provider>`.

    webhook-ingest's request path calls this with the reference it already found, so the body is
    not parsed twice per webhook; `WEBHOOKS_RAW.key_for` finds the reference itself.
    """
    key = payment_key(tenant, provider, reference) if reference else f"{tenant}:{provider.value}"
    return key.encode()


def _raw_key(raw: RawWebhook) -> bytes:
    from paysync_core.providers import adapter_for  # the adapters import the contracts, not topics

    return raw_webhook_key(raw.tenant, raw.provider, adapter_for(raw.provider).reference_hint(raw.body))


def _payment_key_of(message: PaymentObservation | PaymentStatusChanged) -> bytes:
    return payment_key(message.tenant, message.provider, message.provider_ref).encode()


def _tenant_key(message: Any) -> bytes:
    return message.tenant.encode()


def _tick_key(tick: ReconcileTick) -> bytes:
    return f"{tick.tenant}:{tick.provider.value}".encode()


def _source_key(letter: DeadLetter) -> bytes:
    # Every paysync topic is keyed, so a dead letter always has its source record's key.
    return letter.key or b""


_PAYMENT_KEY = "payment key"  # `payment_key()`: `<tenant>:<provider>:<provider_ref>`

WEBHOOKS_RAW = TopicSpec(
    "paysync.webhooks.raw.v1",
    partitions=12,
    message=RawWebhook,
    key=_raw_key,
    # Longer than Stripe's 30-day event window, so any webhook can be replayed.
    configs={"retention.ms": str(40 * _DAY_MS), "cleanup.policy": "delete", "max.message.bytes": "2097152"},
    description="Webhooks as received, with the authenticity verdict: audit log and replay source",
    key_description="payment key when the adapter finds a reference in the body, else `<tenant>:<provider>`",
)
PAYMENT_OBSERVATIONS = TopicSpec(
    "paysync.payment-observations.v1",
    partitions=12,
    message=PaymentObservation,
    key=_payment_key_of,
    configs={"retention.ms": str(40 * _DAY_MS), "cleanup.policy": "delete"},
    description="One observation of one payment's state, from any source",
    key_description=_PAYMENT_KEY,
)
RECONCILE_TICKS = TopicSpec(
    "paysync.reconcile.ticks.v1",
    partitions=3,
    message=ReconcileTick,
    key=_tick_key,
    configs={"retention.ms": str(7 * _DAY_MS)},
    description="Schedule ticks; a consumer group makes each run once",
    key_description="`<tenant>:<provider>`",
)
RECONCILE_REQUESTS = TopicSpec(
    "paysync.reconcile.requests.v1",
    partitions=6,
    message=ReconcileRequest,
    key=_tenant_key,
    configs={"retention.ms": str(7 * _DAY_MS)},
    description="Targeted checks: from refresh buttons, and callbacks to confirm",
    key_description="tenant",
)
RECONCILE_REPLIES = TopicSpec(
    "paysync.reconcile.replies.v1",
    partitions=6,
    message=ReconcileReply,
    key=_tenant_key,
    configs={"retention.ms": str(1 * _DAY_MS)},
    description="Answers to targeted checks, for whoever is waiting",
    key_description="tenant",
)
PAYMENT_STATUS = TopicSpec(
    "paysync.payment-status.v1",
    partitions=12,
    message=PaymentStatusChanged,
    key=_payment_key_of,
    configs={"retention.ms": str(40 * _DAY_MS), "cleanup.policy": "delete"},
    description="Status changes, relayed from the projector's outbox after commit",
    key_description=_PAYMENT_KEY,
)
ALERTS = TopicSpec(
    "paysync.alerts.v1",
    partitions=3,
    message=Alert,
    key=_tenant_key,
    configs={"retention.ms": str(90 * _DAY_MS)},
    description="Sync issues: drift, stuck payments, amount mismatch, gateway errors",
    key_description="tenant",
)

#: The topics whose records may fail processing, and so have a dead-letter topic.
WITH_DLQ = (WEBHOOKS_RAW, PAYMENT_OBSERVATIONS, RECONCILE_REQUESTS, RECONCILE_TICKS, PAYMENT_STATUS, ALERTS)

ALL: tuple[TopicSpec[Any], ...] = (
    WEBHOOKS_RAW,
    PAYMENT_OBSERVATIONS,
    RECONCILE_TICKS,
    RECONCILE_REQUESTS,
    RECONCILE_REPLIES,
    PAYMENT_STATUS,
    ALERTS,
    *(t.dlq for t in WITH_DLQ),
)


def by_name(name: str) -> TopicSpec[Any]:
    """The spec of a provisioned topic; KeyError for a name paysync does not use."""
    for spec in ALL:
        if spec.name == name:
            return spec
    raise KeyError(name)
