"""How far the normalizer is behind the raw topic, as a gauge per partition.

A lag that cannot be measured is not shown: while the broker cannot answer (not up yet, restarting,
out of reach), or the group has committed nothing on the raw topic, the gauge has no series at all,
rather than the last value it had. Only partitions the group has committed on have one.
"""

from __future__ import annotations

import asyncio

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from paysync_core import topics
from paysync_core.kafka import until_broker_answers
from paysync_webhook_ingest.metrics import NORMALIZER_LAG

log = structlog.get_logger()

#: A round that has not measured the lag within this long (a broker gone quiet) shows none (seconds).
ROUND_TIMEOUT_SECONDS = 10.0


async def watch_normalizer_lag(bootstrap: str, group: str, every: float = 5.0) -> None:
    """Every few seconds: end offsets minus the group's committed offsets; none shown while unknown."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="paysync-lag-watch")
    ends = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="paysync-lag-watch")
    NORMALIZER_LAG.clear()  # nothing is known yet
    try:
        await until_broker_answers(admin.start, "lag.waiting_for_broker")
        await until_broker_answers(ends.start, "lag.waiting_for_broker")
        shown: set[str] = set()
        while True:
            try:
                async with asyncio.timeout(ROUND_TIMEOUT_SECONDS):
                    lag = await _lag(admin, ends, group)
            except Exception as exc:  # noqa: BLE001 - a metric must never take the service down
                # Said once when the gauge's series go, then at DEBUG for as long as it lasts.
                (log.warning if shown else log.debug)("lag.unknown", error=str(exc) or type(exc).__name__)
                lag = {}
            shown = _show(lag, shown)
            await asyncio.sleep(every)
    finally:
        await ends.stop()
        await admin.close()


async def _lag(admin: AIOKafkaAdminClient, ends: AIOKafkaConsumer, group: str) -> dict[str, int]:
    """Per partition of the raw topic the group has committed on: records after its committed offset."""
    committed = await admin.list_consumer_group_offsets(group)
    raw = {tp: meta.offset for tp, meta in committed.items() if tp.topic == topics.WEBHOOKS_RAW.name}
    if not raw:
        return {}
    latest = await ends.end_offsets(list(raw))
    return {str(tp.partition): max(0, latest[tp] - max(offset, 0)) for tp, offset in raw.items()}


def _show(lag: dict[str, int], shown: set[str]) -> set[str]:
    """Set the gauge to `lag`, removing the series of partitions `shown` before and not in it."""
    for partition, records in lag.items():
        NORMALIZER_LAG.labels(partition).set(records)
    for partition in shown - lag.keys():
        NORMALIZER_LAG.remove(partition)
    return set(lag)
