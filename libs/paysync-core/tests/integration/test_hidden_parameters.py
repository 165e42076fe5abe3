"""A failed statement's error, and the log lines that print it, name the statement but not its values."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.integration

SECRET = f"sk_live_{uuid.uuid4().hex}"

#: In a process of its own (the log pipeline is process-wide): statements that PostgreSQL or asyncpg
#: refuse for a secret bound in them, through paysync's engine, each error logged as the services log
#: them: its text, and its stack trace (which shows the driver's own error, DETAIL included).
PROGRAM = """
import asyncio, sys, structlog
from sqlalchemy import text
from paysync_core.db.engine import make_engine
from paysync_core.logging import configure_logging

async def main(url, secret):
    configure_logging("test")
    log = structlog.get_logger()
    engine = make_engine(url)
    async with engine.connect() as conn:
        await conn.execute(text("CREATE TEMP TABLE keys (key text PRIMARY KEY)"))
        await conn.execute(text("INSERT INTO keys VALUES (:key)"), {"key": secret})
        for fail in (
            # stored again where it must be unique (PostgreSQL's DETAIL repeats it), as SQLAlchemy
            # sends a statement and as the compiled hot-path statements are sent
            lambda: conn.execute(text("INSERT INTO keys VALUES (:key)"), {"key": secret}),
            lambda: conn.exec_driver_sql("INSERT INTO keys VALUES ($1)", (secret,)),
            # no valid value of its type: PostgreSQL repeats it; asyncpg, which cannot encode it, too
            lambda: conn.execute(text("SELECT CAST(CAST(:key AS text) AS integer)"), {"key": secret}),
            lambda: conn.execute(text("SELECT CAST(:key AS uuid)"), {"key": secret}),
        ):
            await conn.execute(text("SAVEPOINT again"))
            try:
                await fail()
            except Exception as exc:
                log.warning("relay.retrying", error=str(exc))  # as the background loops log
                log.error("batch.failed", exc_info=exc)  # with its stack trace
            await conn.execute(text("ROLLBACK TO SAVEPOINT again"))
    await engine.dispose()

asyncio.run(main(*sys.argv[1:]))
"""


def test_a_statement_failing_with_a_secret_bound_in_it_logs_no_secret(database_url: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, database_url, SECRET],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["relay.retrying", "batch.failed"] * 4
    for line in lines:
        shown = line.get("error") or line["exception"]
        assert "[SQL: " in shown  # the error is told with its statement,
        assert "[SQL parameters hidden due to hide_parameters=True]" in shown  # not its values
    told = [line["error"] for line in lines if "error" in line]
    assert 'duplicate key value violates unique constraint "keys_pkey"' in told[0]
    assert "invalid input syntax for type integer: [hidden]" in told[2]
    assert "invalid input for query argument $1: [hidden]" in told[3]
    assert "Key (key)=([hidden])" in lines[1]["exception"]
    # asyncpg cuts a value it repeats to 40 characters: not even a beginning of the secret is shown
    assert SECRET[:16] not in run.stderr
