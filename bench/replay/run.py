"""Benchmark of `paysync replay` from the raw webhook topic: records/s and peak memory, dry run and real run.

Run with `make bench-replay` (or `.venv/bin/python bench/replay/run.py --help`). It starts a private
Kafka broker on free ports and a fresh database on the local PostgreSQL, registers `--payments`
Stripe payments (bookings), and produces `--records` signed `checkout.session.completed` raw records
for them (as webhook-ingest writes them: `raw_record`, through the one durable producer, in batches).
Every record is distinct (its own event id, signature and ingest id: `--records / --payments` events
per payment), so every one is parsed and folded: no redelivery the replay could skip. Then, each time
with `paysync replay` as its own process (as an operator runs it; its worker processes included),
resident memory and CPU sampled from /proc:

1. dry run over the first `--small` records (every payment once at least), then over all `--records`
   (same payments): records/s, records per CPU second and peak RSS at both sizes;
2. the projector alone (its own process): `--small` observations published straight to the observation
   topic, drained by the status-projector: observations applied/s. Twice, each for payments of its own:
   `projector_alone_synthetic`, a success per payment as bench/projector makes them (no alias, the
   registered amount: what every bench before 2026-12-07 compared with), then `projector_alone`, the
   observations a real run publishes, derived by the replay's own code from raw records made as below
   (an alias each to bind, the record's amount, which differs from the registered one: an alert each);
3. real run over the first `--small` raw records, with that projector applying them: records/s, and
   the ratio to the projector's own rate on the same kind of observations, measured minutes before in
   the same run (`ratio_to_projector_alone`; to the synthetic one: `ratio_to_projector_alone_synthetic`).

Before the projector alone and each real run, the database is settled (`settle`: VACUUM (ANALYZE), then
no autovacuum worker left in it), so no step pays for the one before's churn. For the projector alone
and each real run it also says where the projector's time went: its process's
and its PostgreSQL sessions' CPU and wait for a core (the scheduler's run delay, /proc/PID/schedstat)
per wall second, the broker's, and its batches (observations in each, milliseconds in each transaction,
the share of the time in one; from its /metrics); the replay's tree and sessions' wait for a core too.

With `--before REV` both dry runs are also made with the replay's code at git revision REV
(paysync-core's and paysync-cli's sources, first on PYTHONPATH), interleaved with today's (before,
after at `--small`; after, before at `--records`): the same records, the same host load; and a real
run with the code at REV right after today's, over the records after the first `--small` (records
replayed once are skipped the second time; give `--records` twice `--small` for the same size). Every
process keeps its compiled bytecode in a cache of the run's own (`PYTHONPYCACHEPREFIX`), warmed before
anything is measured, as the images are built (`UV_COMPILE_BYTECODE=1`): a host that sets
PYTHONDONTWRITEBYTECODE would otherwise compile every module in every process of every run.
`--real-only` skips step 1 (the dry runs): the projector alone and the real run(s) only;
`--before-first` makes REV's real run first (over the first `--small` records), today's after it.
`--dry-only` stops after the dry runs (no projector, no real run). Besides the whole tree's CPU, each
run notes the `paysync` command's own (`command_cpu_seconds`: what it does itself, its workers aside)
and, for a dry run in worker processes, the wall seconds after the last worker stopped reading
(`after_reading_seconds`: when the last child process let go of the broker; the serial tail).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord, TopicPartition
from sqlalchemy import func, select, text

from paysync_cli.replay_source import Filters, ReplaySource, derive
from paysync_core import topics
from paysync_core.contracts import PaymentObservation, Provider, Verdict, payment_key
from paysync_core.db.engine import make_engine, upgrade
from paysync_core.db.schema import observations
from paysync_core.kafka import DurableProducer, provision_topics
from paysync_core.providers import sign_stripe
from paysync_core.providers.base import WebhookRequest
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.stripe import checkout_session, stripe_event
from paysync_dev import postgres
from paysync_dev.kafka import KafkaProcess
from paysync_dev.procstat import cpu_seconds
from paysync_dev.service_fixtures import wait_for_groups
from paysync_dev.stack import ServiceProcess, free_port
from paysync_webhook_ingest.service import raw_record

ROOT = Path(__file__).resolve().parents[2]
PAYSYNC = Path(sys.executable).with_name("paysync")
SECRET = "whsec_bench_replay"

# bench/projector/run.py registers payments in bulk and publishes observation backlogs: used, not copied.
_spec = importlib.util.spec_from_file_location("bench_projector", ROOT / "bench" / "projector" / "run.py")
assert _spec is not None and _spec.loader is not None
projector_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(projector_bench)


def session_body(session_ref: str) -> bytes:
    """A paid `checkout.session.completed` body for the session, its event id a placeholder.

    Its payment intent is the session's own, the same in every record of it, as Stripe sends them (a
    new one per body made a payment's records carry one alias per 20,000 records: aliases the replay
    learns as the projector binds them, growing with the records).
    """
    session = checkout_session(id=session_ref, payment_intent=f"pi_{session_ref[-24:]}")
    return to_body(stripe_event("checkout.session.completed", session, id="evt_BENCHID"))


def raw_webhook(tenant: str, session_ref: str, template: bytes, n: int) -> tuple[bytes, bytes]:
    """(key, value) of one signed raw record, as webhook-ingest writes it (event id `evt_bench_<n>`)."""
    body = template.replace(b"evt_BENCHID", f"evt_bench_{n}".encode())
    now = datetime.now(UTC)
    signature = sign_stripe(body, SECRET, int(now.timestamp()))
    headers = {"stripe-signature": signature, "content-type": "application/json"}
    request = WebhookRequest(
        tenant=tenant, body=body, headers=headers, remote_addr="203.0.113.9", received_at=now
    )
    value = raw_record(request, Provider.STRIPE, Verdict.VERIFIED, f"ing-{n}")
    return payment_key(tenant, "stripe", session_ref).encode(), value


def distinct_records(tenant: str, refs: list[str], start: int, stop: int) -> list[tuple[bytes, bytes]]:
    """Records `start` to `stop` of the run: distinct signed raw records (`evt_bench_<n>`), round robin."""
    chosen = [refs[n % len(refs)] for n in range(start, stop)]
    templates = {ref: session_body(ref) for ref in set(chosen)}
    return [
        raw_webhook(tenant, ref, templates[ref], n) for n, ref in zip(range(start, stop), chosen, strict=True)
    ]


async def produce_raw(bootstrap: str, tenant: str, refs: list[str], start: int, stop: int) -> float:
    """Build and produce records `start` to `stop` (20,000 at a time, never all in memory); records/s.

    Through the one durable producer's bulk path, spread over the partitions.
    """
    producer = DurableProducer(bootstrap, client_id="bench-replay", linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    elapsed = 0.0
    try:
        for first in range(start, stop, 20_000):
            chunk = distinct_records(tenant, refs, first, min(first + 20_000, stop))
            started = time.perf_counter()  # producing only: building the records is the bench's work
            await producer.send_many(topics.WEBHOOKS_RAW.name, chunk)
            elapsed += time.perf_counter() - started
    finally:
        await producer.stop()
    return (stop - start) / max(elapsed, 1e-9)


#: The projector's consumer group in the bench (`PAYSYNC_REPLAY_PROJECTOR_GROUP_ID` of the real runs).
PROJECTOR_GROUP = "bench-replay"

#: What a replay imports, compiled into the bytecode cache before anything is measured.
_REPLAY_MODULES = (
    "paysync_cli.cli, paysync_cli.replay, paysync_cli.replay_parallel, asyncpg, orjson,"
    " sqlalchemy.dialects.postgresql.asyncpg"
)


def with_bytecode_cache(env: dict[str, str], cache: Path) -> dict[str, str]:
    """`env` whose Python processes keep their compiled bytecode under `cache` (as a built image has it)."""
    kept = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**kept, "PYTHONPYCACHEPREFIX": str(cache)}


def code_at(rev: str, base: Path) -> Path:
    """paysync-core's and paysync-cli's sources at git revision `rev`, extracted under `base`."""
    tree = base / f"code-{rev}"
    tree.mkdir()
    sources = ["libs/paysync-core/src", "tools/paysync-cli/src"]
    command = ["git", "-C", str(ROOT), "archive", rev, *sources]
    archive = subprocess.run(command, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def env_of_code(env: dict[str, str], tree: Path | None) -> dict[str, str]:
    """`env` that runs the replay's code of `tree` (None: this checkout's) and compiles its imports once."""
    if tree is not None:
        paths = [tree / "libs" / "paysync-core" / "src", tree / "tools" / "paysync-cli" / "src"]
        env = {**env, "PYTHONPATH": os.pathsep.join(str(p) for p in paths)}
    subprocess.run([sys.executable, "-c", f"import {_REPLAY_MODULES}"], env=env, check=True)
    return env


class TreeSampler:
    """A process and its descendants (the replay's worker processes): the highest sum of their resident
    memory (proportional: shared pages split between the processes sharing them), and the CPU they
    used, sampled from /proc every 50 ms. With `broker_port`, also when the last of its child processes
    (the dry run's workers) let go of the broker: when they were done reading the records."""

    def __init__(self, pid: int, broker_port: int | None = None) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._cpu: dict[int, float] = {}  # per process: the last CPU seconds seen
        self._waited: dict[int, float] = {}  # per process: the last run delay seen (waiting for a core)
        self._broker_port = broker_port
        self.last_read_at: float | None = None  # time.perf_counter() of the last sample a worker was reading

    @property
    def own_cpu_seconds(self) -> float:
        """CPU seconds of the process itself (the `paysync` command: what it does serially, its
        workers' reading aside)."""
        return self._cpu.get(self.pid, 0.0)

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds of every process of the tree seen (a process's last 50 ms may be missed)."""
        return sum(self._cpu.values())

    @property
    def run_delay_seconds(self) -> float:
        """Seconds the tree's threads waited on a run queue for a core."""
        return sum(self._waited.values())

    async def run(self) -> None:
        """Sample until the process is gone or the task is cancelled."""
        while True:
            tree = _tree(self.pid)
            if not tree:
                return
            rss = 0
            for pid in tree:
                rss += _rss_kib(pid)
                self._cpu[pid] = max(self._cpu.get(pid, 0.0), cpu_seconds(pid))
                self._waited[pid] = max(self._waited.get(pid, 0.0), run_delay_seconds([pid]))
            self.peak_kib = max(self.peak_kib, rss)
            if self._broker_port is not None and _connected(tree[1:], self._broker_port):
                self.last_read_at = time.perf_counter()
            await asyncio.sleep(0.05)


def _connected(pids: list[int], port: int) -> bool:
    """Whether any of the processes holds a TCP connection to `port` on this host (its sockets' inodes
    looked up in /proc/net/tcp)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    if not inodes:
        return False
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2].endswith(wanted) and fields[3] == "01" and fields[9] in inodes:  # 01: established
                return True
    return False


def _tree(pid: int) -> list[int]:
    """The process and its descendants still running."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        found.append(current)
        todo += [int(c) for c in children]
    return found


def _rss_kib(pid: int) -> int:
    """The process's proportional share of resident memory (Pss): pages it shares with the other
    processes of the tree (worker processes forked from one server) are not counted twice."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)


class BackendSampler:
    """The CPU the PostgreSQL sessions of one application (the replay's: `paysync-replay`) used and their
    wait for a core, sampled from /proc every 200 ms: the database's share of what a replay costs, on the
    cores the projector shares. A session already open at the first sample counts from there (a pool's)."""

    def __init__(self, url: str, application: str = "paysync-replay") -> None:
        self._url, self._application = url, application
        self._first: dict[int, tuple[float, float]] | None = None  # sessions open at the first sample
        self._last: dict[int, tuple[float, float]] = {}  # per backend: the last (CPU, run delay) seen

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds of every backend seen (a backend's last 200 ms may be missed)."""
        return sum(cpu - self._since(pid)[0] for pid, (cpu, _) in self._last.items())

    @property
    def run_delay_seconds(self) -> float:
        """Seconds the backends seen waited on a run queue for a core."""
        return sum(waited - self._since(pid)[1] for pid, (_, waited) in self._last.items())

    def _since(self, pid: int) -> tuple[float, float]:
        return (self._first or {}).get(pid, (0.0, 0.0))

    async def run(self) -> None:
        """Sample until the task is cancelled."""
        engine = make_engine(self._url, pool_size=1)
        query = text("SELECT pid FROM pg_stat_activity WHERE application_name = :name")
        try:
            while True:
                async with engine.connect() as conn:
                    pids = [row[0] for row in await conn.execute(query, {"name": self._application})]
                for pid in pids:
                    cpu, waited = cpu_seconds(pid), run_delay_seconds([pid])
                    if cpu or waited:  # gone since the query: its last sample stands
                        self._last[pid] = (cpu, waited)
                if self._first is None:
                    self._first = dict(self._last)
                await asyncio.sleep(0.2)
        finally:
            await engine.dispose()


class HostShare:
    """Over one step of the bench: the share of the host's CPU time that was idle (/proc/stat, every core)
    and how busy the projector's process was (its CPU seconds per wall second): whether a real run is
    held back by the host's cores (no idle, the projector as busy as alone) or by its own pipeline (idle
    cores while the projector waits for records)."""

    def __init__(self, projector_pid: int | None) -> None:
        self._pid = projector_pid
        self._start = (time.perf_counter(), *_host_jiffies(), cpu_seconds(projector_pid))

    def measured(self) -> dict[str, float]:
        """The host's idle share and the projector's busy share since this was made."""
        wall, idle, total, projector = (
            now - then
            for now, then in zip(
                (time.perf_counter(), *_host_jiffies(), cpu_seconds(self._pid)), self._start, strict=True
            )
        )
        return {"host_idle": idle / max(total, 1), "projector_busy": projector / max(wall, 1e-9)}


def run_delay_seconds(pids: list[int]) -> float:
    """Seconds the processes' threads have waited on a run queue for a core so far (the second field of
    /proc/PID/task/*/schedstat, the scheduler's run delay): the cost of sharing the cores."""
    waited = 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                waited += int(stat.read_text().split()[1])
    return waited / 1e9


class ProcessWaits:
    """Over one step of the bench, for the projector's process, its PostgreSQL sessions and the broker: the
    CPU each used and the time its threads waited for a core (run delay), per wall second; and the batches
    the projector applied (its /metrics: how many, observations in each, seconds in their transactions).
    Says whether the projector, alone and in a real run, waits on the cores, on PostgreSQL or for records."""

    def __init__(self, url: str, projector: ServiceProcess | None, broker_pid: int | None) -> None:
        self._url, self._projector, self._broker = url, projector, broker_pid
        self._start: dict[str, float] = {}
        self._backends = BackendSampler(url, "paysync-status-projector")
        self._sampling: asyncio.Task[None] | None = None

    @property
    def projector_pid(self) -> int | None:
        """The projector's process id."""
        return self._projector.process.pid if self._projector and self._projector.process else None

    async def start(self) -> None:
        """Take the first reading; sample the projector's PostgreSQL sessions until `measured`."""
        self._sampling = asyncio.create_task(self._backends.run())
        self._start = await self._reading()

    async def measured(self) -> dict[str, float]:
        """Each figure per wall second since `start`, the projector's batch shape, its CPU an observation."""
        now = await self._reading()
        if self._sampling is not None:
            self._sampling.cancel()
            await asyncio.gather(self._sampling, return_exceptions=True)
        now |= {
            "projector_pg_cpu": self._backends.cpu_seconds,
            "projector_pg_run_delay": self._backends.run_delay_seconds,
        }
        d = {k: now[k] - self._start.get(k, 0.0) for k in now}
        wall, batches, observations = max(d["wall"], 1e-9), max(d["batches"], 1), max(d["observations"], 1)
        out = {k: d[k] / wall for k in d if k.endswith(("_cpu", "_run_delay"))}
        out |= {
            "projector_batches": d["batches"],
            "projector_observations_per_batch": d["observations"] / batches,
            "projector_in_transactions": d["batch_seconds"] / wall,  # share of wall time applying a batch
            "projector_batch_ms": 1e3 * d["batch_seconds"] / batches,
            "projector_cpu_us_per_observation": 1e6 * d["projector_cpu"] / observations,
            "projector_pg_cpu_us_per_observation": 1e6 * d["projector_pg_cpu"] / observations,
        }
        return out

    async def _reading(self) -> dict[str, float]:
        own = [self.projector_pid] if self.projector_pid else []
        broker = [self._broker] if self._broker else []
        metrics = await asyncio.to_thread(self._metrics)
        return {
            "wall": time.perf_counter(),
            "projector_cpu": cpu_seconds(own),
            "projector_run_delay": run_delay_seconds(own),
            "projector_pg_cpu": 0.0,  # sampled while measuring: the pool's sessions come and go
            "projector_pg_run_delay": 0.0,
            "broker_cpu": cpu_seconds(broker),
            "broker_run_delay": run_delay_seconds(broker),
            **metrics,
        }

    def _metrics(self) -> dict[str, float]:
        """The projector's batch counters from its /metrics."""
        found = {"batches": 0.0, "observations": 0.0, "batch_seconds": 0.0}
        if self._projector is None:
            return found
        names = {
            "paysync_projector_batch_size_count": "batches",
            "paysync_projector_batch_size_sum": "observations",
            "paysync_projector_batch_seconds_sum": "batch_seconds",
        }
        for line in httpx.get(f"{self._projector.url}/metrics", timeout=5.0).text.splitlines():
            name, _, value = line.partition(" ")
            if name in names:
                found[names[name]] = float(value)
        return found


class ProjectorLag:
    """The projector group's lag on the observation topic (records published, not yet committed), every
    0.1 s during a real run: how much of the time it had nothing to apply while the replay was still
    publishing (a bubble in the pipeline; on a host with idle cores, the real run's loss), and how long the
    replay ran after the last record was applied (its report)."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self.samples: list[tuple[float, int]] = []  # (time.perf_counter(), records not yet applied)

    async def run(self) -> None:
        """Sample until cancelled."""
        spec = topics.PAYMENT_OBSERVATIONS
        wanted = [TopicPartition(spec.name, p) for p in range(spec.partitions)]  # as the bench provisions it
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap)
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        await consumer.start()
        await admin.start()
        try:
            while True:
                ends = await consumer.end_offsets(wanted)
                committed = await admin.list_consumer_group_offsets(PROJECTOR_GROUP, partitions=wanted)
                done = {tp: max(meta.offset, 0) for tp, meta in committed.items() if meta is not None}
                self.samples.append((time.perf_counter(), sum(ends[tp] - done.get(tp, 0) for tp in wanted)))
                await asyncio.sleep(0.1)
        finally:
            await consumer.stop()
            await admin.close()

    def measured(self, ended: float) -> dict[str, float]:
        """The share of samples at no lag between the first and the last with some (`projector_starved`), and
        the seconds from the last with some to `ended` (`seconds_after_applied`)."""
        busy = [n for n, (_, lag) in enumerate(self.samples) if lag > 0]
        if not busy:
            return {"projector_starved": float("nan"), "seconds_after_applied": float("nan")}
        span = self.samples[busy[0] : busy[-1] + 1]
        starved = sum(1 for _, lag in span if lag == 0) / len(span)
        return {"projector_starved": starved, "seconds_after_applied": ended - self.samples[busy[-1]][0]}


def _host_jiffies() -> tuple[int, int]:
    """The host's idle (idle + iowait) and total CPU time so far, in jiffies, over every core."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return fields[3] + fields[4], sum(fields)


async def run_replay(env: dict[str, str], *args: str) -> dict[str, Any]:
    """`paysync replay … --json` as a process; its report, wall seconds, CPU and peak RSS of its tree."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        str(PAYSYNC), "replay", *args, "--json", env=env, stdout=asyncio.subprocess.PIPE
    )
    broker_port = int(env["PAYSYNC_KAFKA_BOOTSTRAP"].rsplit(":", 1)[1])
    sampler, backends = TreeSampler(process.pid, broker_port), BackendSampler(env["PAYSYNC_DATABASE_URL"])
    sampling = [asyncio.create_task(sampler.run()), asyncio.create_task(backends.run())]
    out, _ = await process.communicate()
    for task in sampling:
        task.cancel()
    await asyncio.gather(*sampling, return_exceptions=True)
    assert process.returncode == 0, f"paysync replay {args} exited {process.returncode}"
    report = json.loads(out)
    ended = time.perf_counter()
    report["wall_seconds"] = ended - started
    # After the last worker stopped reading: the serial tail (joining, the report), on a pooled dry run.
    report["after_reading_seconds"] = None if sampler.last_read_at is None else ended - sampler.last_read_at
    report["records_per_second"] = report["counts"]["records"] / report["seconds"]
    report["peak_rss_mib"] = sampler.peak_kib / 1024
    # Records per CPU second of the replay's processes: what the work costs, whatever the host's load.
    report["cpu_seconds"] = sampler.cpu_seconds
    report["command_cpu_seconds"] = sampler.own_cpu_seconds
    report["run_delay_seconds"] = sampler.run_delay_seconds  # the replay's wait for a core
    report["records_per_cpu_second"] = report["counts"]["records"] / max(sampler.cpu_seconds, 1e-9)
    report["postgres_cpu_seconds"] = backends.cpu_seconds  # the replay's own sessions
    report["postgres_run_delay_seconds"] = backends.run_delay_seconds
    report["load_average"] = {"before": load_before, "after": os.getloadavg()}
    report["payments"] = len(report["payments"])  # the lists themselves are not results
    report["domain_rows"] = len(report["domain_rows"])
    return report


async def measured(what: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    """`run_replay`, saying what it runs and what it measured on stderr."""
    print(f"{what} ...", file=sys.stderr)
    report = await run_replay(env, *args)
    print(f"  {report}", file=sys.stderr)
    return report


UNRELAYED = text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
AUTOVACUUM_WORKERS = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE backend_type = 'autovacuum worker' AND datname = current_database()"
)


async def settle(url: str) -> float:
    """Start a measured step with the database as every other step starts it: the projector's outbox
    relayed, vacuumed and analysed, and no autovacuum worker in it; the seconds that took (not measured in
    any step).

    The outbox first: a step's status changes and alerts (an amount-mismatch alert a payment, in a real run
    and in the projector alone on its observations) are relayed by the projector, and none of that work
    may run on into the next step (none was left at any step's start in session 17's benches).

    Autovacuum wakes after a step's inserts and updates (the registrations, a projector alone's payments)
    and, left alone, worked through the next step, whichever that was: seen through the whole first real
    run of a bench and not the second (bench/README.md). Each step's own churn still wakes it during that
    step, as in a deployment."""
    started = time.perf_counter()
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            while (await conn.execute(UNRELAYED)).scalar_one():
                await asyncio.sleep(0.2)
            await conn.execute(text("VACUUM (ANALYZE)"))  # the bench's tables: its role owns them
            while (await conn.execute(AUTOVACUUM_WORKERS)).scalar_one():
                await asyncio.sleep(0.2)
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def history_rows(url: str, tenant: str) -> int:
    """The tenant's history rows."""
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            query = select(func.count()).select_from(observations).where(observations.c.tenant_id == tenant)
            return (await conn.execute(query)).scalar_one()
    finally:
        await engine.dispose()


async def applying_rate(url: str, tenant: str, since: datetime) -> dict[str, float]:
    """The projector's own rate while it applied the tenant's history rows, whatever fed it: the rows of
    every batch but the last over the time from the first batch's transaction to the last's (a row's
    `created_at` is its transaction's start). Neither the feed's start (the first records read and
    published) nor its end (the last batch's commit seen, the report) counts: the same measure for the
    projector alone and for a real run. The rows are the tenant's created since `since` (the step's start;
    the two real runs of a `--before` bench are the same tenant's)."""
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            at = observations.c.created_at
            mine = (observations.c.tenant_id == tenant) & (at >= since)
            span = select(func.min(at), func.max(at)).where(mine)
            first, last = (await conn.execute(span)).one()
            before_last = select(func.count()).where(mine, at < last)
            rows = (await conn.execute(before_last)).scalar_one() if last is not None else 0
    finally:
        await engine.dispose()
    seconds = (last - first).total_seconds() if last is not None else 0.0
    return {"applying_per_second": rows / seconds if seconds else 0.0, "applying_seconds": seconds}


def synthetic_traffic(tenant: str, regs: list[dict[str, Any]], count: int) -> list[PaymentObservation]:
    """`count` webhook observations as bench/projector makes them: a success each, no alias, the amount
    registered (the projector alone of the benches before 2026-12-07)."""
    return [
        projector_bench.observation(
            tenant, regs[n % len(regs)], f"evt_alone_{n}", projector_bench.S.SUCCEEDED, n % 50
        )
        for n in range(count)
    ]


def replayed_traffic(tenant: str, regs: list[dict[str, Any]], count: int) -> list[PaymentObservation]:
    """`count` observations as a real run publishes them: derived by the replay's own code from raw records
    made as the bench makes the replayed ones (`distinct_records`), so the projector applies the same work
    in both: an alias to bind, the amount of the record (not the one registered: a mismatch alert the
    first time) and the evidence of a replayed record."""
    refs = [r["provider_ref"] for r in regs]
    name = topics.WEBHOOKS_RAW.name
    records = [
        ConsumerRecord(name, 0, n, 0, 0, key, value, None, len(key), len(value), [])
        for n, (key, value) in enumerate(distinct_records(tenant, refs, 0, count))
    ]
    return derive(records, ReplaySource.RAW, Filters()).observations


async def projector_alone(
    url: str,
    bootstrap: str,
    tenant: str,
    traffic: list[PaymentObservation],
    waits: Callable[[], ProcessWaits],
) -> dict[str, float]:
    """The projector draining `traffic`, published straight to its topic: observations/s."""
    count = len(traffic)
    settled = await settle(url)
    shares = waits()
    since, started, share = datetime.now(UTC), time.perf_counter(), HostShare(shares.projector_pid)
    await shares.start()
    await projector_bench.publish_all(bootstrap, traffic)
    while await history_rows(url, tenant) < count:
        await asyncio.sleep(0.2)
    per_second = count / (time.perf_counter() - started)
    measured = {**share.measured(), **await shares.measured(), "settle_seconds": settled}
    applying = await applying_rate(url, tenant, since)
    return {"observations": count, "per_second": per_second, **measured, **applying}


async def projectors_alone(
    url: str,
    bootstrap: str,
    args: argparse.Namespace,
    waits: Callable[[], ProcessWaits],
    results: dict[str, Any],
) -> None:
    """The projector alone over `args.real` synthetic observations (as the benches before 2026-12-07
    measured it), then over as many shaped as a real run publishes them (what a real run is compared with),
    each for payments of its own."""
    for tenant, traffic_of, name in (
        ("alone", synthetic_traffic, "projector_alone_synthetic"),
        ("replayed", replayed_traffic, "projector_alone"),
    ):
        print(f"the projector alone, {args.real:,} observations ({name}) ...", file=sys.stderr)
        regs = await projector_bench.register(url, tenant, args.payments, tenant)
        traffic = traffic_of(tenant, regs, args.real)
        results[name] = await projector_alone(url, bootstrap, tenant, traffic, waits)
        print(f"  {results[name]}", file=sys.stderr)


async def real_run(
    env: dict[str, str], results: dict[str, Any], waits: Callable[[], ProcessWaits], *args: str
) -> dict[str, Any]:
    """`run_replay` of a real run, with its rate's ratio to the projector's own (`results`)."""
    settled = await settle(env["PAYSYNC_DATABASE_URL"])
    shares = waits()
    share, lag = HostShare(shares.projector_pid), ProjectorLag(env["PAYSYNC_KAFKA_BOOTSTRAP"])
    await shares.start()
    sampling = asyncio.create_task(lag.run())
    since = datetime.now(UTC)
    report = await run_replay(env, *args)
    sampling.cancel()
    await asyncio.gather(sampling, return_exceptions=True)
    report |= share.measured() | lag.measured(time.perf_counter()) | await shares.measured()
    report["settle_seconds"] = settled
    report["ratio_to_projector_alone"] = (
        report["records_per_second"] / results["projector_alone"]["per_second"]
    )
    report |= await applying_rate(env["PAYSYNC_DATABASE_URL"], "bench", since)
    # The projector's own rate in the real run against alone, each from its first batch to its last.
    report["applying_ratio_to_projector_alone"] = (
        report["applying_per_second"] / results["projector_alone"]["applying_per_second"]
    )
    report["ratio_to_projector_alone_synthetic"] = (
        report["records_per_second"] / results["projector_alone_synthetic"]["per_second"]
    )
    records = max(report["counts"]["records"], 1)
    report["cpu_microseconds_per_record"] = 1e6 * report["cpu_seconds"] / records
    report["postgres_cpu_microseconds_per_record"] = 1e6 * report["postgres_cpu_seconds"] / records
    print(f"  {report}", file=sys.stderr)
    return report


async def real_runs(
    env: dict[str, str],
    before: dict[str, str] | None,
    results: dict[str, Any],
    times: tuple[str, str],
    *,
    before_first: bool,
    waits: Callable[[], ProcessWaits],
) -> None:
    """Today's real run over the first records (from `times[0]` to `times[1]`), and with `before` the code
    at REV's over the records after them; `before_first`: REV's code over the first records, then today's."""
    since, middle = times
    runs = [("real_run", env), ("real_run_before", before)] if before is not None else [("real_run", env)]
    if before_first:
        runs.reverse()
    spans = [
        ("first records", ("--since", since, "--until", middle)),
        ("records after them", ("--since", middle)),
    ]
    for (name, code), (what, span) in zip(runs, spans[: len(runs)], strict=True):
        print(f"{name.replace('_', ' ')} over the {what} ...", file=sys.stderr)
        results[name] = await real_run(code, results, waits, *span)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="paysync-bench-replay-"))
    kafka = KafkaProcess.on_free_ports(base / "kafka")
    print(f"starting a private Kafka broker in {base} ...", file=sys.stderr)
    bootstrap = await asyncio.to_thread(kafka.start)
    pg = await asyncio.to_thread(postgres.ensure_postgres)
    name = f"paysync_bench_{uuid.uuid4().hex[:8]}"
    url = await asyncio.to_thread(postgres.create_database, name, pg)
    projector: ServiceProcess | None = None
    try:
        await asyncio.to_thread(upgrade, url)
        await provision_topics(bootstrap)
        for tenant in ("bench", "alone", "replayed"):
            await projector_bench.create_tenant(url, tenant)
        env = {
            **os.environ,
            "PAYSYNC_KAFKA_BOOTSTRAP": bootstrap,
            "PAYSYNC_DATABASE_URL": url,
            "PAYSYNC_REPLAY_PROJECTOR_GROUP_ID": PROJECTOR_GROUP,  # what a real run waits on
        }
        env = env_of_code(with_bytecode_cache(env, base / "pycache"), None)
        before = env_of_code(env, code_at(args.before, base)) if args.before else None
        results: dict[str, Any] = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_at_start": os.getloadavg(),
            },
            "payments": args.payments,
            "before": args.before,
        }
        regs = await projector_bench.register(url, "bench", args.payments, "replay")
        refs = [r["provider_ref"] for r in regs]
        print(f"producing the first {args.small:,} distinct raw records ...", file=sys.stderr)
        since = datetime.now(UTC).isoformat()
        results["produce_per_second"] = await produce_raw(bootstrap, "bench", refs, 0, args.small)
        middle = datetime.now(UTC).isoformat()
        small = ("--since", since, "--until", middle, "--dry-run")
        if before is not None and not args.real_only:
            results["dry_run_small_before"] = await measured("dry run, code before", before, *small)
        if not args.real_only:
            results["dry_run_small"] = await measured("dry run over the first records", env, *small)
        print(f"producing {args.records - args.small:,} more distinct records ...", file=sys.stderr)
        await produce_raw(bootstrap, "bench", refs, args.small, args.records)
        every = ("--since", since, "--dry-run")
        if not args.real_only:
            results["dry_run_all"] = await measured("dry run over all records", env, *every)
        if before is not None and not args.real_only:
            results["dry_run_all_before"] = await measured("dry run over all, code before", before, *every)
        if args.dry_only:
            results["machine"]["load_average_at_end"] = os.getloadavg()
            return results

        projector = ServiceProcess(
            "status-projector",
            free_port(),
            {
                **env,
                "PAYSYNC_LOG_LEVEL": "WARNING",
                "PAYSYNC_STATUS_PROJECTOR_GROUP_ID": PROJECTOR_GROUP,
                "PAYSYNC_STATUS_PROJECTOR_AUTO_OFFSET_RESET": "latest",
                "PAYSYNC_STATUS_PROJECTOR_DRIFT_CHECK_SECONDS": "3600",
            },
            base / "projector.log",
        )
        projector.start()
        await asyncio.to_thread(projector.wait_ready)
        await wait_for_groups(bootstrap, {PROJECTOR_GROUP: 1})
        waits = partial(ProcessWaits, url, projector, kafka.pid())
        await projectors_alone(url, bootstrap, args, waits, results)
        await real_runs(env, before, results, (since, middle), before_first=args.before_first, waits=waits)
        results["machine"]["load_average_at_end"] = os.getloadavg()
        return results
    finally:
        if projector is not None:
            projector.stop()
        await asyncio.to_thread(kafka.stop)
        await asyncio.to_thread(postgres.drop_database, name, pg)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="raw records in all")
    parser.add_argument(
        "--small", type=int, default=100_000, help="the first records: small dry run and real run"
    )
    parser.add_argument(
        "--payments", type=int, default=100_000, help="payments the records are about (round robin)"
    )
    parser.add_argument(
        "--before",
        metavar="REV",
        help="also run the replay's code at this git revision (dry runs interleaved, real run after)",
    )
    parser.add_argument(
        "--before-first", action="store_true", help="with --before, REV's real run first, then today's"
    )
    parser.add_argument(
        "--real-only", action="store_true", help="no dry runs: the projector alone and the real run(s)"
    )
    parser.add_argument(
        "--dry-only", action="store_true", help="the dry runs only: no projector alone, no real run"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "bench" / "results" / "replay.json",
        help="also write the results here",
    )
    args = parser.parse_args()
    args.real = args.small
    results = asyncio.run(main(args))
    print(json.dumps(results, indent=2, default=str))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    cli()
