"""Benchmark one reconciler sweep over 100,000 unsettled Stripe payments against the gateway simulator.

    make bench-reconciler        (or: .venv/bin/python bench/reconciler/run.py --help)

Stripe's test-mode rate limit (25 requests/s per account) is enforced by the simulator, which
also counts every request and every one refused over the limit. Most payments changed at the
gateway (paid, expired) with every webhook lost, so the Events list answers for them at 100
events a call; the rest are still open and need one retrieval each. The sweep's floor is the
number of gateway calls it made divided by the enforced rate. The reconciler runs as its own
process against a local Kafka broker and PostgreSQL; peak memory is its VmHWM.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import typer
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from paysync_core import topics
from paysync_core.contracts import Provider
from paysync_core.credentials import GatewayCredentials, StripeCredentials
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import tenants as tenant_repo
from paysync_core.db.engine import make_engine, upgrade
from paysync_core.db.schema import payment_refs, payments, reconcile_checks, reconcile_ticks
from paysync_core.domain.ids import payment_id_for
from paysync_core.kafka import DurableProducer, provision_topics
from paysync_dev import kafka, paths, postgres
from paysync_dev.procstat import cpu_seconds, peak_rss_mb
from paysync_dev.stack import ServiceProcess, free_port
from paysync_gateway_sim import SimulatorClient
from paysync_gateway_sim.config import STRIPE_TEST_MODE_RATE
from paysync_reconciler.models import manual_tick

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
TOPICS = [
    topics.PAYMENT_OBSERVATIONS,
    topics.RECONCILE_TICKS,
    topics.RECONCILE_REQUESTS,
    topics.RECONCILE_REPLIES,
    topics.ALERTS,
    topics.RECONCILE_TICKS.dlq,
    topics.RECONCILE_REQUESTS.dlq,
]


async def register_all(url: str, tenant: str, refs: list[str]) -> None:
    """Register every payment as api-gateway would (payments + payment_refs), in large batches."""
    engine = make_engine(url, pool_size=2)
    try:
        for start in range(0, len(refs), 2000):
            chunk = refs[start : start + 2000]
            rows = [
                {
                    "id": payment_id_for(tenant, "stripe", ref),
                    "tenant_id": tenant,
                    "provider": "stripe",
                    "provider_ref": ref,
                    "domain": "jobs",
                    "entity_id": f"job-{ref[-12:]}",
                    "amount_minor": 2000,
                    "currency": "USD",
                    "metadata": {},
                }
                for ref in chunk
            ]
            async with engine.begin() as conn:
                await conn.execute(insert(payments).values(rows))
                await conn.execute(
                    insert(payment_refs).values(
                        [
                            {
                                "tenant_id": tenant,
                                "provider": "stripe",
                                "ref": r["provider_ref"],
                                "payment_id": r["id"],
                            }
                            for r in rows
                        ]
                    )
                )
    finally:
        await engine.dispose()


async def create_tenant(url: str, keys: str, tenant: str, secret_key: str, api_base: str) -> None:
    """A tenant whose Stripe account is the simulator's."""
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await tenant_repo.create_tenant(conn, tenant, "bench")
            await tenant_repo.set_credentials(
                conn,
                tenant,
                GatewayCredentials(
                    stripe=StripeCredentials(
                        secret_key=secret_key, webhook_secrets=("whsec_unused",), api_base=api_base
                    )
                ),
                CredentialsCipher(keys),
            )
    finally:
        await engine.dispose()


async def sweep_once(url: str, bootstrap: str, tenant: str, timeout: float) -> tuple[dict, float]:
    """Publish a tick and wait for its sweep to finish; its stats and the seconds from tick to end."""
    tick = manual_tick(tenant, Provider.STRIPE, datetime.now(UTC))
    producer = DurableProducer(bootstrap, client_id="bench")
    await producer.start()
    engine = make_engine(url, pool_size=1)
    try:
        started = time.monotonic()
        await producer.send(topics.RECONCILE_TICKS.name, f"{tenant}:stripe".encode(), tick.to_bytes())
        while time.monotonic() - started < timeout:
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(reconcile_ticks).where(reconcile_ticks.c.tick_id == tick.tick_id)
                    )
                ).first()
            if row is not None and row.completed_at is not None:
                return dict(row.stats) | {"status": row.status}, time.monotonic() - started
            await asyncio.sleep(0.25)
        raise TimeoutError(f"the sweep did not finish within {timeout}s")
    finally:
        await producer.stop()
        await engine.dispose()


async def schedule_counts(url: str, tenant: str) -> dict[str, int]:
    """How the sweep left the payments' schedules."""
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            c = reconcile_checks.c
            row = (
                await conn.execute(
                    select(
                        func.count().filter(c.done_at.is_not(None)).label("done"),
                        func.count().filter(c.done_at.is_(None) & (c.checks_made == 1)).label("open_checked"),
                        func.count().filter(c.checks_made == 0).label("unchecked"),
                        func.count().filter(c.checks_made > 1).label("checked_twice"),
                    ).where(c.tenant_id == tenant)
                )
            ).one()
        return dict(row._mapping)
    finally:
        await engine.dispose()


def start_simulator(
    bench_dir: Path, made_file: Path, count: int, open_share: float, expired_share: float
) -> tuple[subprocess.Popen[bytes], str]:
    """The simulator as its own process, filling itself with `count` payments (`sim_server.py`), and its
    URL; `made_file` is written once the payments are made."""
    made_file.unlink(missing_ok=True)
    sim_port = free_port()
    simulator = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("sim_server.py")),
            *("--port", str(sim_port), "--payments", str(count), "--out", str(made_file)),
            *("--open-share", str(open_share), "--expired-share", str(expired_share)),
        ],
        stdout=(bench_dir / "simulator.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    return simulator, f"http://127.0.0.1:{sim_port}"


def family(pid: int) -> list[int]:
    """The process and its children (the reconciler's page-reading worker), recursively."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += family(int(child))
    return found


def main(
    count: int = typer.Option(100_000, "--payments", help="Unsettled payments to sweep"),
    open_share: float = typer.Option(0.03, help="Share still open at the gateway (one retrieval each)"),
    expired_share: float = typer.Option(0.25, help="Share expired (the rest were paid)"),
    profile: bool = typer.Option(
        False, help="Run the reconciler under cProfile (.local/bench/reconciler.prof)"
    ),
) -> None:
    """Set up, sweep once, report wall time against the rate limit's floor, calls and peak memory."""
    bench_dir = paths.local_dir() / "bench" / "reconciler"
    bench_dir.mkdir(parents=True, exist_ok=True)
    broker = kafka.KafkaProcess.on_free_ports(bench_dir / f"kafka-{uuid.uuid4().hex[:6]}")
    broker.start()
    database = postgres.create_database(f"paysync_bench_{uuid.uuid4().hex[:8]}", postgres.ensure_postgres())
    made_file = bench_dir / "simulator-payments.json"
    started = time.monotonic()
    simulator, sim_url = start_simulator(bench_dir, made_file, count, open_share, expired_share)
    reconciler: ServiceProcess | None = None
    try:
        upgrade(database)
        asyncio.run(provision_topics(broker.bootstrap, specs=TOPICS))
        keys = Fernet.generate_key().decode()
        tenant = f"bench-{uuid.uuid4().hex[:8]}"
        _wait_for_simulator(simulator, sim_url, made_file, timeout=1800)
        setup = json.loads(made_file.read_text())
        made: dict[str, str] = setup["payments"]
        print(
            f"simulator: {len(made):,} payments, {setup['events']:,} events, in "
            f"{time.monotonic() - started:.0f}s",
            flush=True,
        )
        with SimulatorClient(sim_url) as sim:
            asyncio.run(create_tenant(database, keys, tenant, setup["secret_key"], sim.stripe_base))
            asyncio.run(register_all(database, tenant, list(made)))
            service_class = _Profiled if profile else ServiceProcess
            reconciler = service_class(
                "reconciler",
                free_port(),
                {
                    "PAYSYNC_KAFKA_BOOTSTRAP": broker.bootstrap,
                    "PAYSYNC_DATABASE_URL": database,
                    "PAYSYNC_CREDENTIALS_KEYS": keys,
                    "PAYSYNC_LOG_LEVEL": "INFO",
                    "PAYSYNC_RECONCILER_SCHEDULER_ENABLED": "false",
                    # Every payment is due now; those still open come up again an hour later.
                    "PAYSYNC_RECONCILER_STRIPE_SCHEDULE": "0,3600",
                    "PAYSYNC_RECONCILER_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
                },
                bench_dir / "reconciler.log",
            )
            reconciler.start()
            reconciler.wait_ready()
            time.sleep(3)  # consumer group joined
            before = sim.account_stats(setup["account"]).api
            cpu_before = cpu_seconds(family(reconciler.process.pid))  # type: ignore[union-attr]
            main_cpu_before = cpu_seconds([reconciler.process.pid])  # type: ignore[union-attr]
            stats, tick_to_end = asyncio.run(sweep_once(database, broker.bootstrap, tenant, timeout=3 * 3600))
            after = sim.account_stats(setup["account"]).api
            assert reconciler.process is not None
            processes = family(reconciler.process.pid)
            cpu = cpu_seconds(processes) - cpu_before
            main_cpu = cpu_seconds(processes[:1]) - main_cpu_before
            peak = peak_rss_mb(reconciler.process.pid)
            worker_peak = sum(peak_rss_mb(pid) for pid in processes[1:])
        schedules = asyncio.run(schedule_counts(database, tenant))
    finally:
        if reconciler is not None:
            reconciler.stop()
        simulator.terminate()
        simulator.wait(10)
        broker.stop()
        postgres.drop_database(postgres.database_name(database), postgres.ensure_postgres())

    calls = after.requests - before.requests
    opened = sum(1 for o in made.values() if o == "open")
    floor = calls / STRIPE_TEST_MODE_RATE
    wall = float(stats["seconds"])
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "payments": count,
        "open_at_gateway": opened,
        "paid": sum(1 for o in made.values() if o == "pay"),
        "expired": sum(1 for o in made.values() if o == "expire"),
        "enforced_rate_per_s": STRIPE_TEST_MODE_RATE,
        "gateway_calls": calls,
        "list_calls": calls - opened,
        "retrievals": opened,
        "calls_per_payment": round(calls / count, 4),
        "over_limit": after.over_limit - before.over_limit,
        "floor_s": round(floor, 1),
        "wall_s": round(wall, 1),
        "tick_to_end_s": round(tick_to_end, 1),
        "wall_over_floor": round(wall / floor, 3),
        "peak_rss_mb": round(peak, 1),
        "worker_peak_rss_mb": round(worker_peak, 1),
        "reconciler_cpu_s": round(cpu, 1),
        "reconciler_main_cpu_s": round(main_cpu, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "sweep_stats": stats,
        "schedules": schedules,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reconciler.json").write_text(json.dumps(result, indent=2, default=str))
    print(
        "| payments | gateway calls | calls/payment | floor (calls ÷ 25/s) | sweep wall | wall/floor "
        "| over limit | reconciler CPU | peak RSS (+ reader) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {count:,} | {calls:,} ({result['list_calls']:,} Events pages + {opened:,} retrievals) | "
        f"{result['calls_per_payment']} | {floor:.1f} s | {wall:.1f} s | {wall / floor:.3f} | "
        f"{result['over_limit']} | {cpu:.0f} s | {peak:.0f} MiB (+ {worker_peak:.0f} MiB) |"
    )
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"schedules after the sweep: {schedules}")


class _Profiled(ServiceProcess):
    """The reconciler under cProfile; the profile is written when it stops."""

    _RUN = (
        "import cProfile, runpy, signal, sys\n"
        "out = sys.argv.pop(1)\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "profile = cProfile.Profile()\n"
        "profile.enable()\n"
        "try:\n"
        "    runpy.run_module('paysync_reconciler', run_name='__main__')\n"
        "finally:\n"
        "    profile.disable()\n"
        "    profile.dump_stats(out)\n"
    )

    def start(self) -> None:
        """Launch the reconciler inside a profiler that writes `<log>.prof` on SIGTERM."""
        env = {**os.environ, **self.env, "PAYSYNC_RECONCILER_PORT": str(self.port)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", self._RUN, str(self.log_path.with_suffix(".prof"))],
            env=env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for_simulator(process: subprocess.Popen[bytes], url: str, made: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the simulator exited with {process.returncode}")
        if made.exists():
            try:
                if httpx.get(f"{url}/_sim/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise TimeoutError("the simulator did not come up")


if __name__ == "__main__":
    typer.run(main)
