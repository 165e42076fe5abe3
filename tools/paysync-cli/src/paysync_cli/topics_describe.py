"""`paysync topics describe`: partitions, retention and end offsets per topic; each consumer group's lag."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from paysync_core import topics
from paysync_core.settings import CommonSettings
from paysync_core.topic_description import UnknownTopics, describe_topics

console = Console()


def describe(
    topic: Annotated[
        list[str] | None, typer.Option(help="Only these topics (default: every paysync topic)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the description as JSON")] = False,
) -> None:
    """Each topic's partitions, retention and end offsets, and each consumer group's lag on it."""
    names = topic or [spec.name for spec in topics.ALL]
    try:
        reports = asyncio.run(describe_topics(CommonSettings().kafka_bootstrap, names))
    except UnknownTopics as exc:
        raise typer.BadParameter(str(exc), param_hint="--topic") from None
    if as_json:
        print(json.dumps([r.to_json() for r in reports], indent=2))
        return
    table = Table(Column("topic", no_wrap=True), "partitions", "retention", "end offsets (sum)", "group: lag")
    for r in reports:
        groups = "\n".join(f"{g.group}: {g.lag:,}" for g in r.groups) or "-"
        table.add_row(
            r.name, str(r.partitions), _duration(r.retention_ms), f"{sum(r.end_offsets.values()):,}", groups
        )
    console.print(table)


def _duration(ms: int | None) -> str:
    if ms is None:
        return "?"
    if ms < 0:
        return "forever"
    days, rest = divmod(ms, 86_400_000)
    return f"{days} d" if not rest else f"{ms / 3_600_000:g} h"
