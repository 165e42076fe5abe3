"""Benchmark a bulk "Check payments" over 10,000 unsettled Stripe payments: one by one, then through the
Events list, in one run.

    make bench-reconciler-bulk        (or: .venv/bin/python bench/reconciler/bulk.py --help)

The simulator (`sim_server.py`, Stripe's test-mode limit of 25 requests/s enforced and every request
counted per operation) holds one account whose payments mostly changed with every webhook lost
(72% paid, 25% expired, 3% still open). Two tenants share that account, each with all the payments
registered as unsettled: the first is checked by a reconciler that asks about each payment one by
one (`PAYSYNC_RECONCILER_BULK_LIST_MAX_PER_PAYMENT=0`: what a bulk check did before), the second by
one with the default settings (the Events list for the payments' window, retrievals only for what it
cannot settle). Each bulk check is one `kind: bulk` request on the requests topic; its wall time is
its `reconcile_requests` row's `completed_at - created_at` (the database's clock). The floor is the
gateway calls it made divided by the enforced rate. No projector runs (the reconciler's wait for it
is off: `APPLY_WAIT_SECONDS=0`), so the reply's "updated" and "found paid" counts are 0 here; the
calls and the time are what is measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from cryptography.fernet import Fernet
from run import RESULTS, TOPICS, _wait_for_simulator, create_tenant, family, register_all, start_simulator
from sqlalchemy import select

from paysync_core import topics
from paysync_core.contracts import ReconcileRequest
from paysync_core.db.engine import make_engine, upgrade
from paysync_core.db.schema import reconcile_requests
from paysync_core.kafka import DurableProducer, provision_topics
from paysync_dev import kafka, paths, postgres
from paysync_dev.procstat import cpu_seconds
from paysync_dev.stack import ServiceProcess, free_port
from paysync_gateway_sim import SimulatorClient
from paysync_gateway_sim.config import STRIPE_TEST_MODE_RATE

RETRIEVE = "GET /v1/checkout/sessions/{session_id}"
EVENTS = "GET /v1/events"


async def bulk_check(url: str, bootstrap: str, tenant: str, timeout: float) -> tuple[dict[str, Any], float]:
    """Publish a bulk check and wait until it is answered: its reply and its wall time (database clock)."""
    request = ReconcileRequest(
        request_id=f"rr_bench_{uuid.uuid4().hex}", tenant=tenant, kind="bulk", requested_at=datetime.now(UTC)
    )
    producer = DurableProducer(bootstrap, client_id="bench")
    await producer.start()
    engine = make_engine(url, pool_size=1)
    try:
        await producer.send(topics.RECONCILE_REQUESTS.name, tenant.encode(), request.to_bytes())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(reconcile_requests).where(
                            reconcile_requests.c.request_id == request.request_id
                        )
                    )
                ).first()
            if row is not None and row.status in ("completed", "failed"):
                return dict(row.reply or {"error": row.error}), (
                    row.completed_at - row.created_at
                ).total_seconds()
            await asyncio.sleep(0.25)
        raise TimeoutError(f"the bulk check did not finish within {timeout}s")
    finally:
        await producer.stop()
        await engine.dispose()


def measure(
    label: str,
    env: dict[str, str],
    log: Path,
    sim: SimulatorClient,
    account: str,
    database: str,
    bootstrap: str,
    tenant: str,
    payments: int,
) -> dict[str, Any]:
    """One bulk check by a reconciler of its own with `env`: calls, wall time, floor, CPU."""
    reconciler = ServiceProcess("reconciler", free_port(), env, log)
    reconciler.start()
    try:
        reconciler.wait_ready()
        time.sleep(3)  # consumer group joined
        assert reconciler.process is not None
        before = sim.account_stats(account).api
        cpu_before = cpu_seconds(family(reconciler.process.pid))
        reply, wall = asyncio.run(bulk_check(database, bootstrap, tenant, timeout=3 * 3600))
        after = sim.account_stats(account).api
        cpu = cpu_seconds(family(reconciler.process.pid)) - cpu_before
    finally:
        reconciler.stop()
    ops = {op: n - before.by_operation.get(op, 0) for op, n in after.by_operation.items()}
    calls = after.requests - before.requests
    floor = calls / STRIPE_TEST_MODE_RATE
    return {
        "mode": label,
        "payments": payments,
        "payments_checked": reply.get("payments_checked"),
        "gateway_errors": reply.get("gateway_errors"),
        "gateway_calls": calls,
        "events_pages": ops.get(EVENTS, 0),
        "retrievals": ops.get(RETRIEVE, 0),
        "calls_per_payment": round(calls / payments, 4),
        "over_limit": after.over_limit - before.over_limit,
        "floor_s": round(floor, 1),
        "wall_s": round(wall, 1),
        "wall_over_floor": round(wall / floor, 3) if floor else None,
        "reconciler_cpu_s": round(cpu, 1),
    }


def main(
    count: int = typer.Option(10_000, "--payments", help="Unsettled payments each bulk check covers"),
    before_payments: int = typer.Option(
        0, help="Payments of the one-by-one check (0: as many as --payments; fewer keeps the run short)"
    ),
    open_share: float = typer.Option(0.03, help="Share still open at the gateway (one retrieval each)"),
    expired_share: float = typer.Option(0.25, help="Share expired (the rest were paid)"),
) -> None:
    """Set up, run the bulk check one by one and through the list, report both against their floors."""
    bench_dir = paths.local_dir() / "bench" / "reconciler-bulk"
    bench_dir.mkdir(parents=True, exist_ok=True)
    broker = kafka.KafkaProcess.on_free_ports(bench_dir / f"kafka-{uuid.uuid4().hex[:6]}")
    broker.start()
    database = postgres.create_database(f"paysync_bench_{uuid.uuid4().hex[:8]}", postgres.ensure_postgres())
    made_file = bench_dir / "simulator-payments.json"
    simulator, sim_url = start_simulator(bench_dir, made_file, count, open_share, expired_share)
    results: list[dict[str, Any]] = []
    try:
        upgrade(database)
        asyncio.run(provision_topics(broker.bootstrap, specs=TOPICS))
        keys = Fernet.generate_key().decode()
        _wait_for_simulator(simulator, sim_url, made_file, timeout=1800)
        setup = json.loads(made_file.read_text())
        refs = list(setup["payments"])
        with SimulatorClient(sim_url) as sim:
            shared = {
                "PAYSYNC_KAFKA_BOOTSTRAP": broker.bootstrap,
                "PAYSYNC_DATABASE_URL": database,
                "PAYSYNC_CREDENTIALS_KEYS": keys,
                "PAYSYNC_LOG_LEVEL": "INFO",
                "PAYSYNC_RECONCILER_SCHEDULER_ENABLED": "false",
                "PAYSYNC_RECONCILER_APPLY_WAIT_SECONDS": "0",
            }
            modes = (
                ("one by one (before)", before_payments or count, "0"),
                ("through the list (after)", count, ""),
            )
            for label, n, list_max in modes:
                tenant = f"bench-{uuid.uuid4().hex[:8]}"
                asyncio.run(create_tenant(database, keys, tenant, setup["secret_key"], sim.stripe_base))
                asyncio.run(register_all(database, tenant, refs[:n]))
                env = shared | {"PAYSYNC_RECONCILER_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}"}
                if list_max:
                    env["PAYSYNC_RECONCILER_BULK_LIST_MAX_PER_PAYMENT"] = list_max
                log = bench_dir / f"reconciler-{len(results)}.log"
                results.append(
                    measure(label, env, log, sim, setup["account"], database, broker.bootstrap, tenant, n)
                )
                print(json.dumps(results[-1]), flush=True)
    finally:
        simulator.terminate()
        simulator.wait(10)
        broker.stop()
        postgres.drop_database(postgres.database_name(database), postgres.ensure_postgres())
    report(results, count, setup["events"])


def report(results: list[dict[str, Any]], count: int, events: int) -> None:
    """Write the raw figures and print the table for bench/README.md."""
    load = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    out: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
    }
    out |= {"events_at_gateway": events, "load_average": load, "runs": results}
    (RESULTS / "reconciler-bulk.json").write_text(json.dumps(out, indent=2))
    print(
        "| bulk check | payments | gateway calls | calls/payment | floor (calls ÷ 25/s) | wall | wall/floor "
        "| over limit | reconciler CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        calls = (
            f"{r['gateway_calls']:,} ({r['events_pages']:,} Events pages + {r['retrievals']:,} retrievals)"
        )
        print(
            f"| {r['mode']} | {r['payments']:,} | {calls} | {r['calls_per_payment']} | {r['floor_s']} s "
            f"| {r['wall_s']} s | {r['wall_over_floor']} | {r['over_limit']} | {r['reconciler_cpu_s']} s |"
        )
    print(f"load average at the end: {load}; {events:,} events at the gateway for {count:,} payments")


if __name__ == "__main__":
    typer.run(main)
