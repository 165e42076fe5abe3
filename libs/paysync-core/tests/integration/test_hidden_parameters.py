"""A failed statement's error, and the log lines that print it, name the statement but not its values."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.integration

SECRET = f"sk_live_{uuid.uuid4().hex}"

#: In a process of its own (the log pipeline is process-wide): a secret stored twice where it must be
#: unique, through paysync's engine (a SQLAlchemy statement, then a compiled one as the hot paths send
#: them), each error logged as the services log them.
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
        for store_again in (
            lambda: conn.execute(text("INSERT INTO keys VALUES (:key)"), {"key": secret}),
            lambda: conn.exec_driver_sql("INSERT INTO keys VALUES ($1)", (secret,)),
        ):
            await conn.execute(text("SAVEPOINT again"))
            try:
                await store_again()
            except Exception as exc:
                log.warning("relay.retrying", error=str(exc))  # as the background loops log
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
    assert [line["event"] for line in lines] == ["relay.retrying"] * 2
    for line in lines:
        shown = line["error"]
        assert 'duplicate key value violates unique constraint "keys_pkey"' in shown  # the error is told,
        assert "INSERT INTO keys VALUES ($1)" in shown  # with its statement,
        assert "[SQL parameters hidden due to hide_parameters=True]" in shown  # but not its values
    assert SECRET not in run.stderr
