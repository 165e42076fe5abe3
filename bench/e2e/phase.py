"""One measured phase: webhooks sent open loop (or closed loop, for the maximum) while stream clients
listen and a poller reads payments; then every accepted webhook's change is awaited and checked."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import measure
from clients import GoClient, layout, poll_requests, send, stream_requests, write_lines
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from stack import Stack
from webhooks import Webhook, prepare, write_targets

from paysync_dev.procstat import cpu_seconds


@dataclass(frozen=True)
class Phase:
    """What one phase sends and who listens."""

    name: str
    rate: int  # webhooks/s, open loop; 0: closed loop with `workers` connections (the maximum)
    seconds: float
    consoles: int = 1  # tenant-wide stream clients per tenant …
    console_tenants: int = 1_000_000  # … on the first this many tenants
    entities: int = 0  # stream clients each watching one entity (a payment page), through a stream token
    poll: bool = True  # a poller reads a sample of the payments through GET /v1/payments/{id}


@dataclass(frozen=True)
class Options:
    """The run's knobs every phase shares."""

    mix: dict[str, float]
    workers: int  # closed loop: connections
    max_webhooks: int  # closed loop: webhooks prepared (each is sent at most once)
    poll_per_second: int
    poll_every_ms: int
    sustained_p99_ms: float
    drain_seconds: float
    #: Sample this service with py-spy while each phase sends (`raw` stacks in the phase's directory).
    profile: str | None = None
    py_spy: str = "py-spy"


async def run_phase(
    stack: Stack, engine: AsyncEngine, phase: Phase, opts: Options, work: Path, seed: int
) -> dict:
    """Run one phase; what it measured (see `measure`), CPU per webhook and peak memory of each process."""
    work.mkdir(parents=True, exist_ok=True)
    count = int(phase.rate * phase.seconds) if phase.rate else opts.max_webhooks
    hooks = await prepare(stack, engine, count, opts.mix, seed)
    clients = layout(hooks, len(stack.tenants), phase.consoles, phase.console_tenants, phase.entities)
    lines = write_lines(stream_requests(stack, clients), work / "clients.jsonl")
    sse = GoClient(["sse", "-clients", str(lines), "-out", str(work / "arrivals.csv")])
    poller: GoClient | None = None
    load = [os.getloadavg()[0]]
    try:
        opened = sse.wait_until(lambda p: p.get("opened", 0) + p.get("failed", 0) >= len(clients), 120)
        if not opened or sse.progress.get("failed"):
            raise RuntimeError(f"{phase.name}: stream clients did not all open: {sse.progress}")
        targets = write_targets(hooks, work / "targets.jsonl")
        start_ms = int(time.time() * 1000) + 2000 + len(hooks) // 10  # time to read the targets
        if phase.poll and phase.rate:
            interval_us = (1_000_000_000 // phase.rate) / 1000  # as loadgen spaces them (whole ns)
            every = max(1, round(phase.rate / opts.poll_per_second))
            polls = poll_requests(stack, hooks, lambda i: int(start_ms * 1000 + i * interval_us), every)
            poller = GoClient(
                [
                    "poll",
                    *("-polls", str(write_lines(polls, work / "polls.jsonl"))),
                    *("-every", f"{opts.poll_every_ms}ms", "-timeout", f"{opts.drain_seconds}s"),
                    *("-out", str(work / "polls.csv")),
                ]
            )
        stack.reset_peaks()
        before = await _cpu(stack, engine)
        profiler = _profiler(stack, phase, opts, work)
        report, loadgen_cpu = send(_sender_args(phase, opts, targets, work / "acks.csv", start_ms))
        if profiler is not None:
            profiler.wait(60)
        acks = measure.read_acks(work / "acks.csv")
        accepted = {i for i, a in acks.items() if a[2] == 200}
        expected = measure.expected_deliveries(hooks, accepted, clients)
        sse.wait_until(lambda p: p.get("received", 0) >= expected, opts.drain_seconds, stall=30)
        if poller is not None:
            waiting = poller
            waiting.wait_until(lambda _: waiting.done, opts.drain_seconds + 30)
        # Clients of some tenants only (the 1-client phase) do not wait for every tenant's changes.
        not_applied = await _wait_applied(engine, hooks, accepted, opts.drain_seconds)
        spent = _spent(before, await _cpu(stack, engine))
        spent["loadgen"] = loadgen_cpu
        spent["stream clients"] = sse.cpu()
        spent["poller"] = poller.cpu() if poller else 0.0
        load.append(os.getloadavg()[0])
    finally:
        for client in (sse, poller):
            if client is not None:
                client.finish()
    return _result(
        phase,
        opts,
        stack,
        hooks,
        clients,
        acks,
        work,
        spent,
        load,
        report,
        not_applied,
    )


def _profiler(stack: Stack, phase: Phase, opts: Options, work: Path) -> subprocess.Popen | None:
    """py-spy sampling the chosen service for the phase's sending time (it runs alongside, niced)."""
    if opts.profile is None:
        return None
    pid = stack.services[opts.profile].process.pid  # type: ignore[union-attr]
    out = work / f"{opts.profile}.py-spy.txt"
    seconds = str(max(1, int(phase.seconds)))
    command = [opts.py_spy, "record", "--nonblocking", "--rate", "100", "--duration", seconds]
    return subprocess.Popen(
        ["nice", "-n", "19", *command, "--pid", str(pid), "--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _sender_args(phase: Phase, opts: Options, targets: Path, acks: Path, start_ms: int) -> list[str]:
    common = ["-targets", str(targets), "-once", "-acks", str(acks), "-timeout", "30s"]
    if phase.rate:
        return [
            *common,
            "-rate",
            str(phase.rate),
            "-duration",
            f"{phase.seconds}s",
            "-start-at",
            str(start_ms),
            "-workers",
            "512",
        ]
    return [*common, "-rate", "0", "-duration", f"{phase.seconds}s", "-workers", str(opts.workers)]


def _result(
    phase: Phase,
    opts: Options,
    stack: Stack,
    hooks: list[Webhook],
    clients: list,
    acks: dict,
    work: Path,
    spent: dict[str, float],
    load: list[float],
    report: dict,
    not_applied: int,
) -> dict:
    answers = measure.answers(acks, len(hooks) if phase.rate else len(acks), phase.rate)
    p99 = answers["due_to_200_ms"]["p99"]
    sustained = (
        answers["sent"] == answers["planned"] == answers["accepted"]
        and p99 is not None
        and p99 <= opts.sustained_p99_ms
        if phase.rate
        else None
    )
    polls = measure.read_polls(work / "polls.csv") if (work / "polls.csv").exists() else {}
    accepted = max(1, answers["accepted"])
    return {
        "phase": phase.name,
        "rate_per_s": phase.rate or None,
        "seconds": phase.seconds,
        "workers": None if phase.rate else opts.workers,
        "answers": answers,
        "sustained": sustained,
        "readable": measure.readable(hooks, acks, polls) if polls else None,
        "stream": measure.stream(hooks, acks, clients, measure.read_arrivals(work / "arrivals.csv")),
        "not_applied": not_applied,
        "cpu_ms_per_webhook": {name: round(1000 * s / accepted, 3) for name, s in spent.items()},
        "peak_rss_mib": stack.peak_rss(),
        "load_average": load,
        "loadgen": {k: report.get(k) for k in ("requests", "ok", "elapsed_s", "errors")},
    }


async def _cpu(stack: Stack, engine: AsyncEngine) -> dict[str, dict[int, float]]:
    pids = stack.pids()
    pids["postgres"] = await stack.postgres_pids(engine)
    return {name: {pid: cpu_seconds(pid) for pid in group} for name, group in pids.items()}


def _spent(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds each process set used in between (a PostgreSQL backend started meanwhile: all of it)."""
    return {
        name: sum(t - before.get(name, {}).get(pid, 0.0) for pid, t in group.items())
        for name, group in after.items()
    }


async def _wait_applied(engine: AsyncEngine, hooks: list[Webhook], accepted: set[int], seconds: float) -> int:
    """Wait (bounded) until every accepted webhook's payment is `succeeded`; how many are not."""
    deadline = time.monotonic() + seconds
    while (left := await _not_applied(engine, hooks, accepted)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return left


async def _not_applied(engine: AsyncEngine, hooks: list[Webhook], accepted: set[int]) -> int:
    """Accepted webhooks whose payment is not `succeeded` in PostgreSQL (must be 0)."""
    ids = [uuid.UUID(h.payment_id) for h in hooks if h.index in accepted]
    async with engine.connect() as conn:
        done = await conn.scalar(
            text("SELECT count(*) FROM payments WHERE id = ANY(:ids) AND status = 'succeeded'"), {"ids": ids}
        )
    return len(ids) - int(done or 0)
