"""`paysync reconcile`: the simulator drops every webhook while payments complete; a sweep of the window
recovers exactly the payments whose status was lost, and a second sweep changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from paysync_core.db.schema import payments
from paysync_dev.operator import paysync
from paysync_dev.reconcile import register
from paysync_dev.service_fixtures import fetch, publish_observation, stripe_paid, wait_until

pytestmark = pytest.mark.integration


async def test_a_window_sweep_recovers_exactly_the_lost_payments_and_a_second_one_changes_nothing(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics, migrated_database
) -> None:
    tenant = await lost_webhooks_tenant(("stripe",))  # every webhook of this account is dropped
    account = tenant.account("stripe")
    # Stripe's Events carry whole seconds: the window starts a second before anything happens.
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)

    async def payment(kind: str, step: str) -> tuple[str, object]:
        ref = sim.create_payment(account.id, kind=kind, amount_minor=2000, currency="USD").ref
        pid = await register(engine, tenant.id, "stripe", ref)
        sim.act(account.id, ref, step)
        return ref, pid

    lost = [await payment("checkout_session", "pay"), await payment("checkout_session", "pay")]
    lost.append(await payment("payment_intent", "fail"))
    known_ref, known = await payment("checkout_session", "pay")
    # This one's webhook did arrive: paysync shows it paid already, so the sweep recovers nothing for it.
    await publish_observation(kafka_topics, stripe_paid(tenant.id, known_ref, 2000))
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    sim.advance(3600, account.id)  # what happens next falls after the window
    _, after = await payment("checkout_session", "pay")
    assert sim.wait_for_deliveries(account.id).webhooks.delivered == 0

    async def statuses() -> dict[object, str]:
        rows = await fetch(
            engine, select(payments.c.id, payments.c.status).where(payments.c.tenant_id == tenant.id)
        )
        return {r.id: r.status for r in rows}

    async def known_applied() -> bool:
        return (await statuses())[known] == "succeeded"

    await wait_until(known_applied, 30, "the delivered webhook applied")
    await start_reconciler(scheduler_enabled="false")
    window = ("--tenant", tenant.id, "--gateway", "stripe", "--since", since.isoformat())
    window += ("--until", until.isoformat(), "--json")
    run = {"kafka_bootstrap": kafka_topics}

    first = await paysync(migrated_database, "reconcile", *window, **run)
    assert first.returncode == 0, first.stderr
    report = first.json()
    assert report["status"] == "completed"
    assert {p["payment_id"] for p in report["recovered"]} == {str(pid) for _, pid in lost}
    assert report["payments_changed"] == 3 and report["payments_checked"] == 4

    expected = {lost[0][1]: "succeeded", lost[1][1]: "succeeded", lost[2][1]: "failed", known: "succeeded"}

    async def recovered() -> bool:
        now = await statuses()
        return all(now[pid] == status for pid, status in expected.items())

    await wait_until(recovered, 60, "the recovered payments applied")
    second = await paysync(migrated_database, "reconcile", *window, **run)
    assert second.returncode == 0, second.stderr
    again = second.json()
    assert (again["status"], again["payments_changed"], again["recovered"]) == ("completed", 0, [])
    assert again["payments_checked"] == 4
    assert (await statuses())[after] == "pending"  # outside the window: left for the regular sweeps

    wrong = await paysync(
        migrated_database,
        "reconcile",
        *window[:4],
        "--since",
        until.isoformat(),
        "--until",
        since.isoformat(),
        **run,
    )
    assert wrong.returncode == 2 and "must be before" in wrong.stderr
