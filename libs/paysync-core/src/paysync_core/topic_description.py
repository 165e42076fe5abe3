"""What the broker holds per topic: partitions, retention, end offsets, each consumer group's lag.

What `paysync topics describe` and `GET /admin/v1/topics` show (read-only).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType


class UnknownTopics(ValueError):
    """Topics the broker does not have."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(f"no such topic: {', '.join(missing)}")


@dataclass(slots=True)
class GroupLag:
    """How far one consumer group is behind on one topic."""

    group: str
    lag: int
    partitions: int  # partitions the group has committed offsets for


@dataclass(slots=True)
class TopicReport:
    """One topic as the broker has it."""

    name: str
    partitions: int
    retention_ms: int | None
    end_offsets: dict[int, int]
    groups: list[GroupLag] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The topic as JSON."""
        return {
            "topic": self.name,
            "partitions": self.partitions,
            "retention_ms": self.retention_ms,
            "end_offsets": {str(p): o for p, o in sorted(self.end_offsets.items())},
            "records": sum(self.end_offsets.values()),
            "groups": [{"group": g.group, "lag": g.lag, "partitions": g.partitions} for g in self.groups],
        }


async def describe_topics(bootstrap: str, names: list[str]) -> list[TopicReport]:
    """The topics as the broker has them, with each group's lag; UnknownTopics if some do not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="paysync-describe")
    kafka = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await admin.start()
    await kafka.start()
    try:
        present = set(await admin.list_topics())
        missing = [n for n in names if n not in present]
        if missing:
            raise UnknownTopics(missing)
        reports = await _topics(admin, kafka, names)
        await _add_lags(admin, reports)
        return reports
    finally:
        await kafka.stop()
        await admin.close()


async def _topics(admin: AIOKafkaAdminClient, kafka: AIOKafkaConsumer, names: list[str]) -> list[TopicReport]:
    described = {t["topic"]: t for t in await admin.describe_topics(names)}
    retention = await _retention(admin, names)
    reports = []
    for name in names:
        parts = [TopicPartition(name, p["partition"]) for p in described[name]["partitions"]]
        ends = await kafka.end_offsets(parts)
        reports.append(
            TopicReport(
                name, len(parts), retention.get(name), {tp.partition: end for tp, end in ends.items()}
            )
        )
    return reports


async def _retention(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int | None]:
    """Each topic's `retention.ms` (-1: kept forever)."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, n, configs={"retention.ms": None}) for n in names]
    found: dict[str, int | None] = {}
    for response in await admin.describe_configs(resources):
        for _error, _message, _type, name, entries in response.resources:
            found[name] = next(
                (int(e[1]) for e in entries if e[0] == "retention.ms" and e[1] is not None), None
            )
    return found


async def _add_lags(admin: AIOKafkaAdminClient, reports: list[TopicReport]) -> None:
    """Each group's lag per topic: end offset minus committed offset, over the partitions it committed."""
    by_name = {r.name: r for r in reports}
    groups = sorted(g[0] for g in await admin.list_consumer_groups())
    offsets = await asyncio.gather(*(admin.list_consumer_group_offsets(g) for g in groups))
    for group, committed in zip(groups, offsets, strict=True):
        per_topic: dict[str, GroupLag] = {}
        for tp, meta in committed.items():
            report = by_name.get(tp.topic)
            if report is None or meta.offset < 0:
                continue
            lag = per_topic.setdefault(tp.topic, GroupLag(group, 0, 0))
            lag.lag += max(0, report.end_offsets.get(tp.partition, 0) - meta.offset)
            lag.partitions += 1
        for name, lag in per_topic.items():
            by_name[name].groups.append(lag)
