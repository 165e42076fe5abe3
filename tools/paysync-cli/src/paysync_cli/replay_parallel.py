"""A dry run spread over processes: each replays a share of the partitions into a shadow of its own.

Parsing a record with today's adapter is CPU work in Python, so one process uses one core. Records
are independent until the fold, and the fold is a join (`PaymentState.join`): a worker process per
core reads its own partitions from Kafka, parses, looks up and folds them exactly as a one-process
dry run does. Then it works out the report's lines of what it folded alone, while the others still
read, and sends back only counts, the first lines listed and the shadow of what spans workers; this
process matches what named no payment against all the aliases bound (`paysync_cli.replay_alias`),
joins and reports what spans workers and merges the lists (`paysync_cli.replay_settle`).
Workers are forked from a fork server (a fork of this process, with its running event loop, is not safe).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import pickle
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any

from paysync_cli.replay_outage import DatabaseUnavailable
from paysync_cli.replay_report import ReplayCounts, ReplayReport
from paysync_cli.replay_run import Replayer, tune_gc
from paysync_cli.replay_settle import Central, Folded, Settled, central, folded, guess, joined_report, settle
from paysync_cli.replay_source import Filters, OffsetRange, ReplaySource, consumer, read_ranges
from paysync_cli.settings import ReplaySettings
from paysync_core.db import engine as db_engine
from paysync_core.domains import Domains, load_domains
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
    try:
        return await _in_workers(replayer, ranges, workers, on_records)
    except DatabaseUnavailable as exc:  # in this process or in a worker
        exc.done = replayer.stopped(ReplayCounts())  # a dry run's: what it read does not matter
        raise


async def _in_workers(
    replayer: Replayer, ranges: list[OffsetRange], workers: int, on_records: Callable[[int], None]
) -> ReplayReport:
    started = time.monotonic()
    shares = split(ranges, workers)
    context = multiprocessing.get_context("forkserver")
    # The fork server imports only this module (not the `paysync` command and all it imports), and
    # each worker is forked from it: ready in milliseconds, with no event loop of ours to inherit.
    context.set_forkserver_preload([__name__])
    progress: Queue[int] = context.Queue()
    counts = ReplayCounts()
    await replayer.bind_domains()
    await replayer.note_parked()
    job = (replayer.source, replayer.filters, replayer.domains is not None)
    over = threading.Event()
    pumping = asyncio.create_task(asyncio.to_thread(_pump, progress, over, on_records))
    try:
        with _started(context, [(*job, share) for share in shares], progress) as pipes:
            folded: list[Folded] = await _from_each(pipes)
            for share in folded:
                replayer.absorb(share.counts, counts, share.aliases)
            matched = replayer.settle_aliases(counts)
            of = central(folded, matched, replayer.settings.report_limit)
            for pipe in pipes:
                pipe.send(of)
            with _no_collection_while_absorbing():
                settled: list[Settled] = await _from_each(pipes)
    finally:
        over.set()
        await pumping
    return await joined_report(replayer, counts, of, matched, settled, started)


@contextmanager
def _started(
    context: ForkServerContext,
    jobs: list[tuple[ReplaySource, Filters, bool, list[OffsetRange]]],
    progress: Queue[int],
) -> Iterator[list[Connection]]:
    """A worker process per job, each with a pipe to this one; on an error here, the workers are ended."""
    pipes: list[Connection] = []
    processes: list[BaseProcess] = []
    try:
        for job in jobs:
            here, there = context.Pipe()
            process = context.Process(target=replay_share, args=(there, progress, *job), daemon=True)
            process.start()
            there.close()
            pipes.append(here)
            processes.append(process)
        yield pipes
    except BaseException:
        for each in processes:
            each.terminate()
        raise
    finally:
        for each in processes:
            each.join()
        for pipe in pipes:
            pipe.close()


async def _from_each(pipes: list[Connection]) -> list[Any]:
    """The next message of every worker, in order; a worker's error is raised here as soon as it comes."""
    return list(await asyncio.gather(*(asyncio.to_thread(_received, pipe) for pipe in pipes)))


def _received(pipe: Connection) -> Any:
    try:
        kind, message = pipe.recv()
    except EOFError:
        raise RuntimeError("a replay worker process ended without its result (killed?)") from None
    if kind == "error":
        raise message
    return message


@contextmanager
def _no_collection_while_absorbing() -> Iterator[None]:
    """No garbage collection while the workers' results arrive, then none of theirs again.

    What arrives (the shadows of what spans workers, the first listed changes) is kept until the
    report: each collection while it arrives walks all that arrived before. It is frozen (as
    `Replayer.report` does).
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


def replay_share(
    pipe: Connection,
    progress: Queue[int],
    source: ReplaySource,
    filters: Filters,
    with_domains: bool,
    ranges: list[OffsetRange],
) -> None:
    """In a worker process: the dry run of these ranges, in the two steps of `paysync_cli.replay_settle`
    over `pipe` (an error instead, if one is raised)."""
    global _progress
    _progress = progress
    try:
        asyncio.run(_replay_share(pipe, source, filters, with_domains, ranges))
    except Exception as exc:  # noqa: BLE001 - sent to the command, which raises it
        pipe.send(("error", _sendable(exc)))
    finally:
        pipe.close()


def _sendable(exc: Exception) -> Exception:
    """The error as the command can receive it: itself with its traceback noted, or a RuntimeError
    saying what it was where it cannot be pickled."""
    exc.add_note("".join(traceback.format_exception(exc)))
    try:
        pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - whatever stops pickling it, it is sent as text
        return RuntimeError(f"in a replay worker process: {exc!r}\n{exc.__notes__[-1]}")
    return exc


async def _replay_share(
    pipe: Connection, source: ReplaySource, filters: Filters, with_domains: bool, ranges: list[OffsetRange]
) -> None:
    common, settings = CommonSettings(), ReplaySettings()
    tune_gc(settings.gc_young_objects)
    kafka = consumer(common.kafka_bootstrap)
    engine = db_engine.make_engine(common.database_url, pool_size=1, application_name="paysync-replay")
    report = _progress.put if _progress is not None else (lambda n: None)
    phone_key = common.phone_hash_key.get_secret_value()
    replayer = Replayer(engine, settings, source, filters, on_records=report, phone_key=phone_key)
    counts = ReplayCounts()
    try:
        await kafka.start()
        try:
            await replayer.consume(read_ranges(kafka, source.topic, ranges, settings.batch_records), counts)
        finally:
            await kafka.stop()
        if with_domains:  # bound once read: while the other workers still read
            replayer.domains = Domains(load_domains(settings.domains_file, *settings.extra_domains_files))
            await replayer.bind_domains()
        pipe.send(("folded", folded(replayer, counts)))
        guessed = await guess(replayer)  # while the other workers still read
        of: Central = pipe.recv()
        pipe.send(("settled", settle(replayer, guessed, of)))
    finally:
        await engine.dispose()
