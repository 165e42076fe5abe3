"""How far the status-projector has consumed the observation topic: its consumer group's committed offsets.

A real replay waits for what it published to be applied. Polling the database for every key of a
batch cost the replay (and PostgreSQL, on the cores the projector runs on) more CPU than the rest of
its work; the projector commits its group's offsets only after a batch's transaction, so one admin
call per poll tells whether it is done, and the database is read once, to find what it dead-lettered.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition


class ProjectorOffsets:
    """The committed offsets of the projector's consumer group (`PAYSYNC_REPLAY_PROJECTOR_GROUP_ID`)."""

    def __init__(self, bootstrap: str, group_id: str) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="paysync-replay")
        self._group = group_id

    async def start(self) -> None:
        """Connect to the broker."""
        await self._admin.start()

    async def stop(self) -> None:
        """Disconnect."""
        await self._admin.close()

    async def reached(self, topic: str, ends: dict[int, int]) -> bool:
        """Whether the group committed, on every partition of `ends`, at least its offset there."""
        wanted = [TopicPartition(topic, p) for p in ends]
        committed = await self._admin.list_consumer_group_offsets(self._group, partitions=wanted)
        return all(
            (meta := committed.get(tp)) is not None and meta.offset >= ends[tp.partition] for tp in wanted
        )
