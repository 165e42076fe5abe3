"""Benchmark the whole path: signed webhooks of all three gateways → status readable and live event.

    make bench-e2e               (or: .venv/bin/python bench/e2e/run.py --help)
    make bench-stream            (the `stream` preset: issue 14's 1 client against 200)

webhook-ingest (HTTP + normalizer), status-projector, notifier, api-gateway and reconciler (it
confirms M-Pesa callbacks with an STK Push Query) run as separate processes on a broker and database
of their own, with the gateway simulator (`sim_server.py`) as every tenant's Stripe, Paystack and
Daraja. Each phase's webhooks are distinct payments made and paid at the simulator, registered in
paysync, and sent by `bench/loadgen` open loop at a fixed rate (request i due at start + i/rate,
whatever happened before it: no coordinated omission) or closed loop for the maximum. For each
webhook: due → 200, due → its new status read by a separate poller (`GET /v1/payments/{id}` with
If-None-Match, a sample of the payments), due → its event at each stream client that should get it;
every accepted webhook's event must reach every such client and its payment must be `succeeded`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import report
import stack as stacks
import typer
from phase import Options, Phase, run_phase
from webhooks import parse_mix

from paysync_dev import paths

RESULTS = paths.repo_root() / "bench" / "results"


def phases_of(
    preset: str, rates: list[int], seconds: float, workers: int, stream_rate: int, clients: int, tenants: int
) -> list[Phase]:
    """The phases a preset runs (`e2e`: the rates, the maximum, then the stream comparison)."""
    if preset == "smoke":
        return [Phase("smoke 20/s", 20, seconds, consoles=1, entities=2)]
    fixed = [Phase(f"{rate}/s", rate, seconds) for rate in rates]
    if workers:
        fixed.append(Phase(f"max ({workers} connections)", 0, seconds, poll=False))
    per_tenant = max(1, clients // tenants)
    compare = [
        Phase(f"{stream_rate}/s, 1 client", stream_rate, seconds, console_tenants=1, poll=False),
        Phase(
            f"{stream_rate}/s, {clients} tenant-wide", stream_rate, seconds, consoles=per_tenant, poll=False
        ),
        Phase(
            f"{stream_rate}/s, {clients} front-end mix",
            stream_rate,
            seconds,
            consoles=1,
            entities=max(0, clients - tenants),
            poll=False,
        ),
    ]
    return compare if preset == "stream" else fixed + (compare if clients else [])


def main(
    preset: str = typer.Option(
        "e2e", help="e2e (everything), stream (issue 14's comparison), smoke (the test's)"
    ),
    rates: str = typer.Option("200,500,1000", help="Fixed rates, webhooks/s, open loop"),
    seconds: float = typer.Option(20, help="How long each phase sends"),
    workers: int = typer.Option(32, help="Connections of the closed-loop phase (the maximum); 0: none"),
    max_webhooks: int = typer.Option(40_000, help="Webhooks prepared for the closed-loop phase"),
    stream_rate: int = typer.Option(500, help="Rate of the stream comparison (1 client against --clients)"),
    clients: int = typer.Option(
        200, help="Stream clients of the comparison's loaded phases; 0: no comparison"
    ),
    tenants: int = typer.Option(20, help="Tenants the webhooks and clients are spread over"),
    mix: str = typer.Option("stripe=45,paystack=45,mpesa=10", help="Shares of the gateways' webhooks"),
    mpesa_rate: float = typer.Option(50, help="The reconciler's Daraja budget per tenant, requests/s"),
    poll_per_second: int = typer.Option(20, help="Payments per second the poller follows"),
    poll_every_ms: int = typer.Option(
        10, help="Time between two reads of one payment (then a tenth of the wait)"
    ),
    sustained_p99_ms: float = typer.Option(
        100, help="A rate counts as sustained if due → 200 p99 is at most this"
    ),
    drain_seconds: float = typer.Option(120, help="How long to wait for the last events after sending"),
    warm_up: bool = typer.Option(True, help="Send 40 webhooks first, unmeasured"),
    profile: str = typer.Option(None, help="Sample this service with py-spy while each phase sends"),
    py_spy: str = typer.Option("py-spy", help="The py-spy program (--profile)"),
    kafka_bootstrap: str = typer.Option(None, help="Use this broker instead of starting one"),
    database_url: str = typer.Option(None, help="Use this database instead of creating one"),
    out: Path = typer.Option(RESULTS / "e2e.json", help="Where the JSON results go"),
) -> None:
    """Run the phases; print the tables; write the JSON."""
    loadgen = paths.repo_root() / ".cache" / "bin" / "loadgen"
    if not loadgen.exists():
        sys.exit(f"{loadgen} missing: run `make bench-e2e` (it builds bench/loadgen)")
    if preset not in ("e2e", "stream", "smoke"):
        sys.exit(f"unknown preset {preset!r}: e2e, stream or smoke")
    if profile is not None and profile not in stacks.SERVICES:
        sys.exit(f"--profile names a service: {', '.join(stacks.SERVICES)}")
    plan = phases_of(
        preset, [int(r) for r in rates.split(",") if r], seconds, workers, stream_rate, clients, tenants
    )
    opts = Options(
        parse_mix(mix),
        workers,
        max_webhooks,
        poll_per_second,
        poll_every_ms,
        sustained_p99_ms,
        drain_seconds,
        profile,
        py_spy,
    )
    work = paths.local_dir() / "bench" / f"e2e-{uuid.uuid4().hex[:6]}"
    settings = stacks.Settings(tenants, mpesa_rate, max(clients, 1), kafka_bootstrap, database_url)
    body = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_at_start": os.getloadavg(),
        "cores": os.cpu_count(),
        "preset": preset,
        "tenants": tenants,
        "mix": opts.mix,
        "reconciler_mpesa_rate": mpesa_rate,
        "poll": {"payments_per_s": poll_per_second, "every_ms": poll_every_ms},
        "sustained_p99_ms": sustained_p99_ms,
        "results": [],
    }

    def save(results: list[dict]) -> None:
        """Write the results so far (a run stopped midway keeps its finished phases)."""
        body.update(results=results, finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(body, indent=2))

    running = stacks.start(settings, work / "logs")
    try:
        results = asyncio.run(_run(running, plan, opts, work, warm_up, save))
    finally:
        stacks.stop(running)
    print(report.render(results))
    print(f"\nresults: {out}; logs: {work / 'logs'}")


async def _run(
    running: stacks.Stack,
    plan: list[Phase],
    opts: Options,
    work: Path,
    warm_up: bool,
    save: Callable[[list[dict]], None],
) -> list[dict]:
    engine = stacks.bench_engine(running)
    try:
        if warm_up:
            first = await run_phase(
                running, engine, Phase("warm-up", 20, 2, poll=False), opts, work / "warm-up", 0
            )
            if first["stream"]["deliveries_missing"] or first["not_applied"]:
                raise RuntimeError(f"the warm-up lost webhooks: {first['stream']}, logs in {work / 'logs'}")
        results = []
        for n, phase in enumerate(plan, start=1):
            results.append(await run_phase(running, engine, phase, opts, work / f"phase-{n}", n))
            print(report.main_table(results)[-1], flush=True)
            save(results)
        return results
    finally:
        await engine.dispose()


if __name__ == "__main__":
    typer.run(main)
