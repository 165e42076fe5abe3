"""How far the normalizer is behind the raw topic, as a gauge per partition."""

from __future__ import annotations

import asyncio

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from paysync_core import topics
from paysync_webhook_ingest.metrics import NORMALIZER_LAG

log = structlog.get_logger()


async def watch_normalizer_lag(bootstrap: str, group: str, every: float = 5.0) -> None:
    """Every few seconds: end offsets minus the group's committed offsets."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="paysync-lag-watch")
    ends = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="paysync-lag-watch")
    await admin.start()
    await ends.start()
    try:
        while True:
            try:
                committed = await admin.list_consumer_group_offsets(group)
                raw = {
                    tp: meta.offset for tp, meta in committed.items() if tp.topic == topics.WEBHOOKS_RAW.name
                }
                if raw:
                    latest = await ends.end_offsets(list(raw))
                    for tp, offset in raw.items():
                        NORMALIZER_LAG.labels(str(tp.partition)).set(max(0, latest[tp] - max(offset, 0)))
            except Exception as exc:  # noqa: BLE001 - a metric must never take the service down
                log.debug("lag.unavailable", error=str(exc))
            await asyncio.sleep(every)
    finally:
        await ends.stop()
        await admin.close()
