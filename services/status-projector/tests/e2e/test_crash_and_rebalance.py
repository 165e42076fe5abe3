"""The projector as a real process: SIGKILLed mid-stream and restarted; two of them through rebalances."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from paysync_dev.projector_fleet import (
    applied_count,
    assert_projection_is_exact,
    build_stream,
    publish_records,
    wait_for_progress,
    wait_until_settled,
    work_left,
)
from paysync_dev.service_fixtures import wait_until
from paysync_dev.stack import ServiceProcess

pytestmark = pytest.mark.e2e


async def test_sigkill_at_random_points_loses_nothing_and_publishes_nothing_twice_differently(
    engine, tenant, fleet, kafka_topics, seed
) -> None:
    stream = await build_stream(engine, tenant.id, payments_count=500, size=10_000, seed=seed)
    # Static membership: a restarted projector takes its partitions back at once, no session timeout.
    instance = {"PAYSYNC_STATUS_PROJECTOR_GROUP_INSTANCE_ID": f"projector-{uuid.uuid4().hex[:8]}"}
    await asyncio.to_thread(fleet.start, "p", **instance)
    interrupted = []
    for start in range(0, len(stream.records), 2500):  # four kills: each restart costs seconds of imports
        before = await applied_count(engine, tenant.id)
        await publish_records(kafka_topics, stream.records[start : start + 2500])
        # Killed as soon as the first batch of this chunk is in the history: the rest is then being
        # applied or relayed (2,500 observations take the projector a good half second on a fast
        # machine, longer on a slow one; a poll takes milliseconds), whatever the machine's speed.
        await wait_for_progress(engine, tenant.id, past=before, timeout=60)
        interrupted.append(await work_left(engine, stream, upto=start + 2500))
        await asyncio.to_thread(fleet.kill, "p")
        await asyncio.to_thread(fleet.start, "p", **instance)
    await wait_until_settled(engine, stream, fleet, timeout=90)

    await assert_projection_is_exact(engine, kafka_topics, stream)
    assert any(interrupted), "every kill came after the work was done: the test proved nothing"


async def test_two_projectors_through_rebalances_give_the_same_result(
    engine, tenant, fleet, kafka_topics, seed
) -> None:
    stream = await build_stream(engine, tenant.id, payments_count=200, size=4000, seed=seed)
    chunks = [stream.records[i : i + 1000] for i in range(0, len(stream.records), 1000)]

    await asyncio.to_thread(fleet.start, "a")
    await publish_records(kafka_topics, chunks[0])
    await asyncio.to_thread(fleet.start, "b")  # b joins: partitions move while a is applying
    await publish_records(kafka_topics, chunks[1])

    async def a_applied_some() -> bool:
        return await asyncio.to_thread(applied_by, fleet.procs["a"]) > 0

    await wait_until(a_applied_some, 60, "the first projector applying observations")
    by_first_a = applied_by(fleet.procs["a"])
    await asyncio.to_thread(fleet.stop, "a")  # a leaves: b takes everything
    await publish_records(kafka_topics, chunks[2])
    await asyncio.to_thread(fleet.start, "a")  # and back: another rebalance
    await publish_records(kafka_topics, chunks[3])
    await wait_until_settled(engine, stream, fleet, timeout=90)

    await assert_projection_is_exact(engine, kafka_topics, stream)
    assert by_first_a > 0 and applied_by(fleet.procs["b"]) > 0, "one process did all the work"


def applied_by(proc: ServiceProcess) -> float:
    """How many observations this process applied, from its /metrics."""
    for line in httpx.get(f"{proc.url}/metrics", timeout=5).text.splitlines():
        if line.startswith('paysync_projector_observations_total{outcome="applied"}'):
            return float(line.split()[-1])
    return 0.0
