"""Issue 14's acceptance for the live stream: 200 streams through api-gateway, 1,000 status changes.

Every client must get every change of its tenant exactly once, in per-payment order, and none of
the other tenant's; also when the notifier is killed (SIGKILL) and restarted mid-run and the
clients resume with `Last-Event-ID`. The changes are made by the real status-projector from
observations on the real broker; the services are separate processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.domain.status import UnifiedStatus
from paysync_dev.fixtures import TestTenant, create_tenant
from paysync_dev.live_stream import ResumingListener
from paysync_dev.payments import Registered, observation, publish_observations, register_payments
from paysync_dev.service_fixtures import Service, service_env, wait_until
from paysync_dev.stack import ServiceProcess, start_stack, stop_stack

pytestmark = pytest.mark.e2e

STREAMS_PER_TENANT = 100
PAYMENTS_PER_TENANT = 250  # two changes each: 1,000 status changes in all
#: The two changes every payment makes, in the order each stream must show them.
STEPS = (UnifiedStatus.PROCESSING, UnifiedStatus.SUCCEEDED)


@pytest.fixture(scope="module")
def stack(
    no_shared_stack: None,
    kafka_topics: str,
    migrated_database: str,
    credentials_keys: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, ServiceProcess]]:
    """The projector, the notifier and api-gateway, with room for 100 streams per tenant."""
    env = service_env(kafka_topics, migrated_database, credentials_keys) | {
        "PAYSYNC_API_GATEWAY_STREAM_MAX_PER_TENANT": str(STREAMS_PER_TENANT * 2),
    }
    only = ("status-projector", "notifier", "api-gateway")
    procs = start_stack(env, tmp_path_factory.mktemp("stream-acceptance"), only=only)
    yield procs
    stop_stack(procs)


class Run:
    """Two tenants, their payments, and 100 streams each reading `/v1/stream` through api-gateway."""

    def __init__(self, stack: dict[str, ServiceProcess], tenants: list[TestTenant]) -> None:
        self.stack, self.tenants = stack, tenants
        self.payments: dict[str, list[Registered]] = {}
        self.streams: dict[str, list[ResumingListener]] = {}

    async def open(self, engine: AsyncEngine, client: httpx.AsyncClient) -> None:
        """Register the payments and open every stream (each has its first line before changes start)."""
        url = f"{self.stack['api-gateway'].url}/v1/stream"
        for tenant in self.tenants:
            specs = [{"domain": "jobs"} for _ in range(PAYMENTS_PER_TENANT)]
            self.payments[tenant.id] = await register_payments(engine, tenant.id, specs)
            headers = {"Authorization": f"Bearer {tenant.api_key}"}
            self.streams[tenant.id] = [
                ResumingListener(client, url, headers).start() for _ in range(STREAMS_PER_TENANT)
            ]
        every = self.every_stream()
        await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in every)), 120)
        assert {s.status_code for s in every} == {200}

    def every_stream(self) -> list[ResumingListener]:
        """All 200 streams."""
        return [s for streams in self.streams.values() for s in streams]

    async def change(self, bootstrap: str, step: int) -> None:
        """Every payment of both tenants makes its `step`-th change (observations to the projector)."""
        batch = [
            observation(p, STEPS[step], minute=step) for payments in self.payments.values() for p in payments
        ]
        await publish_observations(bootstrap, batch)

    async def delivered(self, steps: int) -> None:
        """Wait until every stream has at least its tenant's changes of the first `steps` steps."""
        wanted = PAYMENTS_PER_TENANT * steps

        async def all_there() -> bool:
            return all(len(s.of_kind("payment.status")) >= wanted for s in self.every_stream())

        await wait_until(all_there, 600, f"{wanted} changes on each of the 200 streams", every=0.5)

    def check(self) -> None:
        """Each stream: its tenant's changes, each once, in per-payment order, none of the other's."""
        for tenant in self.tenants:
            expected = {(str(p.id), step.value) for p in self.payments[tenant.id] for step in STEPS}
            for stream in self.streams[tenant.id]:
                got = [
                    (e["data"]["payment_id"], e["data"]["new_status"])
                    for e in stream.of_kind("payment.status")
                ]
                assert {e["data"]["tenant"] for e in stream.of_kind("payment.status")} == {tenant.id}
                assert len(got) == len(set(got)), "a change arrived twice"
                assert set(got) == expected
                order = {change: n for n, change in enumerate(got)}
                assert all(order[(p, STEPS[0].value)] < order[(p, STEPS[1].value)] for p, _ in expected)
                assert not stream.of_kind("stream.resync"), "a client was told to refetch"

    async def close(self) -> None:
        """Stop every stream."""
        await asyncio.gather(*(s.stop() for s in self.every_stream()))


@pytest.fixture
async def run(
    stack: dict[str, ServiceProcess],
    engine: AsyncEngine,
    migrated_database: str,
    credentials_keys: str,
) -> AsyncIterator[Run]:
    """Two fresh tenants with 250 payments and 100 open streams each."""
    tenants = [create_tenant(migrated_database, credentials_keys, gateways=()) for _ in range(2)]
    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None), limits=limits) as client:
        run = Run(stack, tenants)
        try:
            await run.open(engine, client)
            yield run
        finally:
            await run.close()


async def test_200_streams_of_two_tenants_get_every_change_of_their_tenant_once_in_order(
    run: Run, kafka_topics: str
) -> None:
    notifier = Service(run.stack["notifier"], group_id="")
    for step in range(len(STEPS)):
        await run.change(kafka_topics, step)
    await run.delivered(len(STEPS))
    run.check()
    # What /metrics shows meanwhile: the streams held per tenant, what was delivered, and how late.
    for tenant in run.tenants:
        assert notifier.metric("paysync_notifier_stream_clients", tenant=tenant.id) == STREAMS_PER_TENANT
        delivered = notifier.metric("paysync_notifier_stream_events_delivered_total", tenant=tenant.id)
        assert delivered == STREAMS_PER_TENANT * PAYMENTS_PER_TENANT * len(STEPS)
    assert notifier.metric("paysync_notifier_stream_delivery_lag_seconds_count") >= 1000 * STREAMS_PER_TENANT


async def test_after_the_notifier_is_killed_mid_run_clients_resume_with_last_event_id_and_miss_nothing(
    run: Run, kafka_topics: str
) -> None:
    notifier = run.stack["notifier"]
    await run.change(kafka_topics, 0)

    async def flowing() -> bool:  # killed while the first changes are being delivered
        return any(s.of_kind("payment.status") for s in run.every_stream())

    await wait_until(flowing, 300, "the first changes on the streams", every=0.05)
    notifier.kill()
    await run.change(kafka_topics, 1)  # made while the notifier is down
    notifier.start()
    await asyncio.to_thread(notifier.wait_ready, 120)
    await run.delivered(len(STEPS))
    run.check()
    assert all(s.reconnects >= 1 for s in run.every_stream()), "every stream was cut by the kill"
