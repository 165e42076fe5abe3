"""The one test of whether a parked observation's payment is registered now."""

from __future__ import annotations

from sqlalchemy import TextClause, text

#: True when one of the parked row's references is bound to a payment of its tenant and gateway.
#: Each reference is one probe of payment_refs' key on all three columns: `OFFSET 0` keeps the probe
#: a subplan PostgreSQL does not turn into a join. As `r.ref IN (SELECT jsonb_array_elements_text(refs))`,
#: as a join or as `= ANY(ARRAY(…))`, the planner (estimating one reference a tenant) read all of the
#: tenant's references for every parked row: 200 parked x 20,000 references took 2-5 s a pass, 1.3 ms so.
_REGISTERED = (
    "EXISTS (SELECT 1 FROM jsonb_array_elements_text(parked_observations.refs) AS x(ref)"
    " WHERE EXISTS (SELECT 1 FROM payment_refs r WHERE r.tenant_id = parked_observations.tenant_id"
    " AND r.provider = parked_observations.provider AND r.ref = x.ref OFFSET 0))"
)


def payment_registered() -> TextClause:
    """The WHERE clause of parked rows some payment now matches (the projector's unpark takes them)."""
    return text(_REGISTERED)


def payment_unregistered() -> TextClause:
    """The WHERE clause of parked rows no payment matches yet."""
    return text(f"NOT {_REGISTERED}")
