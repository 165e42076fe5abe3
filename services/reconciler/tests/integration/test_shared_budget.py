"""Three replicas share one tenant's Stripe budget through PostgreSQL: never over the limit, close to it.

The simulator enforces Stripe's limit (a low one, so the test is short) and counts what it served and
what it refused. Every replica gets a bulk check of the same tenant's open payments, far more work than
the limit lets through, so the limit, not the machine, is the bottleneck. Throughput is measured from
the simulator's own request count over a stretch of a few hundred requests once all replicas call.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from paysync_core import topics
from paysync_core.contracts import Provider, ReconcileRequest
from paysync_core.kafka import DurableProducer
from paysync_dev.reconcile import register
from paysync_dev.service_fixtures import Service, wait_until

pytestmark = pytest.mark.integration


LIMIT = 20.0  # requests per second the simulator allows the tenant's Stripe account
PAYMENTS = 150  # each replica checks them all: 450 retrievals, over 20 s of work at the limit


async def _tenant_with_open_payments(sim, engine, lost_webhooks_tenant) -> tuple[str, str]:
    tenant = await lost_webhooks_tenant(("stripe",), rate_limits={"stripe": LIMIT})
    account = tenant.account("stripe").id
    for _ in range(PAYMENTS):  # open PaymentIntents: each check is a retrieval of its own
        ref = sim.create_payment(account, kind="payment_intent", amount_minor=700, currency="usd").ref
        await register(engine, tenant.id, "stripe", ref, amount_minor=700)
    return tenant.id, account


async def _bulk_check_on_every_partition(bootstrap: str, tenant: str) -> None:
    """Bulk checks of the tenant's open payments under random keys until each partition has one:
    every replica gets some, whichever partitions it was given."""
    spec = topics.RECONCILE_REQUESTS
    covered: set[int] = set()
    producer = DurableProducer(bootstrap, client_id="shared-budget-test")
    await producer.start()
    try:
        while len(covered) < spec.partitions:
            request = ReconcileRequest(
                request_id=f"rr_{uuid.uuid4().hex}",
                tenant=tenant,
                kind="bulk",
                provider=Provider.STRIPE,
                requested_at=datetime.now(UTC),
            )
            sent = await producer.send(spec.name, uuid.uuid4().bytes, request.to_bytes())
            covered.add(sent.partition)
    finally:
        await producer.stop()


def _calls(replica: Service) -> float:
    return replica.metric("paysync_reconciler_gateway_calls_total", provider="stripe")


def _all_calling(replicas: list[Service]) -> Callable[[], Awaitable[bool]]:
    async def calling() -> bool:
        return all(_calls(r) > 0 for r in replicas)

    return calling


async def _measured_rate(sim, account: str, requests: int) -> float:
    """Requests per second the simulator received while it received the next `requests` requests."""
    start_count, started = sim.account_stats(account).api.requests, time.monotonic()

    async def counted() -> bool:
        return sim.account_stats(account).api.requests >= start_count + requests

    await wait_until(counted, requests / LIMIT * 4, f"{requests} more requests at the simulator", every=0.1)
    return (sim.account_stats(account).api.requests - start_count) / (time.monotonic() - started)


async def _three_replicas_at_work(
    sim, engine, start_reconciler, lost_webhooks_tenant, bootstrap: str, closed: list[str], **settings: object
) -> tuple[str, list[Service]]:
    """Three replicas, each with bulk checks of one tenant's payments: the Stripe account and the replicas."""
    tenant, account = await _tenant_with_open_payments(sim, engine, lost_webhooks_tenant)
    closed.append(tenant)
    replicas = await start_reconciler(count=3, scheduler_enabled="false", stripe_rate=LIMIT, **settings)
    await _bulk_check_on_every_partition(bootstrap, tenant)
    await wait_until(_all_calling(replicas), 60, "all three replicas to call Stripe")
    return account, replicas


async def test_three_replicas_together_keep_to_the_gateway_limit_and_close_to_it(
    sim, engine, start_reconciler, lost_webhooks_tenant, kafka_topics, leave_no_open_payments
):
    account, replicas = await _three_replicas_at_work(
        sim, engine, start_reconciler, lost_webhooks_tenant, kafka_topics, leave_no_open_payments
    )
    await _measured_rate(sim, account, 20)  # past the first burst (both buckets start full)
    rate = await _measured_rate(sim, account, 200)

    api = sim.account_stats(account).api
    assert api.over_limit == 0  # never over the limit, whatever the number of replicas
    assert LIMIT * 0.9 <= rate <= LIMIT * 1.1, rate
    assert all(_calls(r) >= 10 for r in replicas)  # the budget is shared, not taken by one


async def test_when_a_replica_dies_the_others_take_up_its_share(
    sim, engine, start_reconciler, lost_webhooks_tenant, kafka_topics, leave_no_open_payments
):
    # Left over from when each replica took rate/REPLICAS: now ignored, with a warning.
    account, replicas = await _three_replicas_at_work(
        sim, engine, start_reconciler, lost_webhooks_tenant, kafka_topics, leave_no_open_payments, replicas=3
    )
    replicas[0].process.kill()  # dies mid-run: its leased tokens and its share are gone with it
    await _measured_rate(sim, account, 20)  # past the requests already in flight
    rate = await _measured_rate(sim, account, 150)

    assert sim.account_stats(account).api.over_limit == 0
    assert LIMIT * 0.9 <= rate <= LIMIT * 1.1, rate
    assert "reconcile.settings.replicas_ignored" in replicas[1].process.log_path.read_text()
