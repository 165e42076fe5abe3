"""`paysync db wait`: return once the schema is at this release's head and every topic exists.

A Kubernetes pod's initContainer runs it (deploy/k8s), so a service starts only after the
migration Job has done its work, whatever order the manifests were applied in.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Annotated

import typer
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from paysync_core import topics
from paysync_core.db import engine as db_engine
from paysync_core.settings import CommonSettings

console = Console(stderr=True)


@dataclass(frozen=True)
class Readiness:
    """What the database and the broker have, against what this release needs."""

    head: str
    schema: str | None  # None: not migrated at all, or the database does not answer
    missing_topics: tuple[str, ...]

    @property
    def ready(self) -> bool:
        """The schema is at head and no topic is missing."""
        return self.schema == self.head and not self.missing_topics

    def to_json(self) -> dict[str, object]:
        """For `--json`."""
        return {
            "ready": self.ready,
            "head": self.head,
            "schema": self.schema,
            "missing_topics": list(self.missing_topics),
        }


async def _schema_version(url: str) -> str | None:
    engine = db_engine.make_engine(url, pool_size=1, application_name="paysync-db-wait")
    try:
        async with engine.connect() as conn:
            exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
            return await conn.scalar(text("SELECT version_num FROM alembic_version")) if exists else None
    except (OSError, SQLAlchemyError):
        return None  # not reachable yet: the same as not migrated, for a waiter
    finally:
        await engine.dispose()


async def _missing_topics(bootstrap: str) -> tuple[str, ...]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="paysync-db-wait")
    try:
        await admin.start()
        present = set(await admin.list_topics())
    except Exception:  # noqa: BLE001 - any broker failure means "not there yet" to a waiter
        return tuple(spec.name for spec in topics.ALL)
    finally:
        await admin.close()
    return tuple(spec.name for spec in topics.ALL if spec.name not in present)


async def readiness(settings: CommonSettings) -> Readiness:
    """The schema version and the missing topics, as of now."""
    from alembic.script import ScriptDirectory  # here: every `paysync` command would import alembic

    script = ScriptDirectory.from_config(db_engine.alembic_config(settings.database_url))
    head = script.get_current_head() or ""  # paysync-core always ships its migrations
    schema = await _schema_version(settings.database_url)
    return Readiness(head=head, schema=schema, missing_topics=await _missing_topics(settings.kafka_bootstrap))


async def _wait(settings: CommonSettings, timeout: float, interval: float) -> Readiness:
    deadline = time.monotonic() + timeout
    while True:
        state = await readiness(settings)
        if state.ready or time.monotonic() >= deadline:
            return state
        await asyncio.sleep(interval)  # polling an outside condition: nothing to be told by


def wait(
    timeout: Annotated[float, typer.Option(min=0, help="Give up (exit 1) after this many seconds")] = 300,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between two looks")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON")] = False,
) -> None:
    """Wait until the schema is at this release's head and every paysync topic exists."""
    state = asyncio.run(_wait(CommonSettings(), timeout, interval))
    if as_json:
        print(json.dumps(state.to_json()))
    elif state.ready:
        console.print(f"[green]schema at {state.head}, every topic present[/]")
    else:
        console.print(
            f"[red]not ready after {timeout:g} s[/]: schema {state.schema or 'not migrated'} "
            f"(head {state.head}); missing topics: {', '.join(state.missing_topics) or 'none'}"
        )
    if not state.ready:
        raise typer.Exit(1)
