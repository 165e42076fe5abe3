"""Benchmark `GET /v1/payments/{id}` with the API-key check cached and uncached, in one run.

    make bench-api            (or: .venv/bin/python bench/api_reads/run.py --help)

api-gateway runs as its own process against a Kafka broker and PostgreSQL on this machine, twice
with the same build: `PAYSYNC_API_GATEWAY_API_KEY_CACHE_SECONDS=0` (every request looks its key
up in the database, as before the cache) and the default (5). The load comes from bench/loadgen
(closed loop: the most it sustains with N connections; then open loop at a fixed rate for the
latency), with the tenant's API key on every request. Results in bench/results/api-reads.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
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
from webhook_ingest.run import LOADGEN, RESULTS, attack, measured, summarise


def targets_file(url: str, api_key: str, out: Path) -> Path:
    """One target: the payment, read with the tenant's key."""
    header = {"Authorization": [f"Bearer {api_key}"]}
    out.write_text(json.dumps({"method": "GET", "url": url, "body": "", "header": header}) + "\n")
    return out


def main(
    rate: int = typer.Option(500, help="Fixed rate for the latency run, requests/s"),
    seconds: int = typer.Option(15, help="Duration of each run"),
    workers: int = typer.Option(16, help="Connections for the max-throughput run"),
) -> None:
    """GET /v1/payments/{id}: max throughput and latency at a fixed rate, key cache off and on."""
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
    results = []
    try:
        for cache in ("0", "5"):
            api = ServiceProcess(
                "api-gateway",
                free_port(),
                {
                    "PAYSYNC_KAFKA_BOOTSTRAP": broker.bootstrap,
                    "PAYSYNC_DATABASE_URL": database,
                    "PAYSYNC_CREDENTIALS_KEYS": keys,
                    "PAYSYNC_LOG_LEVEL": "WARNING",
                    "PAYSYNC_API_GATEWAY_API_KEY_CACHE_SECONDS": cache,
                },
                bench_dir / "api-gateway.log",
            )
            api.start()
            try:
                api.wait_ready()
                auth = {"Authorization": f"Bearer {tenant.api_key}"}
                made = httpx.post(
                    f"{api.url}/v1/payments", json=stripe_registration(), headers=auth, timeout=10
                )
                made.raise_for_status()
                url = f"{api.url}/v1/payments/{made.json()['id']}"
                targets = targets_file(url, tenant.api_key, bench_dir / "api-targets.jsonl")
                attack(targets, rate=200, seconds=3)  # warm-up
                pids = {"server": api.process.pid if api.process else None, "broker": broker.pid()}
                name = f"api-gateway, key cache {cache} s"
                for mode, run in (
                    (
                        f"max throughput ({workers} connections)",
                        partial(attack, targets, 0, seconds, workers),
                    ),
                    (f"fixed {rate}/s", partial(attack, targets, rate, seconds)),
                ):
                    row = summarise(name, measured(run, pids))
                    row["mode"] = mode
                    row["peak_rss_mb"] = round(peak_rss_mb(pids["server"]), 1)
                    results.append(row)
            finally:
                api.stop()
    finally:
        broker.stop()
        postgres.drop_database(database.rsplit("/", 1)[1], postgres.ensure_postgres())
    RESULTS.mkdir(exist_ok=True)
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "results": results,
    }
    (RESULTS / "api-reads.json").write_text(json.dumps(out, indent=2))
    print(
        "| target | mode | throughput/s | p50 ms | p95 ms | p99 ms | max ms | success "
        "| CPU ms/request: server, broker |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        cpu = r["cpu_ms_per_request"]
        print(
            f"| {r['target']} | {r['mode']} | {r['throughput_per_s']} | {r['p50_ms']} | {r['p95_ms']} | "
            f"{r['p99_ms']} | {r['max_ms']} | {r['success_ratio']:.4f} | {cpu['server']}, {cpu['broker']} |"
        )


if __name__ == "__main__":
    typer.run(main)
