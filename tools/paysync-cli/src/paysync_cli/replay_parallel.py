"""A dry run spread over processes: each replays a share of the partitions into a shadow of its own.

Parsing a record with today's adapter is CPU work in Python, so one process uses one core. Records
are independent until the fold, and the fold is a join (`PaymentState.join`): a worker process per
core reads its own partitions from Kafka, parses, looks up and folds them exactly as a one-process
dry run does, and sends back its counts, its shadow, the aliases it bound and the observations that
named no payment; this process joins the shadows, then matches all those observations against all
the aliases bound (`paysync_cli.replay_alias`), and reports.
Workers are forked from a fork server (a fork of this process, with its running event loop, is not safe).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing.queues import Queue

from paysync_cli.replay_alias import AliasBindings
from paysync_cli.replay_run import ReplayCounts, Replayer, ReplayReport, tune_gc
from paysync_cli.replay_shadow import ShadowProjection
from paysync_cli.replay_source import Filters, OffsetRange, ReplaySource, consumer, read_ranges
from paysync_cli.settings import ReplaySettings
from paysync_core.db import engine as db_engine
from paysync_core.settings import CommonSettings

# Set in each worker process by the pool's initializer: where it reports records done.
_progress: Queue[int] | None = None


def worker_count(settings: ReplaySettings, ranges: list[OffsetRange]) -> int:
    """How many processes a dry run over `ranges` uses: 1 (this one) when a pool would not pay."""
    records = sum(r.size for r in ranges)
    if records < settings.parallel_from_records:
        return 1
    cores = settings.workers or _cores()
    return max(1, min(cores, sum(1 for r in ranges if r.size)))


def _cores() -> int:
    """The CPU cores this process may run on (all of the machine's where the OS does not say)."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def split(ranges: list[OffsetRange], shares: int) -> list[list[OffsetRange]]:
    """The ranges dealt into `shares` lists of about equal records (largest range first)."""
    dealt: list[list[OffsetRange]] = [[] for _ in range(shares)]
    sizes = [0] * shares
    for r in sorted((r for r in ranges if r.size), key=lambda r: r.size, reverse=True):
        least = sizes.index(min(sizes))
        dealt[least].append(r)
        sizes[least] += r.size
    return [share for share in dealt if share]


async def dry_run_in_workers(
    replayer: Replayer, ranges: list[OffsetRange], workers: int, on_records: Callable[[int], None]
) -> ReplayReport:
    """The dry run of `replayer` over `ranges`, in `workers` processes; reported by `replayer`."""
    started = time.monotonic()
    shares = split(ranges, workers)
    context = multiprocessing.get_context("forkserver")
    # The fork server imports only this module (not the `paysync` command and all it imports), and
    # each worker is forked from it: ready in milliseconds, with no event loop of ours to inherit.
    context.set_forkserver_preload([__name__])
    progress: Queue[int] = context.Queue()
    counts = ReplayCounts()
    await replayer.note_parked()
    loop = asyncio.get_running_loop()
    with (
        _no_collection_while_absorbing(),
        ProcessPoolExecutor(
            len(shares), mp_context=context, initializer=_set_progress, initargs=(progress,)
        ) as pool,
    ):
        jobs = [
            loop.run_in_executor(pool, replay_share, replayer.source, replayer.filters, share)
            for share in shares
        ]
        over = threading.Event()
        pumping = asyncio.create_task(asyncio.to_thread(_pump, progress, over, on_records))
        try:
            for share_counts, shadow, aliases in await asyncio.gather(*jobs):
                replayer.absorb(share_counts, counts, shadow, aliases)
        finally:
            over.set()
            await pumping
    return await replayer.report(counts, started)


@contextmanager
def _no_collection_while_absorbing() -> Iterator[None]:
    """No garbage collection while the workers' shadows arrive, then none of theirs again.

    They arrive as some ten objects a payment (row, state, facts), every one kept until the report:
    each collection while they arrive walks all that arrived before, which at 100,000 payments was
    more than half the CPU of unpickling them. What arrived is frozen (as `Replayer.report` does).
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _pump(progress: Queue[int], over: threading.Event, on_records: Callable[[int], None]) -> None:
    """Pass the workers' progress on until they are over (a thread: Queue.get blocks)."""
    while True:
        try:
            on_records(progress.get(timeout=0.2))
        except queue.Empty:
            if over.is_set():
                return


def _set_progress(progress: Queue[int]) -> None:
    global _progress
    _progress = progress


def replay_share(
    source: ReplaySource, filters: Filters, ranges: list[OffsetRange]
) -> tuple[ReplayCounts, ShadowProjection, AliasBindings]:
    """In a worker process: the dry run of these ranges, its counts, its shadow and its aliases."""
    return asyncio.run(_replay_share(source, filters, ranges))


async def _replay_share(
    source: ReplaySource, filters: Filters, ranges: list[OffsetRange]
) -> tuple[ReplayCounts, ShadowProjection, AliasBindings]:
    common, settings = CommonSettings(), ReplaySettings()
    tune_gc(settings.gc_young_objects)
    kafka = consumer(common.kafka_bootstrap)
    engine = db_engine.make_engine(common.database_url, pool_size=1, application_name="paysync-replay")
    report = _progress.put if _progress is not None else (lambda n: None)
    phone_key = common.phone_hash_key.get_secret_value()
    replayer = Replayer(engine, settings, source, filters, on_records=report, phone_key=phone_key)
    counts = ReplayCounts()
    await kafka.start()
    try:
        await replayer.consume(read_ranges(kafka, source.topic, ranges, settings.batch_records), counts)
    finally:
        await kafka.stop()
        await engine.dispose()
    return counts, replayer.shadow, replayer.aliases
