"""Domains by configuration: which rows follow a payment, and what to write for each status.

A domain maps a payment's merged state onto an app's own rows: the entity's row in its main
table (upserted by tenant and key) and, optionally, one row per payment in a child table.
What a row shows is a function of the final merged states only, never of the order in which
observations arrived; `load_domains` refuses a mapping that could make it depend on the path.
spec.py holds the mapping, loader.py reads and validates it, binding.py checks it against the
database, values.py computes what rows show; identifiers from the mapping are validated and always
quoted in SQL. The status-projector writes the rows; `paysync replay --dry-run` computes the same
values to say which rows a replay would change.
"""

from pathlib import Path

from paysync_core.domains.binding import BoundDomain, BoundTable, Domains
from paysync_core.domains.loader import load_domains
from paysync_core.domains.spec import (
    FIELDS,
    SUMMABLE,
    Counter,
    DomainConfigError,
    DomainSpec,
    PaidMarker,
    TableMapping,
    render,
)

__all__ = [
    "BUILTIN_DOMAINS",
    "FIELDS",
    "SUMMABLE",
    "BoundDomain",
    "BoundTable",
    "Counter",
    "DomainConfigError",
    "DomainSpec",
    "Domains",
    "PaidMarker",
    "TableMapping",
    "load_domains",
    "render",
]

#: The built-in mapping (workshop jobs, bookings, invoices, referrals); its format is documented in it.
BUILTIN_DOMAINS = Path(__file__).parent / "domains.toml"
