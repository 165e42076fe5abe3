"""Enrolling a large account's payments does not depend on the planner's statistics (a fresh database)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from paysync_core.db.engine import make_engine, upgrade
from paysync_core.db.schema import payments, tenants
from paysync_reconciler import repository as repo

pytestmark = pytest.mark.integration


async def test_enrolment_never_scans_the_schedules_it_is_filling(fresh_database):
    # A fresh database whose schedule table was analyzed while empty (autovacuum, an operator, a
    # restore): the planner believes it holds nothing. Before, the enrolment anti-joined against it
    # with a nested loop that re-read every schedule inserted so far: 146 s for 100,000 payments.
    upgrade(fresh_database)
    engine = make_engine(fresh_database, pool_size=1)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    try:
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE reconcile_checks"))
            await conn.execute(tenants.insert().values(id=tenant, name=tenant))
            await conn.execute(
                payments.insert(),
                [
                    {"id": uuid.uuid4(), "tenant_id": tenant, "provider": "stripe", "provider_ref": f"cs_{i}"}
                    for i in range(2000)
                ],
            )
        statement = repo.enroll_statement(tenant, "stripe", 0.0)
        sql = statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        async with engine.connect() as conn:
            plan = [row[0] for row in await conn.execute(text(f"EXPLAIN {sql}"))]
        async with engine.begin() as conn:
            assert await repo.enroll(conn, tenant, "stripe", 0.0) == 2000
            assert await repo.enroll(conn, tenant, "stripe", 0.0) == 0  # each payment enrolled once
    finally:
        await engine.dispose()
    scans = [line for line in plan if " on reconcile_checks " in f"{line} " and "Insert on" not in line]
    assert scans == [], "\n".join(plan)
