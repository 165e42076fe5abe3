"""How far the status-projector has consumed the observation topic: its consumer group's committed offsets.

A real replay waits for what it published to be applied. Polling the database for every key of a
batch cost the replay (and PostgreSQL, on the cores the projector runs on) more CPU than the rest of
its work; the projector commits its group's offsets only after a batch's transaction, so one admin
call per poll tells whether it is done, and the database is read once, to find what it dead-lettered.

A broker that cannot answer for the group yet (a new cluster creating its offsets topic, a coordinator
moving after a restart, a dropped connection: Kafka's retriable errors) has not reached the offsets;
the replay asks again until its apply deadline, whose message then names the broker's last answer.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition


class ReplayStalled(Exception):
    """The status-projector did not apply what the replay published within the timeout."""

    @classmethod
    def unapplied(cls, count: int, what: str, timeout: float, unanswered: KafkaError | None) -> ReplayStalled:
        """`count` not applied in `timeout` s; `unanswered`: the broker's last retriable error."""
        if unanswered is not None:
            return cls(
                f"the broker could not tell within {timeout:g}s whether the status-projector applied"
                f" {count} {what} observation(s): {unanswered}"
            )
        return cls(
            f"the status-projector has not applied {count} {what} observation(s) within {timeout:g}s:"
            " is it running (or dead-lettering them)?"
        )


class ProjectorOffsets:
    """The committed offsets of the projector's consumer group (`PAYSYNC_REPLAY_PROJECTOR_GROUP_ID`)."""

    def __init__(self, bootstrap: str, group_id: str) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="paysync-replay")
        self._group = group_id
        self.unanswered: KafkaError | None = None  # the broker's retriable error at the last poll, if any

    async def start(self) -> None:
        """Connect to the broker."""
        await self._admin.start()

    async def stop(self) -> None:
        """Disconnect."""
        await self._admin.close()

    async def reached(self, topic: str, ends: dict[int, int]) -> bool:
        """Whether the group committed, on every partition of `ends`, at least its offset there."""
        wanted = [TopicPartition(topic, p) for p in ends]
        try:
            committed = await self._admin.list_consumer_group_offsets(self._group, partitions=wanted)
        except KafkaError as error:
            if not error.retriable:
                raise
            self.unanswered = error
            return False
        self.unanswered = None
        return all(
            (meta := committed.get(tp)) is not None and meta.offset >= ends[tp.partition] for tp in wanted
        )

    async def wait_reached(self, topic: str, ends: dict[int, int], timeout: float) -> bool:
        """Whether the group got to `ends` within `timeout` seconds, asking every 0.1 s."""
        deadline = time.monotonic() + timeout
        while not await self.reached(topic, ends):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True
