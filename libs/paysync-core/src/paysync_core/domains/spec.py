"""The domain mapping as configured: tables, per-status templates, counters, the paid marker."""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from paysync_core.domain.status import UnifiedStatus
from paysync_core.errors import PaysyncError

#: A template that is exactly one name: it gives that field's typed value.
WHOLE = re.compile(r"^\{([a-z_]+)\}$")

#: What a template may name: the type of its value, and what it means.
FIELDS: dict[str, tuple[type, str]] = {
    "status": (str, "the unified status (pending, succeeded, refunded, ...)"),
    "provider": (str, "stripe, paystack or mpesa"),
    "provider_title": (str, "Stripe, Paystack or M-Pesa"),
    "provider_ref": (str, "the payment's reference at the gateway"),
    "payment_id": (str, "paysync's id of the payment"),
    "entity_id": (str, "the domain entity's id"),
    "session_id": (str, "the Checkout Session id (else the payment's reference)"),
    "payment_intent_id": (str, "the success's PaymentIntent id"),
    "charge_id": (str, "the success's charge id"),
    "transaction_id": (str, "the success's transaction id (Paystack)"),
    "receipt_number": (str, "the success's receipt number (M-Pesa)"),
    "transaction_ref": (
        str,
        "the success's most specific gateway id: receipt, charge, transaction or intent",
    ),
    "evidence": (str, "the success's gateway ids, as 'name=value, ...'"),
    "amount_minor": (int, "the registered amount, minor units"),
    "currency": (str, "the registered currency (else the paid one)"),
    "amount_received_minor": (int, "what the accepted success brought in"),
    "amount_refunded_minor": (int, "what was refunded so far"),
    "amount_net_minor": (int, "received minus refunded"),
    "paid_at": (datetime, "when money first moved"),
    "changed_at": (datetime, "the newest provider time behind the state"),
    "error": (str, "the gateway's words for a failure, while failed, canceled or expired"),
    "flags": (str, "comma-separated flags (amount_mismatch, currency_mismatch)"),
    "sends": (int, "times the payment was sent to the customer (M-Pesa STK pushes; 1 for the others)"),
}
SUMMABLE = ("amount_minor", "amount_received_minor", "amount_refunded_minor", "amount_net_minor", "sends")


class DomainConfigError(PaysyncError):
    """The domain mapping is not valid; the message says where."""

    code = "domain_config"


@dataclass(frozen=True, slots=True)
class Counter:
    """A column computed over all the entity's payments: how many, or the sum of one amount."""

    column: str
    kind: str  # "count" or "sum"
    field: str | None
    statuses: frozenset[UnifiedStatus]

    def compute(self, payments: Iterable[tuple[UnifiedStatus, Mapping[str, Any]]]) -> int:
        """The counter's value over (status, context) pairs of the entity's payments."""
        chosen = [ctx for status, ctx in payments if status in self.statuses]
        if self.kind == "count":
            return len(chosen)
        return sum(ctx.get(self.field or "") or 0 for ctx in chosen)


@dataclass(frozen=True, slots=True)
class TableMapping:
    """One table a domain writes and, per unified status, the column templates to write."""

    table: str
    key_column: str
    tenant_column: str
    schema: str | None = None
    entity_column: str | None = None
    default: Mapping[str, str] = field(default_factory=dict)
    on: Mapping[UnifiedStatus, Mapping[str, str]] = field(default_factory=dict)
    keep: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Per status, each written column with its template parsed: rows are rendered for every
    #: payment of every batch, templates are parsed once.
    _renderers: Mapping[UnifiedStatus, tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        renderers = {
            status: tuple((column, _parsed(t)) for column, t in self.templates_for(status).items())
            for status in UnifiedStatus
        }
        object.__setattr__(self, "_renderers", renderers)  # frozen: set once, here

    def templates_for(self, status: UnifiedStatus) -> dict[str, str]:
        """The defaults, then succeeded's once money moved (refunds follow a success), then the status's."""
        templates = dict(self.default)
        if status.money_moved:
            templates.update(self.on.get(UnifiedStatus.SUCCEEDED, {}))
        templates.update(self.on.get(status, {}))
        return templates

    def render_for(self, status: UnifiedStatus, context: Mapping[str, Any]) -> dict[str, Any]:
        """The values `templates_for(status)` gives for one payment's context (see `render`)."""
        return {column: value_of(context) for column, value_of in self._renderers[status]}

    def has_row(self, status: UnifiedStatus) -> bool:
        """For a per-payment table: whether a payment in this status has a row there."""
        if self.default or status in self.on:
            return True
        return status.money_moved and UnifiedStatus.SUCCEEDED in self.on

    @property
    def columns(self) -> set[str]:
        """Every column this mapping names."""
        names = {self.key_column, self.tenant_column, *self.default, *self.keep}
        if self.entity_column:
            names.add(self.entity_column)
        for templates in self.on.values():
            names.update(templates)
        return names


@dataclass(frozen=True, slots=True)
class PaidMarker:
    """How to tell, from its row alone, that an entity is marked paid (for the drift checks)."""

    column: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """One domain: its main table, counters, optional per-payment table and paid marker."""

    name: str
    main: TableMapping
    counters: Mapping[str, Counter] = field(default_factory=dict)
    per_payment: TableMapping | None = None
    paid: PaidMarker | None = None

    def values_for(self, status: UnifiedStatus, context: Mapping[str, Any]) -> dict[str, Any] | None:
        """The main row's templated values for a status, rendered; None if the status writes nothing."""
        return self.main.render_for(status, context) or None


def render(template: str, context: Mapping[str, Any]) -> Any:
    """A template's value: exactly "{name}" gives the typed value, anything else a string."""
    return _parsed(template)(context)


@functools.cache
def _parsed(template: str) -> Callable[[Mapping[str, Any]], Any]:
    """`render` of one template, as a function of the context: the template is parsed here, once."""
    whole = WHOLE.match(template)
    if whole:
        name = whole.group(1)
        return lambda context: context.get(name)
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if not names:
        constant = template.format_map({})  # "{{" and "}}" are still braces escaped
        return lambda _: constant
    return lambda context: template.format_map(
        {name: "" if context.get(name) is None else context[name] for name in names}
    )
