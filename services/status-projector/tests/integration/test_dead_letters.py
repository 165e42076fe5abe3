"""An observation PostgreSQL keeps refusing goes to the dead-letter topic; it does not block its partition."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from paysync_core import topics
from paysync_core.contracts import DeadLetter, PaymentObservation
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.settings import CommonSettings
from paysync_dev.payments import observation, payment_row, publish_observations, register_payment
from paysync_dev.service_fixtures import wait_until
from paysync_dev.topic_reader import commit_group_at_end, read_topic
from paysync_status_projector.app import create_app
from paysync_status_projector.settings import StatusProjectorSettings

pytestmark = pytest.mark.integration

#: A user's table whose NOT NULL column the mapping forgot: every upsert of a new row fails.
STRICT_TABLE = """
CREATE TABLE IF NOT EXISTS strict_orders (
    tenant_id text NOT NULL, order_id text NOT NULL, state text, customer text NOT NULL,
    PRIMARY KEY (tenant_id, order_id)
)"""
STRICT_MAPPING = """
[strict]
table = "strict_orders"
key_column = "order_id"
tenant_column = "tenant_id"

[strict.default]
state = "{status}"
"""


async def test_a_refused_observation_is_dead_lettered_and_the_rest_applied(
    engine, tenant, kafka_topics, migrated_database, tmp_path: Path
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(STRICT_TABLE))
    mapping = tmp_path / "strict.toml"
    mapping.write_text(STRICT_MAPPING)
    group = f"projector-dlq-{uuid.uuid4().hex[:8]}"
    await commit_group_at_end(kafka_topics, group, topics.PAYMENT_OBSERVATIONS.name)
    settings = StatusProjectorSettings(
        common=CommonSettings(kafka_bootstrap=kafka_topics, database_url=migrated_database, log_json=False),
        group_id=group,
        extra_domains_files=[mapping],
        max_attempts=2,
        drift_check_seconds=3600,
    )
    good = await register_payment(engine, tenant.id, domain="jobs")
    doomed = await register_payment(engine, tenant.id, domain="strict")
    after = await register_payment(engine, tenant.id, domain="jobs")
    stream = [
        observation(good, S.SUCCEEDED, 1),
        observation(doomed, S.SUCCEEDED, 1),
        observation(after, S.PROCESSING, 2),
    ]

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        # One partition, in this order: the refused one sits between two good ones.
        await publish_observations(kafka_topics, stream, partition=0)

        async def after_applied() -> bool:
            return (await payment_row(engine, after)).status == "processing"

        # The projector joins a consumer group of its own first: tens of seconds on a busy host.
        await wait_until(after_applied, 60, "the observation after the refused one applied", every=0.1)

    assert [(await payment_row(engine, p)).status for p in (good, doomed, after)] == [
        "succeeded",
        "pending",
        "processing",
    ]
    letters = [
        DeadLetter.from_bytes(r.value)
        for r in await read_topic(kafka_topics, topics.PAYMENT_OBSERVATIONS.dlq.name)
    ]
    mine = [d for d in letters if doomed.provider_ref.encode() in d.value]
    assert len(mine) == 1
    assert PaymentObservation.from_bytes(mine[0].value).observation_id == stream[1].observation_id
    assert "customer" in mine[0].error and mine[0].attempts == 2 and mine[0].service == "status-projector"
