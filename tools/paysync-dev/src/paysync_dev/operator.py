"""The operator's `paysync` command, run by tests as a process, as an operator runs it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The `paysync` script of this virtualenv.
PAYSYNC = Path(sys.executable).parent / "paysync"


@dataclass
class Ran:
    """What a finished command said."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """Its standard output read as JSON (the `--json` of a command)."""
        return json.loads(self.stdout)


async def paysync(
    database_url: str,
    *args: str,
    kafka_bootstrap: str | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> Ran:
    """Run `paysync *args` against this database (and broker); the event loop goes on while it runs.

    The event loop keeps running so that what a test runs in it (an api-gateway whose Kafka consumer
    must keep its group membership) is not starved while the command works.
    """
    full = os.environ | {"PAYSYNC_DATABASE_URL": database_url, "COLUMNS": "200"} | (env or {})
    if kafka_bootstrap is not None:
        full["PAYSYNC_KAFKA_BOOTSTRAP"] = kafka_bootstrap
    process = await asyncio.create_subprocess_exec(
        str(PAYSYNC), *args, env=full, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(timeout):
        out, err = await process.communicate()
    return Ran(process.returncode or 0, out.decode(), err.decode())  # communicate() waited for the exit
