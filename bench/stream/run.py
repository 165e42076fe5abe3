"""Benchmark the live stream end to end: webhook accepted → event received by the stream clients.

    make bench-stream            (or: .venv/bin/python bench/stream/run.py --help)

The whole path runs as separate processes on a broker and PostgreSQL of its own: webhook-ingest
(HTTP and normalizer) → status-projector → notifier → api-gateway `/v1/stream` → clients.
Signed Stripe `checkout.session.completed` webhooks of registered payments are POSTed open loop
(each is due at start + i/rate whatever happened to the earlier ones, so a stall shows in the
latency instead of slowing the sender). A sample is one (webhook, client of its tenant) pair:
from webhook-ingest's 200 to the client having the event. Two phases in one run: one client
(the reference), then `--clients` clients spread over `--tenants` tenants (each webhook goes to
every client of its tenant). Clients read in 4 processes of their own; all use the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import re
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import typer
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.db.engine import make_engine, upgrade
from paysync_core.kafka import provision_topics
from paysync_core.providers import sign_stripe
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.stripe import checkout_session, stripe_event
from paysync_dev import kafka, paths, postgres
from paysync_dev.fixtures import TestTenant, create_tenant
from paysync_dev.payments import register_payments
from paysync_dev.stack import ServiceProcess, start_stack, stop_stack

RESULTS = Path(__file__).resolve().parents[1] / "results"
_REF = re.compile(r'"provider_ref":"(cs_test_[0-9a-f]+)"')
#: Processes the stream clients are spread over.
CLIENT_PROCESSES = 4


def read_streams(api: str, keys: list[str], out: str, opened, received, stop) -> None:
    """A client process: one `/v1/stream` per key; when each payment's event reached each one.

    Clients read in processes of their own, so that parsing thousands of events a second never
    delays the sender's clock (the 200 it notes is the other end of every sample).
    """
    arrivals: list[dict[str, float]] = [{} for _ in keys]

    async def read(http: httpx.AsyncClient, key: str, into: dict[str, float]) -> None:
        async with http.stream(
            "GET", f"{api}/v1/stream", headers={"Authorization": f"Bearer {key}"}
        ) as answer:
            answer.raise_for_status()
            with opened.get_lock():
                opened.value += 1
            async for line in answer.aiter_lines():
                if line.startswith("data:") and (found := _REF.search(line)):
                    into.setdefault(found.group(1), time.time())
                    with received.get_lock():
                        received.value += 1

    async def main() -> None:
        limits = httpx.Limits(max_connections=None)
        async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None), limits=limits) as http:
            tasks = [asyncio.create_task(read(http, k, a)) for k, a in zip(keys, arrivals, strict=True)]
            while not stop.is_set():
                await asyncio.sleep(0.1)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    Path(out).write_text(json.dumps(arrivals))


@dataclass
class Webhook:
    """One signed webhook of one tenant's registered payment, and when it was accepted."""

    tenant: TestTenant
    ref: str
    body: bytes
    signature: str
    accepted: float | None = None
    #: When the open loop had it due (sent then, or later if the sender fell behind).
    due: float = 0.0


async def prepare(engine: AsyncEngine, tenants: list[TestTenant], count: int) -> list[Webhook]:
    """`count` webhooks spread over the tenants, their payments registered first."""
    hooks = []
    for n in range(count):
        tenant, ref = tenants[n % len(tenants)], f"cs_test_{uuid.uuid4().hex}"
        body = to_body(
            stripe_event("checkout.session.completed", checkout_session(id=ref, amount_total=2000))
        )
        hooks.append(
            Webhook(tenant, ref, body, sign_stripe(body, tenant.stripe_webhook_secret, int(time.time())))
        )
    for tenant in tenants:
        specs = [
            {"provider_ref": h.ref, "amount_minor": 2000, "currency": "USD"}
            for h in hooks
            if h.tenant is tenant
        ]
        for start in range(0, len(specs), 1000):
            await register_payments(engine, tenant.id, specs[start : start + 1000])
    return hooks


async def send_open_loop(
    http: httpx.AsyncClient, ingest: str, hooks: list[Webhook], rate: int
) -> list[float]:
    """POST each webhook when it is due; the latencies (ms) of the accepted ones, due → 200."""
    latencies: list[float] = []

    async def post(hook: Webhook, due: float) -> None:
        url = f"{ingest}/webhooks/{hook.tenant.id}/stripe"
        headers = {"Stripe-Signature": hook.signature, "Content-Type": "application/json"}
        answer = await http.post(url, content=hook.body, headers=headers)
        hook.due = due
        if answer.status_code == 200:
            hook.accepted = time.time()
            latencies.append(1000 * (hook.accepted - due))

    start, tasks = time.time(), []
    for n, hook in enumerate(hooks):
        due = start + n / rate
        await asyncio.sleep(max(0.0, due - time.time()))
        tasks.append(asyncio.create_task(post(hook, due)))
    await asyncio.gather(*tasks)
    return latencies


async def phase(
    api: str,
    ingest: str,
    engine: AsyncEngine,
    tenants: list[TestTenant],
    clients: int,
    rate: int,
    seconds: int,
) -> dict:
    """One measured run: open the clients, warm up, send at `rate` for `seconds`, wait for delivery."""
    owners = [tenants[n % len(tenants)] for n in range(clients)]
    workers = min(CLIENT_PROCESSES, clients)
    spawn = multiprocessing.get_context("spawn")
    opened, received, stop = spawn.Value("i", 0), spawn.Value("i", 0), spawn.Event()
    outs = [str(paths.local_dir() / "bench" / f"stream-clients-{w}.json") for w in range(workers)]
    procs = [
        spawn.Process(
            target=read_streams,
            args=(api, [t.api_key for t in owners[w::workers]], outs[w], opened, received, stop),
        )
        for w in range(workers)
    ]
    for proc in procs:
        proc.start()
    try:
        await _until(lambda: opened.value >= clients, 120)
        warm_up = await prepare(engine, tenants, 20)
        await send_open_loop_ms(ingest, warm_up, 20)
        await _until(lambda: received.value >= 20 * clients // len(tenants), 120)
        hooks = await prepare(engine, tenants, rate * seconds)
        accepted_ms = await send_open_loop_ms(ingest, hooks, rate)
        per_tenant = Counter(h.tenant.id for h in hooks if h.accepted)
        expected = sum(per_tenant[t.id] for t in owners)
        await _until(lambda: received.value >= expected + 20 * clients // len(tenants), 120)
    finally:
        stop.set()
        for proc in procs:
            proc.join(60)
    arrivals = [a for out in outs for a in json.loads(Path(out).read_text())]
    # Worker w holds owners[w::workers]: put the arrivals back in owner order.
    order = [n for w in range(workers) for n in range(w, clients, workers)]
    by_client = dict(zip(order, arrivals, strict=True))
    pairs = [
        (h, by_client[n][h.ref])
        for h in hooks
        if h.accepted
        for n, owner in enumerate(owners)
        if owner is h.tenant and h.ref in by_client[n]
    ]
    samples = sorted(1000 * (got - h.accepted) for h, got in pairs if h.accepted)
    from_due = sorted(1000 * (got - h.due) for h, got in pairs)
    return {
        "clients": clients,
        "tenants": len(tenants),
        "rate_per_s": rate,
        "seconds": seconds,
        "webhooks_accepted": sum(1 for h in hooks if h.accepted),
        "webhooks_sent": len(hooks),
        "deliveries_expected": expected,
        "deliveries_missing": expected - len(samples),
        "accepted_p99_ms": round(_pct(sorted(accepted_ms), 99), 1),
        **{f"p{p}_ms": round(_pct(samples, p), 1) for p in (50, 95, 99)},
        "max_ms": round(samples[-1], 1) if samples else None,
        "mean_ms": round(statistics.fmean(samples), 1) if samples else None,
        # From when the webhook was due (sent): includes webhook-ingest's answer; never negative.
        **{f"sent_p{p}_ms": round(_pct(from_due, p), 1) for p in (50, 95, 99)},
    }


async def send_open_loop_ms(ingest: str, hooks: list[Webhook], rate: int) -> list[float]:
    """`send_open_loop` with a client of its own."""
    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30), limits=limits) as http:
        return await send_open_loop(http, ingest, hooks, rate)


async def _until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


def _pct(values: list[float], p: int) -> float:
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")


def main(
    rate: int = typer.Option(500, help="Webhooks per second, open loop"),
    seconds: int = typer.Option(20, help="How long each phase sends"),
    clients: int = typer.Option(200, help="Stream clients in the second phase"),
    tenants: int = typer.Option(20, help="Tenants the clients and webhooks are spread over"),
) -> None:
    """Webhook accepted → event on the stream: one client, then `clients` clients, at `rate`/s."""
    bench_dir = paths.local_dir() / "bench"
    broker = kafka.KafkaProcess.on_free_ports(bench_dir / f"kafka-{uuid.uuid4().hex[:6]}")
    broker.start()
    database = postgres.create_database(f"paysync_bench_{uuid.uuid4().hex[:8]}", postgres.ensure_postgres())
    procs: dict[str, ServiceProcess] = {}
    try:
        upgrade(database)
        asyncio.run(provision_topics(broker.bootstrap))
        keys = Fernet.generate_key().decode()
        accounts = [create_tenant(database, keys, gateways=("stripe",)) for _ in range(tenants)]
        env = {
            "PAYSYNC_KAFKA_BOOTSTRAP": broker.bootstrap,
            "PAYSYNC_DATABASE_URL": database,
            "PAYSYNC_CREDENTIALS_KEYS": keys,
            "PAYSYNC_LOG_LEVEL": "WARNING",
            "PAYSYNC_API_GATEWAY_STREAM_MAX_PER_TENANT": str(clients),
        }
        only = ("webhook-ingest", "status-projector", "notifier", "api-gateway")
        procs = start_stack(env, bench_dir / "stream-logs", only=only)
        api, ingest = procs["api-gateway"].url, procs["webhook-ingest"].url
        results = asyncio.run(_phases(api, ingest, database, accounts, clients, rate, seconds))
    finally:
        stop_stack(procs)
        broker.stop()
        postgres.drop_database(database.rsplit("/", 1)[1], postgres.ensure_postgres())
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stream.json").write_text(json.dumps(out, indent=2))
    print(
        "| clients | tenants | rate/s | accepted | deliveries (missing) | p50 ms | p95 ms | p99 ms | max ms "
        "| sent→received p50/p95/p99 ms | accepted p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['clients']} | {r['tenants']} | {r['rate_per_s']} "
            f"| {r['webhooks_accepted']}/{r['webhooks_sent']} "
            f"| {r['deliveries_expected']} ({r['deliveries_missing']}) | {r['p50_ms']} | {r['p95_ms']} "
            f"| {r['p99_ms']} | {r['max_ms']} | {r['sent_p50_ms']}/{r['sent_p95_ms']}/{r['sent_p99_ms']} "
            f"| {r['accepted_p99_ms']} |"
        )


async def _phases(
    api: str, ingest: str, database: str, accounts: list[TestTenant], clients: int, rate: int, seconds: int
) -> list[dict]:
    engine = make_engine(database, pool_size=2)
    try:
        reference = await phase(api, ingest, engine, accounts[:1], 1, rate, seconds)
        loaded = await phase(api, ingest, engine, accounts, clients, rate, seconds)
        return [reference, loaded]
    finally:
        await engine.dispose()


if __name__ == "__main__":
    typer.run(main)
