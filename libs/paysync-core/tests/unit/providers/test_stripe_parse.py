"""Stripe events become observations with the right status, money, time and ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from paysync_core.contracts.common import EntityRef, ObservationSource, Provider
from paysync_core.contracts.observation import DisputeFact, PaymentObservation
from paysync_core.domain.merge import Expectation, merge_all
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.errors import MalformedPayload
from paysync_core.providers.base import ParseContext
from paysync_core.providers.stripe import StripeAdapter
from paysync_core.testing.builders import stripe as sb
from paysync_core.testing.builders import to_body

adapter = StripeAdapter()
CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z
CREATED_AT = datetime(2026, 1, 1, tzinfo=UTC)
ENTITY_META = {"paysync_domain": "workshop_jobs", "paysync_entity_id": "job-77"}


def _parse_one(event: dict, ctx: ParseContext) -> PaymentObservation:
    parsed = adapter.parse(to_body(event), ctx)
    assert parsed.event_type == event["type"]
    assert not parsed.unmapped
    assert len(parsed.observations) == 1
    obs = parsed.observations[0]
    assert obs.observation_id == event["id"]
    assert obs.provider is Provider.STRIPE
    assert obs.provider_time == CREATED_AT
    assert obs.evidence.provider_event_id == event["id"]
    assert obs.evidence.event_type == event["type"]
    assert adapter.reference_hint(to_body(event)) == adapter.reference_hint(event) == obs.provider_ref
    return obs


def _event(type_: str, obj: dict) -> dict:
    return sb.stripe_event(type_, obj, created=CREATED)


# --- Checkout Sessions -------------------------------------------------------------------------


def test_a_paid_checkout_session_succeeds_with_its_ids_amount_and_entity(ctx):
    session = sb.checkout_session(amount_total=4500, currency="eur", metadata=ENTITY_META)
    obs = _parse_one(_event("checkout.session.completed", session), ctx)
    assert obs.status is S.SUCCEEDED
    assert (obs.amount_minor, obs.currency) == (4500, "EUR")
    assert obs.provider_ref == session["id"] and session["id"].startswith("cs_test_")
    assert obs.aliases == (session["payment_intent"],)
    assert obs.entity == EntityRef(domain="workshop_jobs", entity_id="job-77")
    assert obs.evidence.session_id == session["id"]
    assert obs.evidence.payment_intent_id == session["payment_intent"]
    assert obs.verified is True and obs.source is ObservationSource.WEBHOOK
    # The context's evidence (where the raw record sits) is merged in.
    assert (obs.evidence.ingest_id, obs.evidence.raw_partition, obs.evidence.raw_offset) == ("ing-1", 3, 42)
    assert obs.observed_at == ctx.observed_at


def test_an_unpaid_completed_session_is_processing(ctx):
    obs = _parse_one(_event("checkout.session.completed", sb.checkout_session(payment_status="unpaid")), ctx)
    assert obs.status is S.PROCESSING
    assert obs.amount_minor == 2000


def test_a_session_needing_no_payment_succeeds_with_amount_zero(ctx):
    session = sb.checkout_session(
        payment_status="no_payment_required",
        amount_total=None,
        currency=None,
        payment_intent=None,
        mode="setup",
    )
    obs = _parse_one(_event("checkout.session.completed", session), ctx)
    assert obs.status is S.SUCCEEDED
    assert (obs.amount_minor, obs.currency, obs.aliases) == (0, None, ())


def test_a_subscription_session_is_aliased_by_its_invoice(ctx):
    session = sb.checkout_session(mode="subscription", payment_intent=None, invoice="in_1Abc")
    obs = _parse_one(_event("checkout.session.completed", session), ctx)
    assert obs.aliases == ("in_1Abc",)
    assert obs.evidence.invoice_id == "in_1Abc"


def test_an_expanded_payment_intent_is_read_by_its_id(ctx):
    session = sb.checkout_session(payment_intent=None)
    session["payment_intent"] = sb.payment_intent(id="pi_expanded")
    obs = _parse_one(_event("checkout.session.completed", session), ctx)
    assert obs.aliases == ("pi_expanded",)


@pytest.mark.parametrize(
    "event_type, status",
    [
        ("checkout.session.async_payment_succeeded", S.SUCCEEDED),
        ("checkout.session.async_payment_failed", S.FAILED),
        ("checkout.session.expired", S.EXPIRED),
    ],
)
def test_later_checkout_session_events(ctx, event_type, status):
    session_status = "expired" if "expired" in event_type else "complete"
    session = sb.checkout_session(
        payment_status="unpaid", status=session_status, amount_total=1234, currency="gbp"
    )
    obs = _parse_one(_event(event_type, session), ctx)
    assert obs.status is status
    assert (obs.amount_minor, obs.currency, obs.provider_ref) == (1234, "GBP", session["id"])


# --- PaymentIntents ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_type, pi_status, status",
    [
        ("payment_intent.succeeded", "succeeded", S.SUCCEEDED),
        ("payment_intent.processing", "processing", S.PROCESSING),
        ("payment_intent.requires_action", "requires_action", S.REQUIRES_ACTION),
        ("payment_intent.payment_failed", "requires_payment_method", S.FAILED),
        ("payment_intent.canceled", "canceled", S.CANCELED),
    ],
)
def test_payment_intent_events(ctx, event_type, pi_status, status):
    intent = sb.payment_intent(status=pi_status, amount=990, currency="usd", metadata=ENTITY_META)
    obs = _parse_one(_event(event_type, intent), ctx)
    assert obs.status is status
    assert (obs.provider_ref, obs.amount_minor, obs.currency) == (intent["id"], 990, "USD")
    assert obs.evidence.payment_intent_id == intent["id"]
    assert obs.evidence.charge_id == intent["latest_charge"]
    assert obs.entity == EntityRef(domain="workshop_jobs", entity_id="job-77")


def test_a_partially_captured_intent_reports_what_was_received(ctx):
    intent = sb.payment_intent(amount=1000, amount_received=700)
    assert _parse_one(_event("payment_intent.succeeded", intent), ctx).amount_minor == 700


def test_a_failed_intent_keeps_the_decline_code(ctx):
    error = {"code": "card_declined", "decline_code": "insufficient_funds"}
    intent = sb.payment_intent(status="requires_payment_method", last_payment_error=error)
    obs = _parse_one(_event("payment_intent.payment_failed", intent), ctx)
    assert obs.evidence.detail == "insufficient_funds"


# --- Invoices ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_type, invoice_status, status, amount",
    [
        ("invoice.paid", "paid", S.SUCCEEDED, 5000),
        ("invoice.payment_succeeded", "paid", S.SUCCEEDED, 5000),
        ("invoice.finalized", "open", S.PENDING, 5000),
        ("invoice.voided", "void", S.CANCELED, 5000),
        ("invoice.marked_uncollectible", "uncollectible", S.FAILED, 5000),
    ],
)
def test_invoice_events(ctx, event_type, invoice_status, status, amount):
    inv = sb.invoice(status=invoice_status, amount_due=5000, currency="usd", payment_intent="pi_inv1")
    obs = _parse_one(_event(event_type, inv), ctx)
    assert obs.status is status
    assert (obs.provider_ref, obs.amount_minor, obs.currency) == (inv["id"], amount, "USD")
    assert obs.aliases == ("pi_inv1",)
    assert (obs.evidence.invoice_id, obs.evidence.payment_intent_id) == (inv["id"], "pi_inv1")


def test_a_paid_invoice_reports_the_amount_paid(ctx):
    inv = sb.invoice(status="paid", amount_due=5000, amount_paid=4000)
    assert _parse_one(_event("invoice.paid", inv), ctx).amount_minor == 4000


def test_an_older_api_versions_top_level_payment_intent_is_an_alias(ctx):
    inv = sb.invoice(payment_intent="pi_legacy", payment_intent_field="legacy")
    assert _parse_one(_event("invoice.paid", inv), ctx).aliases == ("pi_legacy",)


def test_a_failed_invoice_attempt_with_a_retry_scheduled_is_pending(ctx):
    inv = sb.invoice(status="open", next_payment_attempt=CREATED + 86400)
    obs = _parse_one(_event("invoice.payment_failed", inv), ctx)
    assert obs.status is S.PENDING
    assert obs.amount_minor == 2000


def test_a_failed_invoice_attempt_without_retry_requires_action(ctx):
    inv = sb.invoice(status="open", next_payment_attempt=None, collection_method="send_invoice")
    assert _parse_one(_event("invoice.payment_failed", inv), ctx).status is S.REQUIRES_ACTION


# --- Refunds -----------------------------------------------------------------------------------


def test_a_partial_refund_is_reported_against_the_payment_intent(ctx):
    ch = sb.charge(amount=3000, amount_refunded=1000, currency="usd", payment_intent="pi_refund")
    obs = _parse_one(_event("charge.refunded", ch), ctx)
    assert obs.status is S.PARTIALLY_REFUNDED
    assert (obs.provider_ref, obs.aliases) == ("pi_refund", (ch["id"],))
    assert (obs.amount_minor, obs.amount_refunded_minor, obs.currency) == (3000, 1000, "USD")
    assert obs.evidence.charge_id == ch["id"]


def test_a_full_refund_is_refunded(ctx):
    ch = sb.charge(amount=3000, amount_refunded=3000)
    obs = _parse_one(_event("charge.refunded", ch), ctx)
    assert (obs.status, obs.amount_refunded_minor) == (S.REFUNDED, 3000)


def test_the_refunded_flag_alone_makes_a_refund_full(ctx):
    ch = sb.charge(amount=3000, amount_refunded=2999, refunded=True)
    assert _parse_one(_event("charge.refunded", ch), ctx).status is S.REFUNDED


def test_a_charge_without_payment_intent_is_its_own_reference(ctx):
    ch = sb.charge(amount_refunded=500, payment_intent=None)
    obs = _parse_one(_event("charge.refunded", ch), ctx)
    assert (obs.provider_ref, obs.aliases) == (ch["id"], ())


# --- Disputes ----------------------------------------------------------------------------------


def test_a_new_dispute_marks_the_payment_disputed(ctx):
    dp = sb.dispute(status="needs_response", payment_intent="pi_disp", charge="ch_disp")
    obs = _parse_one(_event("charge.dispute.created", dp), ctx)
    assert obs.status is S.DISPUTED
    assert obs.dispute == DisputeFact(dispute_id=dp["id"], state="open")
    assert (obs.provider_ref, obs.aliases, obs.evidence.charge_id) == ("pi_disp", ("ch_disp",), "ch_disp")
    assert obs.amount_minor is None  # a disputed amount is not the payment's amount


@pytest.mark.parametrize(
    "dispute_status, status, state",
    [("won", S.SUCCEEDED, "won"), ("warning_closed", S.SUCCEEDED, "won"), ("lost", S.DISPUTED, "lost")],
)
def test_a_closed_dispute(ctx, dispute_status, status, state):
    dp = sb.dispute(status=dispute_status, payment_intent="pi_disp")
    obs = _parse_one(_event("charge.dispute.closed", dp), ctx)
    assert obs.status is status
    assert obs.dispute == DisputeFact(dispute_id=dp["id"], state=state)
    assert obs.provider_ref == "pi_disp"


def test_a_closed_dispute_with_an_unknown_status_says_nothing(ctx):
    obs = _parse_one(_event("charge.dispute.closed", sb.dispute(status="something_new")), ctx)
    assert (obs.status, obs.dispute) == (None, None)


# --- What the merge makes of them --------------------------------------------------------------


def test_success_then_a_won_dispute_merges_back_to_succeeded(ctx):
    intent = sb.payment_intent(amount=2000)
    observations = [
        _parse_one(_event("payment_intent.succeeded", intent), ctx),
        _parse_one(_event("charge.dispute.created", sb.dispute(id="dp_1", payment_intent=intent["id"])), ctx),
        _parse_one(
            _event("charge.dispute.closed", sb.dispute(id="dp_1", status="won", payment_intent=intent["id"])),
            ctx,
        ),
    ]
    seen = [o.to_domain() for o in observations]
    assert merge_all(seen, Expectation(2000, "USD")).status is S.SUCCEEDED
    assert merge_all(seen[:2], Expectation(2000, "USD")).status is S.DISPUTED


def test_a_partial_refund_after_success_merges_to_partially_refunded(ctx):
    session = sb.checkout_session(amount_total=2000)
    ch = sb.charge(amount=2000, amount_refunded=500, payment_intent=session["payment_intent"])
    observations = [
        _parse_one(_event("checkout.session.completed", session), ctx),
        _parse_one(_event("charge.refunded", ch), ctx),
    ]
    state = merge_all(reversed([o.to_domain() for o in observations]), Expectation(2000, "USD"))
    assert (state.status, state.refunded_minor) == (S.PARTIALLY_REFUNDED, 500)


# --- What is not ours, and what is broken --------------------------------------------------------


@pytest.mark.parametrize("event_type", ["customer.created", "payment_intent.created", "charge.succeeded"])
def test_other_event_types_are_unmapped_not_errors(ctx, event_type):
    body = to_body(sb.stripe_event(event_type, {"id": "x", "object": "whatever"}))
    parsed = adapter.parse(body, ctx)
    assert (parsed.event_type, parsed.observations, parsed.unmapped) == (event_type, (), True)
    assert adapter.reference_hint(body) is None


def _broken(mutate) -> bytes:
    event = _event("payment_intent.succeeded", sb.payment_intent())
    mutate(event)
    return to_body(event)


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"", "invalid_json"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "not_a_json_object"),
        (b'{"type": "payment_intent.succeeded", "created": NaN}', "invalid_json"),
        (_broken(lambda e: e.pop("type")), "missing:type"),
        (_broken(lambda e: e.pop("id")), "missing:id"),
        (_broken(lambda e: e.update(created="yesterday")), "type:created"),
        (_broken(lambda e: e.update(created=10**20)), "value:created"),
        (_broken(lambda e: e["data"].pop("object")), "missing:data.object"),
        (_broken(lambda e: e["data"]["object"].update(amount="2000")), "type:data.object.amount"),
        (_broken(lambda e: e["data"]["object"].update(amount=-5)), "negative:data.object.amount"),
        (_broken(lambda e: e["data"]["object"].update(amount=True)), "type:data.object.amount"),
        (_broken(lambda e: e["data"]["object"].update(currency="dollars")), "too_long:data.object.currency"),
        (_broken(lambda e: e["data"]["object"].update(currency="u$d")), "value:data.object.currency"),
        (_broken(lambda e: e["data"]["object"].update(id="pi_" + "x" * 300)), "too_long:data.object.id"),
    ],
)
def test_broken_bodies_are_malformed_with_a_reason(ctx, body, reason):
    with pytest.raises(MalformedPayload) as caught:
        adapter.parse(body, ctx)
    assert caught.value.reason == reason
    hint = adapter.reference_hint(body)  # must not raise either
    assert hint is None or isinstance(hint, str)


def test_bad_entity_metadata_is_ignored_not_fatal(ctx):
    intent = sb.payment_intent(metadata={"paysync_domain": "Not A Domain!", "paysync_entity_id": "1"})
    obs = _parse_one(_event("payment_intent.succeeded", intent), ctx)
    assert obs.entity is None and obs.status is S.SUCCEEDED


def test_the_context_decides_verified_and_source(ctx):
    replay = ParseContext(
        tenant="acme", source=ObservationSource.REPLAY, verified=False, observed_at=ctx.observed_at
    )
    obs = _parse_one(_event("payment_intent.succeeded", sb.payment_intent()), replay)
    assert (obs.verified, obs.source) == (False, ObservationSource.REPLAY)
