"""Drift findings: what a gateway answer contradicts, and alerts that are the same whoever raises them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from paysync_core.contracts import AlertKind, Evidence, PaymentObservation, Provider, alert_id
from paysync_core.domain.status import UnifiedStatus as S
from paysync_reconciler.drift import drift_between, is_fix, stale
from paysync_reconciler.models import Target

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def target(status: S | None, amount: int = 2000, currency: str = "USD") -> Target:
    return Target(
        uuid.uuid4(), "acme", Provider.STRIPE, "cs_test_1", status, amount, currency, "jobs", "job-1"
    )


def answer(status: S | None, amount: int | None = 2000, currency: str | None = "USD") -> PaymentObservation:
    return PaymentObservation(
        observation_id=f"stripe:cs_test_1:{status}",
        tenant="acme",
        provider="stripe",
        provider_ref="cs_test_1",
        status=status,
        amount_minor=amount,
        currency=currency,
        provider_time=NOW,
        source="reconcile",
        verified=True,
        evidence=Evidence(),
        observed_at=NOW,
    )


def test_paid_here_but_not_at_the_gateway_is_drift_only_when_the_answer_is_current():
    found = drift_between(target(S.SUCCEEDED), answer(S.PENDING), current=True)
    assert [f.kind for f in found] == [AlertKind.PAID_WITHOUT_GATEWAY_SUCCESS]
    assert drift_between(target(S.SUCCEEDED), answer(S.PENDING), current=False) == []
    assert drift_between(target(S.REFUNDED), answer(S.SUCCEEDED), current=True) == []


def test_a_success_for_another_amount_or_currency_is_drift_with_the_projectors_alert_id():
    (short,) = drift_between(target(S.PENDING), answer(S.SUCCEEDED, amount=1500), current=False)
    (other,) = drift_between(target(S.PENDING), answer(S.SUCCEEDED, currency="EUR"), current=True)
    assert short.kind is AlertKind.AMOUNT_MISMATCH and "15.00 USD" in short.detail
    assert other.kind is AlertKind.CURRENCY_MISMATCH
    alert = short.alert(NOW)
    # The projector raises the same alert for the same payment: one of the two inserts wins.
    assert alert.alert_id == alert_id(AlertKind.AMOUNT_MISMATCH, "acme", str(short.target.payment_id), 1)
    assert short.issue_row(alert)["subject"] == str(short.target.payment_id)


def test_agreement_is_no_drift():
    assert drift_between(target(S.PENDING), answer(S.SUCCEEDED), current=True) == []
    assert drift_between(target(S.PENDING), answer(S.PENDING), current=True) == []


def test_a_stale_payment_is_reported_stale_not_failed():
    finding = stale(target(S.PENDING), S.PENDING, 5, None)
    assert finding.kind is AlertKind.STUCK_PAYMENT and finding.facts["state"] == "stale"
    assert "not marked failed" in finding.detail


def test_what_counts_as_a_fix():
    assert is_fix(S.PENDING, S.SUCCEEDED)
    assert is_fix(S.PENDING, S.EXPIRED)
    assert not is_fix(S.SUCCEEDED, S.PENDING)  # money that moved is never un-seen
    assert not is_fix(S.PENDING, S.PENDING) and not is_fix(S.PENDING, None)
