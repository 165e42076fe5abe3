"""Tick ids are the same for every scheduler in a slot; settings take schedules as plain lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from paysync_core.contracts import Provider
from paysync_reconciler.models import ReconcileTick, manual_tick, scheduled_tick
from paysync_reconciler.settings import ReconcilerSettings

T0 = datetime(2026, 3, 1, 12, 0, 7, tzinfo=UTC)


def test_every_scheduler_computes_the_same_tick_for_a_slot_and_a_new_one_for_the_next():
    a = scheduled_tick("acme", Provider.STRIPE, 900, T0)
    b = scheduled_tick("acme", Provider.STRIPE, 900, T0 + timedelta(minutes=5))
    c = scheduled_tick("acme", Provider.STRIPE, 900, T0 + timedelta(minutes=15))
    assert a.tick_id == b.tick_id != c.tick_id
    assert a.scheduled_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert a.tick_id == "acme:stripe:900s:2026-03-01T12:00:00.000Z"
    assert scheduled_tick("acme", Provider.MPESA, 900, T0).tick_id != a.tick_id


def test_manual_ticks_always_run_and_round_trip():
    first, second = manual_tick("acme", Provider.PAYSTACK, T0), manual_tick("acme", Provider.PAYSTACK, T0)
    assert first.tick_id != second.tick_id and first.source == "cli"
    assert ReconcileTick.from_bytes(first.to_bytes()) == first


def test_settings_read_schedules_and_budgets_from_the_environment(monkeypatch):
    monkeypatch.setenv("PAYSYNC_RECONCILER_MPESA_SCHEDULE", "60,120,300")
    monkeypatch.setenv("PAYSYNC_RECONCILER_SCHEDULER_TENANTS", "acme,globex")
    monkeypatch.setenv("PAYSYNC_RECONCILER_REPLICAS", "2")  # deprecated: ignored
    settings = ReconcilerSettings()
    assert settings.schedule_for(Provider.MPESA) == [60.0, 120.0, 300.0]
    assert settings.scheduler_tenants == ["acme", "globex"]
    # Stripe's test-mode limit, 25/s, with headroom, for all replicas together: REPLICAS is ignored.
    assert settings.rate_for(Provider.STRIPE) == 25 * settings.budget_headroom
    monkeypatch.setenv("PAYSYNC_RECONCILER_STRIPE_MODE", "live")
    assert ReconcilerSettings().rate_for(Provider.STRIPE) == 100 * settings.budget_headroom
