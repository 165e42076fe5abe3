"""The reconciler's use cases, one module each; the handlers and the composition root find them here.

Everything the gateways say becomes a verified RECONCILE observation on the observations topic;
the status-projector applies it. Nothing in the use cases imports a framework: the broker, the
database engine and the gateway ports come in through `Deps` (`ports.py`).

- `sweeps`: a tick taken on once, its sweep (enrolment, `list_sweep`, `due_checks`, `unrecorded`);
- `on_demand`: targeted checks and their replies (`replies`);
- `scheduler`: the ticks of every configured gateway, once per cadence slot;
- `alerts`: each drift alert raised once, circuit changes reported.
"""

from __future__ import annotations

from paysync_reconciler.alerts import circuit_changed, raise_once
from paysync_reconciler.on_demand import answer_request, forget_old_records, handle_request, recover_requests
from paysync_reconciler.ports import Answer, Deps, Gateways, Outbound, Port, utcnow
from paysync_reconciler.scheduler import SchedulerState, publish_due_ticks
from paysync_reconciler.sweeps import handle_tick, sweep

__all__ = [
    "Answer",
    "Deps",
    "Gateways",
    "Outbound",
    "Port",
    "SchedulerState",
    "answer_request",
    "circuit_changed",
    "forget_old_records",
    "handle_request",
    "handle_tick",
    "publish_due_ticks",
    "raise_once",
    "recover_requests",
    "sweep",
    "utcnow",
]
