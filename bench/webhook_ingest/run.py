"""Benchmark webhook-ingest over HTTP from a separate process, next to a bare endpoint of the same stack.

    make bench-ingest            (or: .venv/bin/python bench/webhook_ingest/run.py --help)

Load comes from bench/loadgen (Go, standard library; open loop: requests leave at the set rate
whatever the latency, so latency percentiles are not flattered by coordinated omission). Each
request is a distinct, correctly signed Stripe `checkout.session.completed` webhook. The service
runs as its own process against a Kafka broker and PostgreSQL on this machine; peak memory is the service
process's VmHWM.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import typer
from cryptography.fernet import Fernet

from paysync_core import topics
from paysync_core.db.engine import upgrade
from paysync_core.kafka import provision_topics
from paysync_core.providers import sign_stripe
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.stripe import checkout_session, stripe_event
from paysync_dev import kafka, paths, postgres
from paysync_dev.fixtures import create_tenant
from paysync_dev.procstat import cpu_seconds, peak_rss_mb
from paysync_dev.stack import ServiceProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
LOADGEN = ROOT / ".cache" / "bin" / "loadgen"
RESULTS = ROOT / "bench" / "results"


def targets_file(url: str, secret: str, count: int, out: Path) -> Path:
    """`count` distinct signed webhooks as vegeta JSON targets."""
    now = int(time.time())
    with out.open("w") as f:
        for _ in range(count):
            body = to_body(
                stripe_event(
                    "checkout.session.completed",
                    checkout_session(id=f"cs_test_{uuid.uuid4().hex}", amount_total=2000),
                )
            )
            headers = {
                "Stripe-Signature": [sign_stripe(body, secret, now)],
                "Content-Type": ["application/json"],
            }
            f.write(
                json.dumps(
                    {"method": "POST", "url": url, "body": base64.b64encode(body).decode(), "header": headers}
                )
                + "\n"
            )
    return out


def attack(targets: Path, rate: int, seconds: int, workers: int = 256, timeline: Path | None = None) -> dict:
    """Run the load generator at `rate` per second (0: closed loop with `workers`); its JSON report."""
    command = [
        str(LOADGEN),
        f"-targets={targets}",
        f"-rate={rate}",
        f"-duration={seconds}s",
        f"-workers={workers}",
    ]
    if timeline is not None:
        command.append(f"-timeline={timeline}")
    out = subprocess.run(command, capture_output=True, check=True)
    return json.loads(out.stdout)


def measured(run: Callable[[], dict], pids: dict[str, int | None]) -> dict:
    """Run an attack; its report, plus the CPU milliseconds each process spent per successful request."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = run()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    spent["loadgen"] = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    ok = max(1, report["ok"])
    report["cpu_ms_per_request"] = {name: round(1000 * s / ok, 3) for name, s in spent.items()}
    return report


def summarise(name: str, report: dict) -> dict:
    return {
        "target": name,
        "requests": report["requests"],
        "throughput_per_s": round(report["throughput_ok_per_s"], 1),
        "success_ratio": report["ok"] / max(1, report["requests"]),
        "p50_ms": round(report["p50_ms"], 2),
        "p95_ms": round(report["p95_ms"], 2),
        "p99_ms": round(report["p99_ms"], 2),
        "max_ms": round(report["max_ms"], 2),
        "status_codes": report["status_codes"],
        "errors": report.get("errors", {}),
        "cpu_ms_per_request": report["cpu_ms_per_request"],
    }


def main(
    rate: int = typer.Option(1000, help="Fixed rate for the latency run, requests/s"),
    seconds: int = typer.Option(20, help="Duration of each run"),
    saturate_workers: int = typer.Option(32, help="Concurrent connections for the max-throughput run"),
    timelines: bool = typer.Option(False, help="Also write each request's latency to bench/results/*.csv"),
) -> None:
    """Measure webhook-ingest and the bare endpoint: max throughput, then latency at a fixed rate."""
    if not LOADGEN.exists():
        sys.exit(f"{LOADGEN} missing: run `make bench-ingest` (it builds bench/loadgen)")
    bench_dir = paths.local_dir() / "bench"
    broker = kafka.KafkaProcess.on_free_ports(bench_dir / f"kafka-{uuid.uuid4().hex[:6]}")
    broker.start()
    database = postgres.create_database(f"paysync_bench_{uuid.uuid4().hex[:8]}", postgres.ensure_postgres())
    upgrade(database)
    asyncio.run(provision_topics(broker.bootstrap, specs=[topics.WEBHOOKS_RAW]))
    keys = Fernet.generate_key().decode()
    tenant = create_tenant(database, keys, gateways=("stripe",))
    ingest = ServiceProcess(
        "webhook-ingest",
        free_port(),
        {
            "PAYSYNC_KAFKA_BOOTSTRAP": broker.bootstrap,
            "PAYSYNC_DATABASE_URL": database,
            "PAYSYNC_CREDENTIALS_KEYS": keys,
            "PAYSYNC_LOG_LEVEL": "WARNING",
            "PAYSYNC_WEBHOOK_INGEST_RUN_NORMALIZER": "false",
        },
        bench_dir / "webhook-ingest.log",
    )
    bare_port = free_port()
    bare = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("bare.py"))],
        env={**os.environ, "BARE_PORT": str(bare_port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = []
    try:
        ingest.start()
        ingest.wait_ready()
        time.sleep(1)
        servers = {
            "webhook-ingest": (ingest.url, ingest.process.pid),
            "bare endpoint": (f"http://127.0.0.1:{bare_port}", bare.pid),
        }
        RESULTS.mkdir(exist_ok=True)
        for name, (base, pid) in servers.items():
            _wait_http(f"{base}/readyz")
            url = f"{base}/webhooks/{tenant.id}/stripe"
            total = (rate + 3000) * seconds
            targets = targets_file(url, tenant.stripe_webhook_secret, total, bench_dir / "targets.jsonl")
            attack(targets, rate=200, seconds=3)  # warm-up
            pids = {"server": pid, "broker": broker.pid()}
            slug = name.split()[0]
            saturated = summarise(
                name,
                measured(
                    partial(
                        attack,
                        targets,
                        rate=0,
                        seconds=seconds,
                        workers=saturate_workers,
                        timeline=RESULTS / f"{slug}-max.csv" if timelines else None,
                    ),
                    pids,
                ),
            )
            saturated["mode"] = f"max throughput ({saturate_workers} connections)"
            fixed = summarise(
                name,
                measured(
                    partial(
                        attack,
                        targets,
                        rate=rate,
                        seconds=seconds,
                        timeline=RESULTS / f"{slug}-{rate}.csv" if timelines else None,
                    ),
                    pids,
                ),
            )
            fixed["mode"] = f"fixed {rate}/s"
            for row in (saturated, fixed):
                row["peak_rss_mb"] = round(peak_rss_mb(pid), 1)
                results.append(row)
    finally:
        ingest.stop()
        bare.terminate()
        bare.wait(10)
        broker.stop()
        postgres.drop_database(database.rsplit("/", 1)[1], postgres.ensure_postgres())
    ratio = results[0]["throughput_per_s"] / results[2]["throughput_per_s"]
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "kafka": kafka.version(),
        "results": results,
        "ingest_to_bare_ratio": round(ratio, 2),
    }
    (RESULTS / "webhook-ingest.json").write_text(json.dumps(out, indent=2))
    print(
        "| target | mode | throughput/s | p50 ms | p95 ms | p99 ms | max ms | success | peak RSS MiB "
        "| CPU ms/request: server, broker, loadgen |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        cpu = r["cpu_ms_per_request"]
        print(
            f"| {r['target']} | {r['mode']} | {r['throughput_per_s']} | {r['p50_ms']} | {r['p95_ms']} | "
            f"{r['p99_ms']} | {r['max_ms']} | {r['success_ratio']:.4f} | {r['peak_rss_mb']} | "
            f"{cpu['server']}, {cpu['broker']}, {cpu['loadgen']} |"
        )
        if r["errors"]:
            print(f"|   errors: {r['errors']} |")
    print(f"\nwebhook-ingest / bare max throughput: {ratio:.2f}")


def _wait_http(url: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


if __name__ == "__main__":
    typer.run(main)
