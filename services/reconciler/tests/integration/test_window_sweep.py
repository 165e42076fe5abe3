"""`paysync reconcile`: the simulator drops every webhook while payments complete; a sweep of the window
recovers exactly the payments whose status was lost, and a second sweep changes nothing. Stripe and
Paystack through their lists, M-Pesa (no list) one payment at a time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from paysync_core import topics
from paysync_core.contracts import ReconcileTick
from paysync_core.db.reconciler_tables import reconcile_ticks
from paysync_core.db.schema import payments
from paysync_dev.operator import paysync
from paysync_dev.payments import observation
from paysync_dev.pg_proxy import PostgresProxy
from paysync_dev.reconcile import register
from paysync_dev.service_fixtures import fetch, publish_observation, wait_until
from paysync_dev.topic_reader import read_topic

pytestmark = pytest.mark.integration

#: gateway -> (simulator kind of a paid payment, of a failed one; currency)
KINDS = {
    "stripe": ("checkout_session", "payment_intent", "USD"),
    "paystack": ("transaction", "transaction", "NGN"),
    "mpesa": ("stk_push", "stk_push", "KES"),
}


class Window:
    """One tenant's account at the simulator whose webhooks are lost, and its payments."""

    def __init__(self, sim, engine, kafka: str, tenant, gateway: str) -> None:
        self.sim, self.engine, self.kafka, self.tenant, self.gateway = sim, engine, kafka, tenant, gateway
        self.account = tenant.account(gateway)

    async def payment(self, outcome: str) -> tuple[str, object]:
        """A payment registered in paysync, then paid or failed at the gateway (its webhook lost)."""
        paid_kind, failed_kind, currency = KINDS[self.gateway]
        kind = paid_kind if outcome == "pay" else failed_kind
        ref = self.sim.create_payment(self.account.id, kind=kind, amount_minor=2000, currency=currency).ref
        pid = await register(self.engine, self.tenant.id, self.gateway, ref, currency=currency)
        self.sim.act(self.account.id, ref, outcome)
        return ref, pid

    async def delivered(self, ref: str) -> None:
        """What a webhook that did arrive would have published: paysync shows the payment paid."""
        currency = KINDS[self.gateway][2]
        paid = observation(
            tenant=self.tenant.id, provider=self.gateway, ref=ref, amount=2000, currency=currency
        )
        await publish_observation(self.kafka, paid)

    async def statuses(self) -> dict[object, str]:
        """Each of the tenant's payments' status as paysync shows it."""
        rows = await fetch(
            self.engine,
            select(payments.c.id, payments.c.status).where(payments.c.tenant_id == self.tenant.id),
        )
        return {r.id: r.status for r in rows}

    async def wait_for(self, expected: dict[object, str], what: str) -> None:
        """Wait until these payments show these statuses."""

        async def shown() -> bool:
            now = await self.statuses()
            return all(now.get(pid) == status for pid, status in expected.items())

        await wait_until(shown, 60, what)


async def sweep(database: str, kafka: str, tenant: str, gateway: str, since: datetime, until: datetime):
    """`paysync reconcile … --json` for the window, as an operator runs it."""
    window = ("--tenant", tenant, "--gateway", gateway, "--since", since.isoformat())
    return await paysync(
        database, "reconcile", *window, "--until", until.isoformat(), "--json", kafka_bootstrap=kafka
    )


@pytest.mark.parametrize("gateway", ["stripe", "paystack"])
async def test_a_window_sweep_recovers_exactly_the_lost_payments_and_a_second_one_changes_nothing(
    gateway, sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics, migrated_database
) -> None:
    tenant = await lost_webhooks_tenant((gateway,))  # every webhook of this account is dropped
    at = Window(sim, engine, kafka_topics, tenant, gateway)
    # Stripe's Events carry whole seconds: the window starts a second before anything happens.
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    lost = [await at.payment("pay"), await at.payment("pay"), await at.payment("fail")]
    known_ref, known = await at.payment("pay")
    # This one's webhook did arrive: paysync shows it paid already, so the sweep recovers nothing for it.
    await at.delivered(known_ref)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    sim.advance(3600, at.account.id)  # what happens next falls after the window
    _, after = await at.payment("pay")
    assert sim.wait_for_deliveries(at.account.id).webhooks.delivered == 0
    await at.wait_for({known: "succeeded"}, "the delivered webhook applied")
    await start_reconciler(scheduler_enabled="false")

    first = await sweep(migrated_database, kafka_topics, tenant.id, gateway, since, until)
    assert first.returncode == 0, first.stderr
    report = first.json()
    assert report["status"] == "completed"
    assert {p["payment_id"] for p in report["recovered"]} == {str(pid) for _, pid in lost}, str(report)
    assert report["payments_changed"] == 3 and report["payments_checked"] == 4
    # The estimate: the payments paysync registered in the window (`after` too, by paysync's clock).
    assert report["payments_expected"] >= 4

    expected = {lost[0][1]: "succeeded", lost[1][1]: "succeeded", lost[2][1]: "failed", known: "succeeded"}
    await at.wait_for(expected, "the recovered payments applied")
    second = await sweep(migrated_database, kafka_topics, tenant.id, gateway, since, until)
    assert second.returncode == 0, second.stderr
    again = second.json()
    assert (again["status"], again["payments_changed"], again["recovered"]) == ("completed", 0, [])
    assert again["payments_checked"] == 4
    assert (await at.statuses())[after] == "pending"  # outside the window: left for the regular sweeps

    wrong = await sweep(migrated_database, kafka_topics, tenant.id, gateway, until, since)
    assert wrong.returncode == 2 and "must be before" in wrong.stderr


async def test_an_mpesa_window_sweep_checks_the_windows_unsettled_payments_one_by_one(
    sim,
    engine,
    projector,
    start_reconciler,
    lost_webhooks_tenant,
    kafka_topics,
    migrated_database,
    monkeypatch,
) -> None:
    tenant = await lost_webhooks_tenant(("mpesa",))  # no callback reaches paysync
    at = Window(sim, engine, kafka_topics, tenant, "mpesa")
    since = datetime.now(UTC)  # Daraja has no list: the window is when paysync registered the payments
    lost = [await at.payment("pay"), await at.payment("pay"), await at.payment("fail")]
    known_ref, known = await at.payment("pay")
    await at.delivered(known_ref)  # its callback arrived: settled, so not asked about again
    until = datetime.now(UTC)
    _, after = await at.payment("pay")  # registered after the window
    assert sim.wait_for_deliveries(at.account.id).webhooks.delivered == 0
    await at.wait_for({known: "succeeded"}, "the delivered callback applied")
    await start_reconciler(scheduler_enabled="false")

    first = await sweep(migrated_database, kafka_topics, tenant.id, "mpesa", since, until)
    assert first.returncode == 0, first.stderr
    report = first.json()
    assert report["status"] == "completed"
    assert {p["payment_id"] for p in report["recovered"]} == {str(pid) for _, pid in lost}, str(report)
    assert (report["payments_expected"], report["payments_checked"], report["payments_changed"]) == (3, 3, 3)
    assert report["gateway_calls"] >= 3  # one STK query per payment (and the access token)

    await at.wait_for(
        {lost[0][1]: "succeeded", lost[1][1]: "succeeded", lost[2][1]: "failed", known: "succeeded"},
        "the recovered payments applied",
    )
    second = await sweep(migrated_database, kafka_topics, tenant.id, "mpesa", since, until)
    assert second.returncode == 0, second.stderr
    again = second.json()
    assert (again["status"], again["payments_checked"], again["payments_changed"], again["recovered"]) == (
        "completed",
        0,
        0,
        [],
    )
    assert (await at.statuses())[after] == "pending"  # outside the window

    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # as in an operator's terminal: the bar is drawn
    window = (
        "--tenant",
        tenant.id,
        "--gateway",
        "mpesa",
        "--since",
        since.isoformat(),
        "--until",
        until.isoformat(),
    )
    shown = await paysync(migrated_database, "reconcile", *window, kafka_bootstrap=kafka_topics)
    assert shown.returncode == 0, shown.stderr
    assert "payments/s" in shown.stderr  # the bar: payments checked of those expected, rate, time left
    assert "payments expected" in shown.stdout and "completed" in shown.stdout  # the summary table


async def test_the_command_follows_its_sweep_through_a_database_restart(
    engine, tenant, kafka_topics, database_proxy: PostgresProxy
) -> None:
    """No reconciler here: the test takes the tick on as one would, while the command's database restarts."""
    since = datetime.now(UTC) - timedelta(hours=1)
    following = asyncio.create_task(
        sweep(database_proxy.url, kafka_topics, tenant.id, "stripe", since, since + timedelta(minutes=30))
    )
    tick_id = await published_tick(kafka_topics, tenant.id, following)
    taken_on = {"tenant_id": tenant.id, "provider": "stripe", "scheduled_at": since, "source": "cli"}
    async with engine.begin() as conn:
        running = {"handled_by": "test", "stats": {"listed": 1, "expected": 2}}
        await conn.execute(reconcile_ticks.insert().values(tick_id=tick_id, **taken_on, **running))

    database_proxy.restarting()  # its session cut, new ones refused: "the database system is starting up"
    await wait_until(lambda: retried(database_proxy, following), 60, "the command trying the database again")
    await database_proxy.back()
    async with engine.begin() as conn:
        ended = {
            "status": "completed",
            "stats": {"listed": 2, "expected": 2},
            "completed_at": datetime.now(UTC),
        }
        await conn.execute(reconcile_ticks.update().where(reconcile_ticks.c.tick_id == tick_id).values(ended))

    ran = await following
    assert ran.returncode == 0, ran.stderr
    assert (ran.json()["status"], ran.json()["payments_checked"]) == ("completed", 2)


async def published_tick(kafka: str, tenant: str, following: asyncio.Task) -> str:
    """The id of the window tick the command published for `tenant`, once it is on the topic."""
    found: list[bytes] = []

    async def published() -> bool:
        assert not following.done(), following.result().stderr
        records = await read_topic(kafka, topics.RECONCILE_TICKS.name)
        found[:] = [r.value for r in records if r.key == f"{tenant}:stripe".encode()]
        return bool(found)

    await wait_until(published, 60, "the command's tick published")
    return ReconcileTick.from_bytes(found[0]).tick_id


async def retried(proxy: PostgresProxy, following: asyncio.Task) -> bool:
    """Whether the command asked for a new session at least twice while refused (or it ended)."""
    return proxy.refused >= 2 or following.done()
