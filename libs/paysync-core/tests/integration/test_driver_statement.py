"""A statement sent on the pooled connection's asyncpg connection behaves as through SQLAlchemy: its JSON
stored as JSON, its rows read by attribute, part of the caller's transaction (its failures are reported
as SQLAlchemy reports them: test_engine_ping)."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert

from paysync_core.db.driver import DriverStatement
from paysync_core.db.engine import make_engine, no_transaction
from paysync_core.db.schema import reconcile_requests

pytestmark = pytest.mark.integration

#: Also used by test_engine_ping.
INSERT_REQUEST = DriverStatement.of(
    insert(reconcile_requests)
    .values(
        request_id=bindparam("request_id"),
        tenant=bindparam("tenant"),
        kind="confirm_callback",
        request=bindparam("request", type_=reconcile_requests.c.request.type),
        handled_by="test",
        lease_until=func.now(),
        attempts=1,
    )
    .on_conflict_do_nothing()
    .returning(reconcile_requests.c.request_id, reconcile_requests.c.attempts)
)


async def _stored(engine, request_id: str):
    async with engine.connect() as conn:
        query = select(reconcile_requests.c.request, reconcile_requests.c.kind).where(
            reconcile_requests.c.request_id == request_id
        )
        return (await conn.execute(query)).first()


async def test_its_json_is_stored_as_json_and_its_rows_read_by_attribute(migrated_database: str):
    engine = make_engine(migrated_database)
    try:
        async with no_transaction(engine) as conn:
            rows = await INSERT_REQUEST.fetch(
                conn, {"request_id": "r1", "tenant": "t", "request": {"refs": ["a"]}}
            )
            again = await INSERT_REQUEST.fetch(conn, {"request_id": "r1", "tenant": "t", "request": {}})
        assert [(r.request_id, r.attempts) for r in rows] == [("r1", 1)]
        assert again == []  # the conflict: nothing inserted, nothing returned
        stored = await _stored(engine, "r1")
        assert stored.request == {"refs": ["a"]} and stored.kind == "confirm_callback"
    finally:
        await engine.dispose()


async def test_in_a_transaction_it_is_part_of_the_transaction(migrated_database: str):
    engine = make_engine(migrated_database)
    try:
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await INSERT_REQUEST.fetch(conn, {"request_id": "r2", "tenant": "t", "request": {}})
                raise RuntimeError("roll back")
        assert await _stored(engine, "r2") is None
    finally:
        await engine.dispose()
