"""Benchmark webhook-ingest over HTTP from a separate process, beside two peers on the same stack.

    make bench-ingest            (or: .venv/bin/python bench/webhook_ingest/run.py --help)

The peers, measured in the same run, one server at a time: the store-first design most apps use
(`store_first.py`: verify with the Stripe SDK, INSERT with a synchronous commit, answer 200) and a
bare endpoint (`bare.py`: no checks, no storage). `--server granian` or `both` (the default) also runs
webhook-ingest's app under Granian instead of uvicorn, as rows of their own.

Load comes from bench/loadgen (Go, standard library; open loop: requests leave at the set rate
whatever the latency, so latency percentiles are not flattered by coordinated omission). Each
request is a distinct, correctly signed Stripe `checkout.session.completed` webhook. Each server
runs as its own process against a Kafka broker and PostgreSQL on this machine; its CPU and peak
memory (VmHWM) are its processes' (Granian's supervisor and worker together).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import typer
from cryptography.fernet import Fernet

from paysync_core import topics
from paysync_core.db.engine import upgrade
from paysync_core.db.notify import asyncpg_dsn
from paysync_core.kafka import provision_topics
from paysync_core.providers import sign_stripe
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.stripe import checkout_session, stripe_event
from paysync_dev import kafka, paths, postgres
from paysync_dev.fixtures import create_tenant
from paysync_dev.procstat import cpu_seconds, group_pids, peak_rss_mb
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


def measured(run: Callable[[], dict], pids: dict[str, int | Iterable[int] | None]) -> dict:
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


#: `--server`: which HTTP server(s) webhook-ingest runs under, each its own rows of the run.
SERVER_CHOICES = ("uvicorn", "granian", "both")

#: The peers every run measures beside webhook-ingest, by their rows' name.
STORE_FIRST, BARE = "store-first", "bare endpoint"


@dataclass(frozen=True)
class Served:
    """A server under test: its base URL and, at any moment, the processes whose CPU is its own."""

    url: str
    pids: Callable[[], list[int]]


def main(
    rate: int = typer.Option(1000, help="Fixed rate for the latency run, requests/s"),
    seconds: int = typer.Option(20, help="Duration of each run"),
    saturate_workers: int = typer.Option(32, help="Concurrent connections for the max-throughput run"),
    server: str = typer.Option(
        "both", help="webhook-ingest under uvicorn (as deployed), Granian, or both: one row each"
    ),
    timelines: bool = typer.Option(False, help="Also write each request's latency to bench/results/*.csv"),
) -> None:
    """Measure webhook-ingest, the store-first peer and the bare endpoint: max throughput, then
    latency at a fixed rate, one server at a time, all in this run."""
    if server not in SERVER_CHOICES:
        sys.exit(f"--server must be one of {', '.join(SERVER_CHOICES)}")
    if not LOADGEN.exists():
        sys.exit(f"{LOADGEN} missing: run `make bench-ingest` (it builds bench/loadgen)")
    bench_dir = paths.local_dir() / "bench"
    broker = kafka.KafkaProcess.on_free_ports(bench_dir / f"kafka-{uuid.uuid4().hex[:6]}")
    broker.start()
    database = postgres.create_database(f"paysync_bench_{uuid.uuid4().hex[:8]}", postgres.ensure_postgres())
    results: list[dict] = []
    durability: dict[str, str] = {}
    try:
        upgrade(database)
        asyncio.run(provision_topics(broker.bootstrap, specs=[topics.WEBHOOKS_RAW]))
        keys = Fernet.generate_key().decode()
        tenant = create_tenant(database, keys, gateways=("stripe",))
        durability = asyncio.run(postgres_durability(database))
        ingest_env = {
            "PAYSYNC_KAFKA_BOOTSTRAP": broker.bootstrap,
            "PAYSYNC_DATABASE_URL": database,
            "PAYSYNC_CREDENTIALS_KEYS": keys,
            "PAYSYNC_LOG_LEVEL": "WARNING",
            "PAYSYNC_WEBHOOK_INGEST_RUN_NORMALIZER": "false",
        }
        store_first_env = {
            "STORE_FIRST_DATABASE_URL": database,
            "STORE_FIRST_WEBHOOK_SECRET": tenant.stripe_webhook_secret,
        }
        servers = servers_under_test(server, ingest_env, store_first_env, bench_dir)
        RESULTS.mkdir(exist_ok=True)
        for name, start in servers.items():
            with start() as served:
                url = f"{served.url}/webhooks/{tenant.id}/stripe"
                total = (rate + 3000) * seconds
                targets = targets_file(url, tenant.stripe_webhook_secret, total, bench_dir / "targets.jsonl")
                attack(targets, rate=200, seconds=3)  # warm-up
                results.extend(
                    measure_server(
                        name,
                        served,
                        targets,
                        broker.pid(),
                        database,
                        rate=rate,
                        seconds=seconds,
                        saturate_workers=saturate_workers,
                        timelines=timelines,
                    )
                )
    finally:
        broker.stop()
        postgres.drop_database(postgres.database_name(database), postgres.ensure_postgres())
    report(results, durability)


def servers_under_test(
    server: str, ingest_env: dict[str, str], store_first_env: dict[str, str], log_dir: Path
) -> dict[str, Callable[[], AbstractContextManager[Served]]]:
    """Row name → how to start that server, in the order they are measured."""
    servers: dict[str, Callable[[], AbstractContextManager[Served]]] = {}
    if server in ("uvicorn", "both"):
        servers["webhook-ingest"] = partial(uvicorn_ingest, ingest_env, log_dir / "webhook-ingest.log")
    if server in ("granian", "both"):
        servers["webhook-ingest (Granian)"] = partial(
            granian_ingest, ingest_env, log_dir / "webhook-ingest-granian.log"
        )
    servers[STORE_FIRST] = partial(
        script_server, "store_first.py", "STORE_FIRST_PORT", store_first_env, log_dir / "store-first.log"
    )
    servers[BARE] = partial(script_server, "bare.py", "BARE_PORT", {}, log_dir / "bare.log")
    return servers


def measure_server(
    name: str,
    served: Served,
    targets: Path,
    broker_pid: int | None,
    database: str,
    *,
    rate: int,
    seconds: int,
    saturate_workers: int,
    timelines: bool,
) -> list[dict]:
    """The server's two rows: the most it answers with `saturate_workers` connections, then `rate`/s."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    rows = []
    for mode, attack_rate, workers, file in (
        (f"max throughput ({saturate_workers} connections)", 0, saturate_workers, f"{slug}-max.csv"),
        (f"fixed {rate}/s", rate, 256, f"{slug}-{rate}.csv"),
    ):
        pids = {
            "server": served.pids(),
            "broker": broker_pid,
            "postgres": asyncio.run(postgres_backends(database)),
        }
        run = partial(
            attack,
            targets,
            rate=attack_rate,
            seconds=seconds,
            workers=workers,
            timeline=RESULTS / file if timelines else None,
        )
        row = summarise(name, measured(run, pids))
        row["mode"] = mode
        row["peak_rss_mb"] = round(sum(peak_rss_mb(pid) for pid in served.pids()), 1)
        rows.append(row)
    return rows


def report(results: list[dict], durability: dict[str, str]) -> None:
    """Write bench/results/webhook-ingest.json and print the table and the ratios of maxima."""
    maxima = {r["target"]: r["throughput_per_s"] for r in results if r["mode"].startswith("max")}
    ratios = {
        f"{ingest} / {peer}": round(maxima[ingest] / max(maxima[peer], 0.1), 2)
        for ingest in maxima
        if ingest.startswith("webhook-ingest")
        for peer in (BARE, STORE_FIRST, "webhook-ingest")
        if peer in maxima and peer != ingest
    }
    ingest = "webhook-ingest" if "webhook-ingest" in maxima else "webhook-ingest (Granian)"
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "kafka": kafka.version(),
        "postgres": durability,
        "versions": {name: _version(name) for name in ("uvicorn", "granian", "stripe", "aiokafka")},
        "results": results,
        "ingest_to_bare_ratio": ratios.get(f"{ingest} / {BARE}"),
        "ingest_to_store_first_ratio": ratios.get(f"{ingest} / {STORE_FIRST}"),
        "ratios": ratios,
    }
    (RESULTS / "webhook-ingest.json").write_text(json.dumps(out, indent=2))
    print(
        "| target | mode | throughput/s | p50 ms | p95 ms | p99 ms | max ms | success | peak RSS MiB "
        "| CPU ms/request: server, broker, postgres, loadgen |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        cpu = r["cpu_ms_per_request"]
        print(
            f"| {r['target']} | {r['mode']} | {r['throughput_per_s']} | {r['p50_ms']} | {r['p95_ms']} | "
            f"{r['p99_ms']} | {r['max_ms']} | {r['success_ratio']:.4f} | {r['peak_rss_mb']} | "
            f"{cpu['server']}, {cpu['broker']}, {cpu['postgres']}, {cpu['loadgen']} |"
        )
        if r["errors"]:
            print(f"|   errors: {r['errors']} |")
    print(f"\nPostgreSQL: {', '.join(f'{k}={v}' for k, v in durability.items())}")
    for pair, ratio in ratios.items():
        print(f"{pair} max throughput: {ratio:.2f}")


async def postgres_backends(url: str) -> list[int]:
    """The PostgreSQL processes serving the bench database now (the WAL writer and checkpointer,
    shared with every database of the cluster, are not counted)."""
    import asyncpg

    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row["pid"] for row in rows]
    finally:
        await connection.close()


async def postgres_durability(url: str) -> dict[str, str]:
    """The server settings that decide what the store-first peer's commit costs and promises."""
    import asyncpg

    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        return {
            name: await connection.fetchval(f"SHOW {name}")
            for name in ("synchronous_commit", "fsync", "wal_sync_method")
        }
    finally:
        await connection.close()


@contextmanager
def uvicorn_ingest(env: dict[str, str], log: Path) -> Iterator[Served]:
    """webhook-ingest as deployed: its own console entry point, uvicorn through `paysync_core.web.serve`."""
    ingest = ServiceProcess("webhook-ingest", free_port(), env, log)
    ingest.start()
    try:
        ingest.wait_ready()
        time.sleep(1)
        pid = ingest.process.pid if ingest.process else None
        yield Served(ingest.url, lambda: [pid] if pid else [])
    finally:
        ingest.stop()


@contextmanager
def granian_ingest(env: dict[str, str], log: Path) -> Iterator[Served]:
    """The same app under Granian: ASGI with its lifespan (the producer starts there), one worker
    process, one runtime thread, uvloop as uvicorn picks it, HTTP/1.1 only as uvicorn serves, the
    same 10 s header-read deadline. Granian forks its worker: the server's CPU is both processes'."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "granian", "--interface", "asgi", "--factory"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--runtime-threads", "1"),
        *("--loop", "uvloop", "--http", "1", "--no-ws", "--http1-header-read-timeout", "10000"),
        *("--log-level", "warning", "--no-access-log"),
        "paysync_webhook_ingest.app:create_app",
    ]
    with spawned(command, env, log) as process:
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/readyz", process, timeout=60)
        time.sleep(1)
        yield Served(base, lambda: group_pids(process.pid))


@contextmanager
def script_server(script: str, port_variable: str, env: dict[str, str], log: Path) -> Iterator[Served]:
    """One of this folder's peer servers (`bare.py`, `store_first.py`), on a free port."""
    port = free_port()
    command = [sys.executable, str(Path(__file__).with_name(script))]
    with spawned(command, {**env, port_variable: str(port)}, log) as process:
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/readyz", process)
        yield Served(base, lambda: [process.pid])


@contextmanager
def spawned(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """`command` in a process group of its own, logging to `log`; SIGTERM to the group at the end."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _wait_http(url: str, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


if __name__ == "__main__":
    typer.run(main)
