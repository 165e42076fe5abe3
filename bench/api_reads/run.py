"""Benchmark the API front ends hit most: `GET /v1/payments/{id}` and `POST /v1/payments`, beside the
bare endpoint of the same stack, in one run.

    make bench-api            (or: .venv/bin/python bench/api_reads/run.py --help)

api-gateway runs as its own process against a Kafka broker and PostgreSQL on this machine; the bare
endpoint (`bench/webhook_ingest/bare.py`: uvicorn + FastAPI, the same routes, no key check, no
database) is the floor of the stack. The reads run twice with the same build:
`PAYSYNC_API_GATEWAY_API_KEY_CACHE_SECONDS=0` (every request looks its key up in the database, as
before the cache) and the default (5). Every registration is a distinct payment. The load comes from
bench/loadgen (closed loop: the most it sustains with N connections; then open loop at a fixed rate,
by default half the maximum just measured, for the latency), with the tenant's API key on every
request. CPU a request is reported for api-gateway, the broker, PostgreSQL's backends of the bench
database (listed before each phase, after a warm-up with the phase's connections) and the load generator.
Results in bench/results/api-reads.json.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import typer
from cryptography.fernet import Fernet

from paysync_core import topics
from paysync_core.db.engine import upgrade
from paysync_core.kafka import provision_topics
from paysync_dev import kafka, paths, postgres
from paysync_dev.fixtures import create_tenant, stripe_registration
from paysync_dev.procstat import peak_rss_mb
from paysync_dev.stack import ServiceProcess, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from webhook_ingest.run import LOADGEN, RESULTS, attack, measured, postgres_backends, summarise
from webhook_ingest.run import _wait_http as wait_http


def reads_file(url: str, api_key: str, out: Path) -> Path:
    """One target: the payment, read with the tenant's key."""
    header = {"Authorization": [f"Bearer {api_key}"]}
    out.write_text(json.dumps({"method": "GET", "url": url, "body": "", "header": header}) + "\n")
    return out


def registrations_file(url: str, api_key: str, count: int, out: Path) -> Path:
    """`count` distinct registrations (each a new Stripe Checkout Session), with the tenant's key."""
    header = {"Authorization": [f"Bearer {api_key}"], "Content-Type": ["application/json"]}
    with out.open("w") as f:
        for _ in range(count):
            body = base64.b64encode(json.dumps(stripe_registration()).encode()).decode()
            f.write(json.dumps({"method": "POST", "url": url, "body": body, "header": header}) + "\n")
    return out


def runs(
    name: str,
    targets: Path,
    rate: int,
    seconds: int,
    workers: int,
    pids: dict[str, int | None],
    fixed: bool = True,
    fresh: Callable[[], Path] | None = None,
    database: str | None = None,
) -> list[dict]:
    """Max throughput with `workers` connections, then (`fixed`) `rate` open loop (0: half the maximum
    just measured, where latency means something whatever the machine): a result row each. `fresh`
    makes the fixed rate's targets anew (registrations: the maximum's were registered already). With
    `database`, its PostgreSQL backends (listed before each phase) are measured as `postgres`."""
    rows = []
    for mode in ("max", "fixed") if fixed else ("max",):
        if database is not None:
            pids = {**pids, "postgres": asyncio.run(postgres_backends(database))}
        if mode == "max":
            label = f"max throughput ({workers} connections)"
            run = partial(attack, targets, 0, seconds, workers)
        else:
            rate = rate or max(1, int(rows[0]["throughput_per_s"] / 2))
            targets = fresh() if fresh is not None else targets
            label, run = f"fixed {rate}/s", partial(attack, targets, rate, seconds)
        row = summarise(name, measured(run, pids))
        row["mode"] = label
        row["peak_rss_mb"] = round(peak_rss_mb(pids["server"]), 1) if pids["server"] else None
        rows.append(row)
    return rows


def main(
    read_rate: int = typer.Option(
        0, help="Fixed rate of the read latency runs; 0: half each target's maximum (the aim's: 2500)"
    ),
    register_rate: int = typer.Option(
        0, help="Fixed rate of the registration latency runs; 0: half each target's maximum (the aim's: 1000)"
    ),
    seconds: int = typer.Option(15, help="Duration of each run"),
    workers: int = typer.Option(16, help="Connections for the max-throughput runs"),
    bare: bool = typer.Option(True, help="Measure the bare endpoint too"),
    fixed: bool = typer.Option(True, help="Run each target at a fixed rate too, after its maximum"),
    key_cache: list[str] = typer.Option(
        ["0", "5"], help="The reads' API-key cache seconds, a phase each, in this order (again: twice)"
    ),
    registrations: bool = typer.Option(True, help="Measure registrations (after each key cache 5 s phase)"),
    against: list[Path] = typer.Option(
        [],
        help="Another checkout (a worktree of an older commit): each api-gateway phase runs its code too, "
        "just before this checkout's, against the same database and broker (an A/B in one window)",
    ),
    this_first: bool = typer.Option(
        False, help="With --against: this checkout's phase first, then the other's (for pairs in turns)"
    ),
) -> None:
    """GET /v1/payments/{id} (key cache off and on) and POST /v1/payments, beside the bare endpoint."""
    if not LOADGEN.exists():
        sys.exit(f"{LOADGEN} missing: run `make bench-api` (it builds bench/loadgen)")
    bench_dir = paths.local_dir() / "bench"
    broker = kafka.KafkaProcess.on_free_ports(bench_dir / f"kafka-{uuid.uuid4().hex[:6]}")
    broker.start()
    database = postgres.create_database(f"paysync_bench_{uuid.uuid4().hex[:8]}", postgres.ensure_postgres())
    upgrade(database)
    asyncio.run(
        provision_topics(broker.bootstrap, specs=[topics.RECONCILE_REQUESTS, topics.RECONCILE_REPLIES])
    )
    keys = Fernet.generate_key().decode()
    tenant = create_tenant(database, keys, gateways=("stripe",))
    register_count = (register_rate or 5000) * 2 * seconds + 1000  # distinct for api-gateway's rates
    rates = (read_rate, register_rate)
    phases = Phases(tenant.api_key, bench_dir, rates, seconds, workers, fixed, register_count, database)
    results: list[dict] = []
    try:
        if bare:
            results += _bare(dataclasses.replace(phases, database=None), register_count)
        env = {
            "PAYSYNC_KAFKA_BOOTSTRAP": broker.bootstrap,
            "PAYSYNC_DATABASE_URL": database,
            "PAYSYNC_CREDENTIALS_KEYS": keys,
            "PAYSYNC_LOG_LEVEL": "WARNING",
        }
        for cache in key_cache:
            for code in [None, *against] if this_first else [*against, None]:
                results += _gateway(phases, env, cache, code, broker.pid(), registrations)
    finally:
        broker.stop()
        postgres.drop_database(postgres.database_name(database), postgres.ensure_postgres())
    report(results)


@dataclass(frozen=True)
class Phases:
    """What every phase of a run shares: the key, where files go, rates, duration and connections."""

    api_key: str
    bench_dir: Path
    rates: tuple[int, int]
    seconds: int
    workers: int
    fixed: bool
    registrations: int
    database: str | None = None

    def runs(
        self,
        name: str,
        targets: Path,
        rate: int,
        pids: dict[str, int | None],
        fresh: Callable[[], Path] | None = None,
    ) -> list[dict]:
        """`runs` of this run's duration and connections (the fixed rate only if asked for), with the
        database's backends measured when it is api-gateway's."""
        return runs(name, targets, rate, self.seconds, self.workers, pids, self.fixed, fresh, self.database)


def _gateway(
    phases: Phases,
    env: dict[str, str],
    cache: str,
    code: Path | None,
    broker_pid: int | None,
    registrations: bool,
) -> list[dict]:
    """One api-gateway (this checkout's code, or `code`'s): its reads, and with the key cache on, its
    registrations (every one a new payment)."""
    env = {**env, "PAYSYNC_API_GATEWAY_API_KEY_CACHE_SECONDS": cache}
    label = "api-gateway"
    if code is not None:  # that checkout's api-gateway and core, ahead of this one's installed code
        sources = [code / "services" / "api-gateway" / "src", code / "libs" / "paysync-core" / "src"]
        env["PYTHONPATH"] = os.pathsep.join(str(s.resolve()) for s in sources)
        label = f"api-gateway ({code.resolve().name})"
    api = ServiceProcess("api-gateway", free_port(), env, phases.bench_dir / "api-gateway.log")
    api.start()
    try:
        api.wait_ready()
        pids = {"server": api.process.pid if api.process else None, "broker": broker_pid}
        rows = _api(api.url, phases, pids, f"{label} GET, key cache {cache} s")
        if cache == "5" and registrations:
            out = phases.bench_dir / "api-regs.jsonl"
            new = partial(
                registrations_file, f"{api.url}/v1/payments", phases.api_key, phases.registrations, out
            )
            rows += phases.runs(f"{label} POST /v1/payments", new(), phases.rates[1], pids, fresh=new)
        return rows
    finally:
        api.stop()


def _bare(phases: Phases, count: int) -> list[dict]:
    """The bare endpoint's rows: the same GET and POST routes, no key check, no database."""
    port = free_port()
    bare = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve().parents[1] / "webhook_ingest" / "bare.py")],
        env={**os.environ, "BARE_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/readyz")
        pids: dict[str, int | None] = {"server": bare.pid}
        out = phases.bench_dir / "bare-reads.jsonl"
        reads = reads_file(f"{base}/v1/payments/{uuid.uuid4()}", phases.api_key, out)
        attack(reads, rate=200, seconds=3)  # warm-up
        rows = phases.runs("bare endpoint GET", reads, phases.rates[0], pids)
        regs = registrations_file(
            f"{base}/v1/payments", phases.api_key, count, phases.bench_dir / "bare-regs.jsonl"
        )
        return rows + phases.runs("bare endpoint POST", regs, phases.rates[1], pids)
    finally:
        bare.terminate()
        bare.wait(10)


def _api(url: str, phases: Phases, pids: dict[str, int | None], name: str) -> list[dict]:
    """api-gateway's read rows: one registered payment, read again and again."""
    auth = {"Authorization": f"Bearer {phases.api_key}"}
    made = httpx.post(f"{url}/v1/payments", json=stripe_registration(), headers=auth, timeout=10)
    made.raise_for_status()
    out = phases.bench_dir / "api-targets.jsonl"
    targets = reads_file(f"{url}/v1/payments/{made.json()['id']}", phases.api_key, out)
    # Warm-up with the phases' connections: the pool's connections (PostgreSQL's backends) all open.
    attack(targets, rate=0, seconds=3, workers=phases.workers)
    return phases.runs(name, targets, phases.rates[0], pids)


def report(results: list[dict], out: Callable[[str], None] = print) -> None:
    """Write bench/results/api-reads.json and print the table, with each target's ratio to the bare one."""
    RESULTS.mkdir(exist_ok=True)
    best = {r["target"]: r["throughput_per_s"] for r in results if r["mode"].startswith("max")}
    ratios = {
        name: round(value / best[f"bare endpoint {'POST' if 'POST' in name else 'GET'}"], 2)
        for name, value in best.items()
        if name.startswith("api-gateway") and "bare endpoint GET" in best
    }
    summary = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "results": results,
        "max_throughput_to_bare": ratios,
    }
    (RESULTS / "api-reads.json").write_text(json.dumps(summary, indent=2))
    out(
        "| target | mode | throughput/s | p50 ms | p95 ms | p99 ms | max ms | success "
        "| CPU ms/request: server, broker, postgres, loadgen |"
    )
    out("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        cpu = r["cpu_ms_per_request"]
        out(
            f"| {r['target']} | {r['mode']} | {r['throughput_per_s']} | {r['p50_ms']} | {r['p95_ms']} | "
            f"{r['p99_ms']} | {r['max_ms']} | {r['success_ratio']:.4f} | "
            f"{cpu['server']}, {cpu.get('broker', '–')}, {cpu.get('postgres', '–')}, {cpu['loadgen']} |"
        )
    for name, ratio in ratios.items():
        out(f"\n{name} / bare endpoint, max throughput: {ratio}")


if __name__ == "__main__":
    typer.run(main)
