"""Benchmark of the status-projector: observations applied per second, observation-to-status-change latency.

Run with `make bench-projector` (or `.venv/bin/python bench/projector/run.py --help`). It starts a
private Kafka broker on free ports and a fresh database on the local PostgreSQL, runs the projector
as its own OS process exactly as deployed, and measures:

1. apply: `project()` in-process, batches of 500, no Kafka: the PostgreSQL-bound ceiling.
2. backlog: N observations already on the topic when the projector starts; applied per second
   (from the first to the last history row written) and relayed status changes per second.
3. sustained: observations published at a fixed rate; latency from each observation's record
   timestamp to the timestamp of the status change it caused (both Kafka CreateTime, one clock).

Peak memory is the projector process's VmHWM (peak resident set size) from /proc. With
`--replicas N` there are N projector processes in one consumer group (the topic has 12
partitions); CPU is then summed over all of them and peak memory is the largest one's.

`--pipeline off|on` runs the projector with its pipeline (the next batch decoded while one is
applied) off or on; `--pipeline both` measures the backlog with it off and with it on in one run
(`--pairs` times, the order alternating), each on a backlog of its own, a fresh tenant, consumer
group and process, and skips the sustained phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert

from paysync_core import topics
from paysync_core.contracts import PaymentObservation, PaymentStatusChanged, payment_key
from paysync_core.db import tenants as tenant_repo
from paysync_core.db.engine import make_engine, upgrade
from paysync_core.db.schema import observations, outbox, payment_refs, payments
from paysync_core.domain.ids import payment_id_for
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.domains import Domains, load_domains
from paysync_core.kafka import provision_topics
from paysync_dev import postgres
from paysync_dev.kafka import KafkaProcess
from paysync_dev.stack import ServiceProcess, free_port
from paysync_dev.topic_reader import commit_group_at_end, read_topic
from paysync_status_projector.service import project
from paysync_status_projector.settings import BUILTIN_DOMAINS

DOMAINS = ("jobs", "bookings", "invoices", "referrals")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: Each step of a payment's life changes its status: the sustained phase measures one change per observation.
LIFE = (S.REQUIRES_ACTION, S.PROCESSING, S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED)


async def register(url: str, tenant: str, count: int, tag: str) -> list[dict[str, Any]]:
    """Register `count` payments as api-gateway does, spread over the four built-in domains."""
    engine = make_engine(url, pool_size=1)
    regs = []
    for i in range(count):
        ref = f"cs_bench_{tag}_{i}"
        regs.append(
            {
                "id": payment_id_for(tenant, "stripe", ref),
                "tenant_id": tenant,
                "provider": "stripe",
                "provider_ref": ref,
                "domain": DOMAINS[i % 4],
                "entity_id": f"{tag}-{i}",
                "amount_minor": 5000,
                "currency": "USD",
                "metadata": {},
            }
        )
    async with engine.begin() as conn:
        for start in range(0, count, 2000):
            chunk = regs[start : start + 2000]
            await conn.execute(insert(payments).values(chunk))
            await conn.execute(
                insert(payment_refs).values(
                    [
                        {
                            "tenant_id": tenant,
                            "provider": "stripe",
                            "ref": r["provider_ref"],
                            "payment_id": r["id"],
                        }
                        for r in chunk
                    ]
                )
            )
    async with engine.connect() as conn:  # a live system has its statistics (autovacuum); a bench must ask
        await conn.execute(text("ANALYZE payments"))
        await conn.execute(text("ANALYZE payment_refs"))
    await engine.dispose()
    return regs


def observation(
    tenant: str, reg: dict[str, Any], oid: str, status: S | None, minute: int, **kw: Any
) -> PaymentObservation:
    """One observation of a registered payment."""
    at = T0 + timedelta(minutes=minute)
    return PaymentObservation(
        observation_id=oid,
        tenant=tenant,
        provider="stripe",
        provider_ref=reg["provider_ref"],
        status=status,
        amount_minor=kw.get("amount", 5000),
        currency="USD",
        amount_refunded_minor=kw.get("refunded"),
        provider_time=at,
        source="webhook",
        verified=kw.get("verified", True),
        observed_at=at,
        evidence={"session_id": reg["provider_ref"], "provider_event_id": oid},
    )


def webhook_traffic(tenant: str, regs: list[dict[str, Any]], rng: random.Random) -> list[PaymentObservation]:
    """What gateways send: open statuses, a success, redeliveries, stale and unverified ones, some refunds."""
    out = []
    for i, reg in enumerate(regs):
        life = [
            observation(tenant, reg, f"{reg['provider_ref']}-{n}", s, n)
            for n, s in enumerate((S.PENDING, S.PROCESSING, S.SUCCEEDED))
        ]
        life.append(life[2])  # a redelivered success
        life.append(observation(tenant, reg, f"{reg['provider_ref']}-hint", S.SUCCEEDED, 3, verified=False))
        if i % 10 == 0:
            life.append(
                observation(
                    tenant, reg, f"{reg['provider_ref']}-refund", S.PARTIALLY_REFUNDED, 9, refunded=1000
                )
            )
        out += life
    rng.shuffle(out)
    return out


async def phase_apply(url: str, tenant: str, count: int, batch: int) -> dict[str, float]:
    """`project()` in-process: the database's share of the work, without Kafka."""
    regs = await register(url, tenant, count // 5, "apply")
    traffic = webhook_traffic(tenant, regs, random.Random(1))
    engine = make_engine(url, pool_size=2)
    domains = Domains(load_domains(BUILTIN_DOMAINS))
    await domains.bind(engine)
    started = time.perf_counter()
    for start in range(0, len(traffic), batch):
        await project(engine, traffic[start : start + batch], domains)
    took = time.perf_counter() - started
    await engine.dispose()
    return {"observations": len(traffic), "seconds": took, "per_second": len(traffic) / took}


async def publish_all(bootstrap: str, traffic: list[PaymentObservation]) -> None:
    """Put a backlog on the topic."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        futures = []
        for obs in traffic:
            key = payment_key(obs.tenant, obs.provider, obs.provider_ref).encode()
            futures.append(await producer.send(topics.PAYMENT_OBSERVATIONS.name, obs.to_bytes(), key=key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def count_rows(url: str, tenant: str) -> tuple[int, int]:
    """(history rows of the tenant, outbox rows not yet published)."""
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            applied = (
                await conn.execute(
                    select(func.count()).select_from(observations).where(observations.c.tenant_id == tenant)
                )
            ).scalar_one()
            pending = (
                await conn.execute(
                    select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
                )
            ).scalar_one()
        return applied, pending
    finally:
        await engine.dispose()


async def phase_backlog(
    url: str, bootstrap: str, tenant: str, count: int, procs: list[ServiceProcess], broker_pid: int | None
) -> dict[str, Any]:
    """A backlog on the topic, then the projector started: how fast it catches up."""
    regs = await register(url, tenant, count // 5, "backlog")
    traffic = webhook_traffic(tenant, regs, random.Random(2))
    distinct = len({o.observation_id for o in traffic})
    baseline = (await count_rows(url, tenant))[0]  # the in-process phase's history rows
    await publish_all(bootstrap, traffic)
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.wait_ready(120)
    meter = CpuMeter(url, [proc.process.pid for proc in procs], broker_pid)
    await meter.start()
    # A replica ready before the others may have applied some already: only what is applied
    # after this first look (and the CPU it took) is counted.
    # (time, applied in this phase, pending)
    samples = [(time.perf_counter(), (await count_rows(url, tenant))[0] - baseline, 0)]
    counted = len(traffic) * (1 - samples[0][1] / distinct)
    while True:
        applied, pending = await count_rows(url, tenant)
        samples.append((time.perf_counter(), applied - baseline, pending))
        if applied - baseline >= distinct and pending == 0:
            break
        await asyncio.sleep(0.1)
    done_applying = next(s for s in samples if s[1] >= distinct)
    # The last look before any more was applied.
    first = max((s for s in samples if s[1] == samples[0][1]), key=lambda s: s[0])
    return {
        "observations": len(traffic),
        "distinct": distinct,
        "applied_before_first_look": samples[0][1],
        "apply_seconds": done_applying[0] - first[0],
        "per_second": counted / (done_applying[0] - first[0]),
        "distinct_per_second": (distinct - samples[0][1]) / (done_applying[0] - first[0]),
        "drained_seconds": samples[-1][0] - first[0],
        "cpu_ms_per_observation": await meter.stop(round(counted)),
    }


async def phase_sustained(url: str, bootstrap: str, tenant: str, rate: int, seconds: int) -> dict[str, Any]:
    """Observations at `rate` per second for `seconds`; each one changes a status: latency of each change."""
    total = rate * seconds
    applied_before = (await count_rows(url, tenant))[0]
    regs = await register(url, tenant, total // len(LIFE) + 1, f"sustained{rate}")
    plan = [
        observation(
            tenant,
            reg,
            f"{reg['provider_ref']}-{step}",
            status,
            step + 1,
            refunded={S.PARTIALLY_REFUNDED: 1000, S.REFUNDED: 5000}.get(status),
        )
        for step, status in enumerate(LIFE)
        for reg in regs
    ][:total]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=1)
    await producer.start()
    sent: dict[str, int] = {}
    futures = []
    tick = 0.01
    per_tick = rate * tick
    started = time.perf_counter()
    try:
        for n, obs in enumerate(plan):
            due = started + n / rate
            delay = due - time.perf_counter()
            if delay > 0 and n % max(1, int(per_tick)) == 0:
                await asyncio.sleep(delay)
            key = payment_key(obs.tenant, obs.provider, obs.provider_ref).encode()
            futures.append(
                (
                    obs.observation_id,
                    await producer.send(topics.PAYMENT_OBSERVATIONS.name, obs.to_bytes(), key=key),
                )
            )
        for oid, future in futures:
            sent[oid] = (await future).timestamp
        achieved = len(plan) / (time.perf_counter() - started)
    finally:
        await producer.stop()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        applied, pending = await count_rows(url, tenant)
        if applied >= applied_before + len(plan) and pending == 0:
            break
        await asyncio.sleep(0.2)
    changed: dict[str, int] = {}
    for record in await read_topic(bootstrap, topics.PAYMENT_STATUS.name, timeout=120):
        change = PaymentStatusChanged.from_bytes(record.value)
        if change.tenant == tenant and change.observation_id in sent:
            changed.setdefault(change.observation_id, record.timestamp)
    latencies = sorted(changed[oid] - sent[oid] for oid in changed)
    missing = sorted(set(sent) - set(changed))
    if missing:
        engine = make_engine(url, pool_size=1)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(observations.c.observation_id, observations.c.status_after).where(
                        observations.c.observation_id.in_(missing[:20])
                    )
                )
            ).all()
            events = (
                await conn.execute(
                    select(
                        outbox.c.id, outbox.c.published_at, outbox.c.payload["observation_id"].astext
                    ).where(outbox.c.payload["observation_id"].astext.in_(missing[:20]))
                )
            ).all()
            print(f"  outbox: {events[:5]}", file=sys.stderr)
        await engine.dispose()
        print(
            f"  {len(missing)} observations without a change on the topic, e.g. {missing[:3]};"
            f" history: {rows[:5]}",
            file=sys.stderr,
        )
    return {
        "observations": len(plan),
        "target_rate": rate,
        "achieved_rate": achieved,
        "changes": len(changed),
        "p50_ms": _pct(latencies, 50),
        "p95_ms": _pct(latencies, 95),
        "p99_ms": _pct(latencies, 99),
        "max_ms": latencies[-1] if latencies else None,
        "mean_ms": statistics.fmean(latencies) if latencies else None,
    }


def _pct(values: list[int], p: float) -> float | None:
    if not values:
        return None
    return float(values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))])


def batch_stats(procs: list[ServiceProcess]) -> dict[str, float]:
    """Mean batch size and time per batch, from the projectors' /metrics (summed over replicas)."""
    import httpx

    values: dict[str, float] = {}
    for proc in procs:
        for line in httpx.get(f"{proc.url}/metrics", timeout=5).text.splitlines():
            for name in (
                "paysync_projector_batch_seconds_sum",
                "paysync_projector_batch_seconds_count",
                "paysync_projector_batch_size_sum",
                "paysync_outbox_relayed_total",
            ):
                if line.startswith(name + " "):
                    values[name] = values.get(name, 0.0) + float(line.split()[1])
    count = values.get("paysync_projector_batch_seconds_count") or 1
    return {
        "batches": count,
        "mean_batch_size": values.get("paysync_projector_batch_size_sum", 0) / count,
        "mean_batch_ms": 1000 * values.get("paysync_projector_batch_seconds_sum", 0) / count,
        "relayed": values.get("paysync_outbox_relayed_total"),
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used by the projectors, their PostgreSQL backends and the broker between `start` and `stop`."""

    def __init__(self, url: str, projector_pids: list[int], broker_pid: int | None) -> None:
        self.url, self.projector_pids, self.broker_pid = url, projector_pids, broker_pid

    async def _backends(self) -> list[int]:
        engine = make_engine(self.url, pool_size=1)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = 'paysync-status-projector'"
                    )
                )
                return [r.pid for r in rows]
        finally:
            await engine.dispose()

    async def _read(self) -> dict[str, float]:
        backends = await self._backends()
        return {
            "projector": sum(cpu_seconds(pid) for pid in self.projector_pids),
            "kafka": cpu_seconds(self.broker_pid) if self.broker_pid else 0.0,
            "postgres": sum(cpu_seconds(pid) for pid in backends),
            "_backends": backends,
        }

    async def start(self) -> None:
        """Remember where the counters stand."""
        self.before = await self._read()

    async def stop(self, observations: int) -> dict[str, float]:
        """CPU milliseconds per observation since `start`, by process."""
        after = await self._read()
        # The projector's pool keeps its connections: the same backends at start and stop.
        before_pg = self.before["postgres"]
        return {
            "projector": round(1000 * (after["projector"] - self.before["projector"]) / observations, 3),
            "postgres_backends": round(1000 * (after["postgres"] - before_pg) / observations, 3),
            "kafka_broker": round(1000 * (after["kafka"] - self.before["kafka"]) / observations, 3),
        }


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss(procs: list[ServiceProcess]) -> float | None:
    """The largest peak resident set among the projector processes, MiB."""
    return max((peak_rss_mib(proc.process.pid) or 0.0 for proc in procs), default=None)


def projectors(env: dict[str, str], base: Path, replicas: int, name: str) -> list[ServiceProcess]:
    """`replicas` projector processes (not started), logging to `base`/projector-`name`-N.log."""
    return [
        ServiceProcess("status-projector", free_port(), env, base / f"projector-{name}-{n}.log")
        for n in range(replicas)
    ]


async def phase_backlog_pipelined(
    url: str,
    bootstrap: str,
    env: dict[str, str],
    args: argparse.Namespace,
    base: Path,
    broker_pid: int | None,
) -> list[dict[str, Any]]:
    """The backlog phase with the pipeline off and on, `--pairs` times, the order alternating."""
    runs = []
    for pair in range(args.pairs):
        for setting in ("off", "on") if pair % 2 == 0 else ("on", "off"):
            # A tenant, payments and a backlog of its own, read by a group of its own from where
            # the topic ends now, by a process of its own: the runs share only the database's tables.
            tenant, group = f"bench-{setting}-{pair}", f"bench-{uuid.uuid4().hex[:6]}"
            await create_tenant(url, tenant)
            await commit_group_at_end(bootstrap, group, topics.PAYMENT_OBSERVATIONS.name)
            run_env = {**env, "PAYSYNC_STATUS_PROJECTOR_GROUP_ID": group, **pipeline_env(setting)}
            procs = projectors(run_env, base, args.replicas, f"{setting}-{pair}")
            print(f"phase 2: backlog, pipeline {setting} ...", file=sys.stderr)
            try:
                outcome = await phase_backlog(url, bootstrap, tenant, args.backlog, procs, broker_pid)
                outcome |= {
                    "pipeline": setting,
                    "peak_rss_mib": peak_rss(procs),
                    "batches": batch_stats(procs),
                }
            finally:
                for proc in procs:
                    proc.stop()
            print(f"  {outcome}", file=sys.stderr)
            runs.append(outcome)
    for setting in ("off", "on"):
        rates = [f"{r['per_second']:,.0f}" for r in runs if r["pipeline"] == setting]
        print(f"backlog applied/s, pipeline {setting}: {', '.join(rates)}", file=sys.stderr)
    return runs


def pipeline_env(setting: str) -> dict[str, str]:
    """The projector's environment for `--pipeline` on or off (nothing: the service's default)."""
    if setting not in ("on", "off"):
        return {}
    return {"PAYSYNC_STATUS_PROJECTOR_PIPELINE": "true" if setting == "on" else "false"}


async def create_tenant(url: str, tenant: str) -> None:
    engine = make_engine(url, pool_size=1)
    async with engine.begin() as conn:
        await tenant_repo.create_tenant(conn, tenant, "benchmark")
        await conn.execute(text("ANALYZE"))
    await engine.dispose()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="paysync-bench-"))
    kafka = KafkaProcess.on_free_ports(base / "kafka")
    print(f"starting a private Kafka broker in {base} ...", file=sys.stderr)
    bootstrap = await asyncio.to_thread(kafka.start)
    pg = await asyncio.to_thread(postgres.ensure_postgres)
    name = f"paysync_bench_{uuid.uuid4().hex[:8]}"
    url = await asyncio.to_thread(postgres.create_database, name, pg)
    procs: list[ServiceProcess] = []
    try:
        await asyncio.to_thread(upgrade, url)
        await provision_topics(bootstrap)
        tenant = "bench"
        await create_tenant(url, tenant)
        results: dict[str, Any] = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "postgres": postgres.server_version(url).split(" on ")[0],
                "load_average_at_start": os.getloadavg(),
            },
            "projector_replicas": args.replicas,
            "pipeline": args.pipeline,
        }
        print("phase 1: project() in-process ...", file=sys.stderr)
        results["apply_in_process"] = await phase_apply(url, tenant, args.apply, args.batch)
        print(f"  {results['apply_in_process']}", file=sys.stderr)
        env = {
            "PAYSYNC_KAFKA_BOOTSTRAP": bootstrap,
            "PAYSYNC_DATABASE_URL": url,
            "PAYSYNC_LOG_LEVEL": "WARNING",
            "PAYSYNC_STATUS_PROJECTOR_GROUP_ID": f"bench-{uuid.uuid4().hex[:6]}",
            "PAYSYNC_STATUS_PROJECTOR_MAX_BATCH": str(args.batch),
            # Drift checks scan whole tables every few minutes: kept out of the numbers measured here.
            "PAYSYNC_STATUS_PROJECTOR_DRIFT_CHECK_SECONDS": "3600",
            **pipeline_env(args.pipeline),
        }
        if args.pipeline == "both":
            results["backlog_pipeline"] = await phase_backlog_pipelined(
                url, bootstrap, env, args, base, kafka.pid()
            )
            results["machine"]["load_average_at_end"] = os.getloadavg()
            return results
        procs = projectors(env, base, args.replicas, "main")
        print(f"phase 2: backlog through Kafka, {args.replicas} projector process(es) ...", file=sys.stderr)
        results["backlog"] = await phase_backlog(url, bootstrap, tenant, args.backlog, procs, kafka.pid())
        results["backlog"]["peak_rss_mib"] = peak_rss(procs)
        results["backlog"]["batches"] = batch_stats(procs)
        print(f"  {results['backlog']}", file=sys.stderr)
        results["sustained"] = []
        for rate in args.rate:
            print(f"phase 3: {rate}/s for {args.seconds} s ...", file=sys.stderr)
            before = batch_stats(procs)
            meter = CpuMeter(url, [proc.process.pid for proc in procs], kafka.pid())
            await meter.start()
            outcome = await phase_sustained(url, bootstrap, tenant, rate, args.seconds)
            outcome["cpu_ms_per_observation"] = await meter.stop(outcome["observations"])
            after = batch_stats(procs)
            batches = after["batches"] - before["batches"]
            outcome["mean_batch_size"] = (
                after["mean_batch_size"] * after["batches"] - before["mean_batch_size"] * before["batches"]
            ) / max(batches, 1)
            outcome["mean_batch_ms"] = (
                after["mean_batch_ms"] * after["batches"] - before["mean_batch_ms"] * before["batches"]
            ) / max(batches, 1)
            results["sustained"].append(outcome)
            print(f"  {outcome}", file=sys.stderr)
        results["peak_rss_mib"] = peak_rss(procs)
        results["machine"]["load_average_at_end"] = os.getloadavg()
        return results
    finally:
        for proc in procs:
            proc.stop()
        await asyncio.to_thread(kafka.stop)
        await asyncio.to_thread(postgres.drop_database, name, pg)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apply", type=int, default=20_000, help="observations for the in-process phase")
    parser.add_argument("--backlog", type=int, default=60_000, help="observations in the backlog phase")
    parser.add_argument(
        "--rate", type=int, nargs="+", default=[1000], help="observations per second, sustained phase"
    )
    parser.add_argument("--seconds", type=int, default=30, help="length of the sustained phase")
    parser.add_argument("--batch", type=int, default=1000, help="the projector's max batch")
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="projector processes in the consumer group (2: one per core of a 2-core machine)",
    )
    parser.add_argument(
        "--pipeline",
        choices=("on", "off", "both"),
        default="on",
        help="the projector's pipeline (the next batch decoded while one is applied); "
        "both: the backlog phase with it off and on, no sustained phase",
    )
    parser.add_argument(
        "--pairs", type=int, default=1, help="with --pipeline both: off/on runs, the order alternating"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(__file__).parents[1] / "results" / "projector.json",
        help="also write the results here",
    )
    args = parser.parse_args()
    results = asyncio.run(main(args))
    print(json.dumps(results, indent=2, default=str))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)  # bench/results is not in a fresh clone
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    cli()
