"""The adapter registry, and the status tables as data: read by the parsers, rendered in the docs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from paysync_core.contracts.common import Provider
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.providers import ADAPTERS, adapter_for
from paysync_core.providers import paystack as paystack_module
from paysync_core.providers import stripe as stripe_module
from paysync_core.providers.mpesa import MpesaAdapter
from paysync_core.providers.paystack import PaystackAdapter
from paysync_core.providers.status_docs import render
from paysync_core.providers.stripe import StripeAdapter
from paysync_core.testing.builders import paystack as pb
from paysync_core.testing.builders import stripe as sb
from paysync_core.testing.builders import to_body

DOC = Path(__file__).resolve().parents[3] / "docs" / "status-tables.md"


@pytest.mark.parametrize(
    "provider, cls",
    [
        (Provider.STRIPE, StripeAdapter),
        (Provider.PAYSTACK, PaystackAdapter),
        (Provider.MPESA, MpesaAdapter),
    ],
)
def test_adapter_for_returns_each_gateways_adapter(provider, cls):
    adapter = adapter_for(provider)
    assert isinstance(adapter, cls)
    assert adapter.provider is provider
    assert adapter_for(provider.value) is adapter
    assert adapter.status_tables and all(t.rows for t in adapter.status_tables)


def test_every_gateway_has_an_adapter_and_unknown_names_are_refused():
    assert set(ADAPTERS) == set(Provider)
    with pytest.raises(ValueError):
        adapter_for("paypal")


def test_the_markdown_matches_the_code_tables():
    assert DOC.read_text() == render(), (
        "docs/status-tables.md is stale: run "
        "`python -m paysync_core.providers.status_docs > libs/paysync-core/docs/status-tables.md`"
    )


def test_the_markdown_cites_a_source_on_every_row():
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    from paysync_core.providers.status_docs import all_sections

    expected = sum(len(t.rows) for _, tables in all_sections() for t in tables)
    assert len(rows) == expected
    assert all(line.rstrip(" |").rsplit("|", 1)[1].strip() for line in rows)
    assert "http" not in DOC.read_text()


def _stripe_object(event_type: str) -> dict:
    if event_type.startswith("checkout.session."):
        return sb.checkout_session()
    if event_type.startswith("payment_intent."):
        return sb.payment_intent()
    if event_type.startswith("invoice."):
        return sb.invoice()
    return sb.dispute()


@pytest.mark.parametrize("row", stripe_module.EVENTS.rows, ids=lambda r: r.key)
def test_every_stripe_event_row_is_what_the_parser_reports(ctx, row):
    body = to_body(sb.stripe_event(row.key, _stripe_object(row.key)))
    obs = StripeAdapter().parse(body, ctx).observations[0]
    assert (obs.status, obs.dispute.state if obs.dispute else None) == (row.status, row.dispute)


@pytest.mark.parametrize("row", paystack_module.EVENTS.rows, ids=lambda r: r.key)
def test_every_paystack_event_row_is_what_the_parser_reports(ctx, row):
    payload = (
        pb.paystack_dispute(row.key)
        if "dispute" in row.key
        else (pb.paystack_refund(row.key) if row.key.startswith("refund.") else pb.paystack_charge_success())
    )
    obs = PaystackAdapter().parse(to_body(payload), ctx).observations[0]
    assert (obs.status, obs.dispute.state if obs.dispute else None) == (row.status, row.dispute)


def test_the_parser_reads_the_table_rather_than_its_own_copy(ctx, monkeypatch):
    rows = tuple(
        replace(r, status=S.EXPIRED) if r.key == "invoice.voided" else r for r in stripe_module.EVENTS.rows
    )
    monkeypatch.setattr(stripe_module, "EVENTS", replace(stripe_module.EVENTS, rows=rows))
    body = to_body(sb.stripe_event("invoice.voided", sb.invoice(status="void")))
    assert StripeAdapter().parse(body, ctx).observations[0].status is S.EXPIRED
