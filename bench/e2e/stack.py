"""The end-to-end bench's servers: broker, database, gateway simulator, the five services, tenants.

By default everything is the bench's own (a Kafka broker on free ports, a new database on the local
PostgreSQL); `--kafka-bootstrap` and `--database-url` use running ones instead (the smoke test gives
the test session's). The services run as separate processes exactly as deployed; each consumer
group is the bench's own and starts at the topic's end, so records of others on a shared broker are
not the bench's to process.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.db.engine import make_engine, upgrade
from paysync_core.kafka import provision_topics
from paysync_dev import kafka, postgres
from paysync_dev.fixtures import ALL_GATEWAYS, TestTenant, create_gateway_tenant
from paysync_dev.procstat import cpu_seconds, group_pids, peak_rss_mb
from paysync_dev.service_fixtures import reconciler_groups, start_groups_at_end, wait_for_groups
from paysync_dev.stack import ServiceProcess, free_port, start_stack, stop_stack
from paysync_gateway_sim import SimulatorClient

SERVICES = ("webhook-ingest", "status-projector", "notifier", "api-gateway", "reconciler")
#: The bench's own connection, left out of the database's CPU.
BENCH_APPLICATION = "paysync-bench"


@dataclass
class Settings:
    """How the stack is set up (the bench's command-line options)."""

    tenants: int
    mpesa_rate: float
    max_streams: int
    kafka_bootstrap: str | None = None
    database_url: str | None = None


@dataclass
class Stack:
    """Running servers and what the bench needs to reach and measure them."""

    bootstrap: str
    database: str
    log_dir: Path
    broker: kafka.KafkaProcess | None = None
    own_database: bool = False
    simulator: subprocess.Popen | None = None
    simulator_url: str = ""
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    tenants: list[TestTenant] = field(default_factory=list)

    @property
    def api(self) -> str:
        """api-gateway's base URL."""
        return self.services["api-gateway"].url

    @property
    def ingest(self) -> str:
        """webhook-ingest's base URL."""
        return self.services["webhook-ingest"].url

    def pids(self) -> dict[str, list[int]]:
        """Each process measured: the services (with their children), simulator, broker."""
        found = {name: group_pids(svc.process.pid) for name, svc in self.services.items() if svc.process}
        if self.simulator is not None:
            found["simulator"] = [self.simulator.pid]
        if self.broker is not None and (pid := self.broker.pid()):
            found["broker"] = [pid]
        return found

    async def postgres_pids(self, engine: AsyncEngine) -> list[int]:
        """The PostgreSQL backends serving the bench's database (its own connection aside)."""
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name <> :bench"
                ),
                {"bench": BENCH_APPLICATION},
            )
            return [r.pid for r in rows]

    def peak_rss(self) -> dict[str, float]:
        """Each measured process's peak resident memory so far (MiB; a service's largest process)."""
        peaks: dict[str, float] = {}
        for name, pids in self.pids().items():
            with contextlib.suppress(OSError):
                peaks[name] = round(max(peak_rss_mb(pid) for pid in pids), 1)
        return peaks

    def reset_peaks(self) -> None:
        """Start each process's peak-memory mark again (Linux: clear_refs 5), so a phase has its own."""
        for pids in self.pids().values():
            for pid in pids:
                with contextlib.suppress(OSError):
                    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_of(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds each named set of processes has used so far."""
    return {name: cpu_seconds(group) for name, group in pids.items()}


def start(settings: Settings, log_dir: Path) -> Stack:
    """Broker, database, simulator, services and tenants, all ready; stopped again if one fails."""
    stack = _servers(settings, log_dir)
    try:
        _start_simulator(stack)
        keys = Fernet.generate_key().decode()
        stack.tenants = asyncio.run(_tenants(stack, keys, settings.tenants))
        groups = {name: f"bench-{name}-{uuid.uuid4().hex[:8]}" for name in SERVICES}
        env = {
            "PAYSYNC_KAFKA_BOOTSTRAP": stack.bootstrap,
            "PAYSYNC_DATABASE_URL": stack.database,
            "PAYSYNC_CREDENTIALS_KEYS": keys,
            "PAYSYNC_LOG_LEVEL": "WARNING",
            "PAYSYNC_API_GATEWAY_STREAM_MAX_PER_TENANT": str(settings.max_streams),
            "PAYSYNC_API_GATEWAY_STREAM_MAX_TOTAL": str(max(1000, 2 * settings.max_streams)),
            # The bench measures the webhook path: no scheduled sweeps (nor of a shared database's tenants).
            "PAYSYNC_RECONCILER_SCHEDULER_ENABLED": "false",
            "PAYSYNC_RECONCILER_MPESA_RATE": str(settings.mpesa_rate),
            "PAYSYNC_RECONCILER_GROUP_ID": groups["reconciler"],
            "PAYSYNC_RECONCILER_AUTO_OFFSET_RESET": "latest",
            "PAYSYNC_STATUS_PROJECTOR_GROUP_ID": groups["status-projector"],
            "PAYSYNC_STATUS_PROJECTOR_AUTO_OFFSET_RESET": "latest",
            "PAYSYNC_NOTIFIER_GROUP_ID": groups["notifier"],
            "PAYSYNC_NOTIFIER_HOOKS_OFFSET_RESET": "latest",
        }
        # Committed at the topics' end before the services join: a new group finds "latest" only once it
        # is assigned, which on a busy host can come after the first webhook's records.
        asyncio.run(start_groups_at_end(stack.bootstrap, _consuming(groups)))
        stack.services = start_stack(env, log_dir, only=SERVICES)
        # Groups that start at the end must hold their partitions before the first webhook is sent.
        asyncio.run(
            wait_for_groups(
                stack.bootstrap,
                dict.fromkeys(_consuming(groups), 1),
                timeout=120,
            )
        )
    except BaseException:
        stop(stack)
        raise
    return stack


def _consuming(groups: dict[str, str]) -> dict[str, str]:
    """The bench's consumer groups the webhook path goes through, each with its topic."""
    projector = {groups["status-projector"]: topics.PAYMENT_OBSERVATIONS.name}
    return {**projector, **reconciler_groups(groups["reconciler"])}


def stop(stack: Stack) -> None:
    """Stop what the bench started; drop its own database."""
    stop_stack(stack.services)
    if stack.simulator is not None:
        stack.simulator.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            stack.simulator.wait(15)
        if stack.simulator.poll() is None:
            stack.simulator.kill()
    if stack.broker is not None:
        stack.broker.stop()
    if stack.own_database:
        postgres.drop_database(postgres.database_name(stack.database), postgres.ensure_postgres())


def bench_engine(stack: Stack) -> AsyncEngine:
    """An engine on the bench's database, named so its own connection is not measured."""
    return make_engine(stack.database, pool_size=2, application_name=BENCH_APPLICATION)


def _servers(settings: Settings, log_dir: Path) -> Stack:
    broker = None
    bootstrap = settings.kafka_bootstrap
    if bootstrap is None:
        broker = kafka.KafkaProcess.on_free_ports(log_dir / f"kafka-{uuid.uuid4().hex[:6]}")
        bootstrap = broker.start()
    stack = Stack(bootstrap, settings.database_url or "", log_dir, broker=broker)
    try:
        if not settings.database_url:
            name = f"paysync_bench_{uuid.uuid4().hex[:8]}"
            stack.database = postgres.create_database(name, postgres.ensure_postgres())
            stack.own_database = True
        upgrade(stack.database)
        asyncio.run(provision_topics(stack.bootstrap))
    except BaseException:
        stop(stack)
        raise
    return stack


def _start_simulator(stack: Stack) -> None:
    port, log_path = free_port(), stack.log_dir / "simulator.log"
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:  # the child keeps its own descriptor
        stack.simulator = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("sim_server.py")), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack.simulator_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if stack.simulator.poll() is not None:
            raise RuntimeError(f"the simulator exited with {stack.simulator.returncode}; see {log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{stack.simulator_url}/_sim/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the simulator did not answer within 60 s; see {log_path}")


async def _tenants(stack: Stack, keys: str, count: int) -> list[TestTenant]:
    engine = bench_engine(stack)
    sim = SimulatorClient(stack.simulator_url)
    try:
        return [await create_gateway_tenant(engine, keys, sim, ALL_GATEWAYS) for _ in range(count)]
    finally:
        await engine.dispose()
