"""Dead letters from a broken domain mapping: `paysync dlq list|show|redrive` against the real projector.

The mapping forgets a NOT NULL column, so the projector dead-letters every observation of that domain.
The operator lists them (with their reasons), fixes the table, redrives them: they leave the view,
the one the fix repairs is applied, and one that fails again comes back with its new error.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from paysync_core import topics
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.settings import CommonSettings
from paysync_dev.operator import paysync
from paysync_dev.payments import observation, payment_row, register_payment
from paysync_dev.service_fixtures import publish_observation, wait_until
from paysync_dev.topic_reader import commit_group_at_end
from paysync_status_projector.app import create_app
from paysync_status_projector.settings import StatusProjectorSettings

pytestmark = pytest.mark.integration


def broken_domain(table: str) -> tuple[str, str]:
    """A user's table (customer NOT NULL; only some states allowed) and a mapping that forgets customer."""
    ddl = (
        f"CREATE TABLE {table} (tenant_id text NOT NULL, order_id text NOT NULL, customer text NOT NULL,"
        " state text CHECK (state IN ('pending', 'processing', 'succeeded')),"
        " PRIMARY KEY (tenant_id, order_id))"
    )
    mapping = (
        f'[{table}]\ntable = "{table}"\nkey_column = "order_id"\ntenant_column = "tenant_id"\n\n'
        f'[{table}.default]\nstate = "{{status}}"\n'
    )
    return ddl, mapping


async def test_dead_letters_are_listed_redriven_after_the_fix_and_one_failing_again_stays(
    engine, tenant, kafka_topics, migrated_database, tmp_path: Path
) -> None:
    table = f"orders_{uuid.uuid4().hex[:8]}"
    ddl, mapping = broken_domain(table)
    async with engine.begin() as conn:
        await conn.execute(text(ddl))
    (tmp_path / "orders.toml").write_text(mapping)
    group = f"projector-redrive-{uuid.uuid4().hex[:8]}"
    await commit_group_at_end(kafka_topics, group, topics.PAYMENT_OBSERVATIONS.name)
    settings = StatusProjectorSettings(
        common=CommonSettings(kafka_bootstrap=kafka_topics, database_url=migrated_database, log_json=False),
        group_id=group,
        extra_domains_files=[tmp_path / "orders.toml"],
        max_attempts=2,
        drift_check_seconds=3600,
    )
    repaired = await register_payment(engine, tenant.id, domain=table)
    refused_again = await register_payment(engine, tenant.id, domain=table)
    run = {"kafka_bootstrap": kafka_topics}
    mine = ("--topic", topics.PAYMENT_OBSERVATIONS.name, "--tenant", tenant.id, "--json")

    async def in_view() -> list[dict]:
        listed = await paysync(migrated_database, "dlq", "list", *mine, **run)
        assert listed.returncode == 0, listed.stderr
        return listed.json()["letters"]

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await publish_observation(kafka_topics, observation(repaired, S.SUCCEEDED, 1))
        await publish_observation(kafka_topics, observation(refused_again, S.CANCELED, 1))

        async def two_letters() -> bool:
            return len(await in_view()) == 2

        await wait_until(two_letters, 90, "two dead letters of this tenant")
        letters = await in_view()
        assert {x["reason"] for x in letters} == {"IntegrityError"}
        assert all('"customer"' in x["error"] and x["attempts"] == 2 for x in letters)
        assert {x["source_topic"] for x in letters} == {topics.PAYMENT_OBSERVATIONS.name}
        by_reason = await paysync(migrated_database, "dlq", "list", *mine, "--reason", "no such error", **run)
        assert by_reason.json()["letters"] == []
        later = datetime.now(UTC).isoformat()
        assert (await paysync(migrated_database, "dlq", "list", *mine, "--since", later, **run)).json()[
            "letters"
        ] == []

        shown = await paysync(migrated_database, "dlq", "show", letters[0]["id"], "--json", **run)
        assert shown.returncode == 0, shown.stderr
        letter = shown.json()
        assert letter["original"]["tenant"] == tenant.id and letter["redriven"] is None
        assert letter["original"]["provider_ref"] in (repaired.provider_ref, refused_again.provider_ref)
        assert (letter["source_partition"], letter["source_offset"]) == (
            letters[0]["source_partition"],
            letters[0]["source_offset"],
        )

        # The fix: the column may be empty now. The CHECK still refuses `canceled`.
        async with engine.begin() as conn:
            await conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN customer DROP NOT NULL"))
        redriven = await paysync(migrated_database, "dlq", "redrive", *mine, "--by", "ops-test", **run)
        assert redriven.returncode == 0, redriven.stderr
        report = redriven.json()
        dlq = topics.PAYMENT_OBSERVATIONS.dlq.name
        assert (report["before"], len(report["redriven"]), report["after"]) == ({dlq: 2}, 2, {})

        async def repaired_and_refused_again() -> bool:
            applied = (await payment_row(engine, repaired)).status == "succeeded"
            return applied and len(await in_view()) == 1

        await wait_until(repaired_and_refused_again, 90, "one applied, one dead-lettered again")

    (again,) = await in_view()
    assert again["id"] not in {x["id"] for x in letters}
    assert "check constraint" in again["error"] and '"customer"' not in again["error"]
    original = (await paysync(migrated_database, "dlq", "show", again["id"], "--json", **run)).json()[
        "original"
    ]
    assert original["provider_ref"] == refused_again.provider_ref
    old = (await paysync(migrated_database, "dlq", "show", letters[0]["id"], "--json", **run)).json()
    assert old["redriven"]["by"] == "ops-test"
    assert (await payment_row(engine, refused_again)).status == "pending"
    unknown = await paysync(migrated_database, "dlq", "list", "--topic", "paysync.nothing.v1", **run)
    assert unknown.returncode == 2 and "has no dead-letter topic" in unknown.stderr
