"""The projector's use cases: fold observations into payments and domain rows, relay, check drift.

`project` / `project_in` (projection.py) apply a batch; `unpark` applies parked observations;
`relay_outbox` / `purge_outbox` (outbox.py) publish and forget events; `check_drift` (drift.py)
compares domain rows with payments. The modules they use: folding.py (a payment's batch merged in
memory), alerts.py (mismatch and mode alerts), domain_rows.py (the domain rows that follow payments).
"""

from paysync_status_projector.service.drift import check_drift
from paysync_status_projector.service.outbox import Publish, purge_outbox, relay_outbox
from paysync_status_projector.service.projection import BatchResult, project, project_in, unpark

__all__ = [
    "BatchResult",
    "Publish",
    "check_drift",
    "project",
    "project_in",
    "purge_outbox",
    "relay_outbox",
    "unpark",
]
