"""Wire contracts: the messages paysync's services exchange through Kafka."""

from paysync_core.contracts.alert import Alert, AlertKind, alert_id
from paysync_core.contracts.common import (
    Contract,
    EntityRef,
    ObservationSource,
    Provider,
    Verdict,
    payment_key,
)
from paysync_core.contracts.dead_letter import DeadLetter
from paysync_core.contracts.envelope import RawWebhook
from paysync_core.contracts.observation import DisputeFact, Evidence, PaymentObservation
from paysync_core.contracts.reconcile import CheckedPayment, ReconcileReply, ReconcileRequest, ReconcileTick
from paysync_core.contracts.status_change import PaymentStatusChanged

__all__ = [
    "Alert",
    "AlertKind",
    "Contract",
    "DeadLetter",
    "DisputeFact",
    "EntityRef",
    "Evidence",
    "ObservationSource",
    "PaymentObservation",
    "PaymentStatusChanged",
    "Provider",
    "RawWebhook",
    "ReconcileReply",
    "ReconcileRequest",
    "ReconcileTick",
    "CheckedPayment",
    "Verdict",
    "alert_id",
    "payment_key",
]
