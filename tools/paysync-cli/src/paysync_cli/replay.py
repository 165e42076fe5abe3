"""`paysync replay`: re-derive observations from a topic and apply them, or first see what would change."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from paysync_cli._ops import RateColumn
from paysync_cli.replay_outage import DatabaseUnavailable
from paysync_cli.replay_parallel import dry_run_in_workers, worker_count
from paysync_cli.replay_progress import ProjectorOffsets, ReplayStalled
from paysync_cli.replay_report import ReplayReport
from paysync_cli.replay_run import Replayer, tune_gc
from paysync_cli.replay_source import (
    Filters,
    OffsetRange,
    ReplaySource,
    consumer,
    explicit_ranges,
    read_ranges,
    time_ranges,
)
from paysync_cli.settings import ReplaySettings
from paysync_core.contracts import Provider
from paysync_core.db import engine as db_engine
from paysync_core.domains import DomainConfigError, Domains, load_domains
from paysync_core.kafka import DurableProducer
from paysync_core.settings import CommonSettings

stdout = Console()
stderr = Console(stderr=True)


def _moment(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time; without a zone it is UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=option) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def yield_cores(niceness: int) -> None:
    """Run this process, and the threads and processes it starts from now on, at least `niceness`
    (`PAYSYNC_REPLAY_NICENESS`): live services sharing the host are scheduled first. Never lowered."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > current:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)


def _offset_ranges(
    partition: list[int], from_offset: list[int], to_offset: list[int]
) -> list[tuple[int, int, int | None]]:
    """The --partition/--from-offset/--to-offset triples, checked."""
    if len(from_offset) != len(partition) or len(to_offset) not in (0, len(partition)):
        raise typer.BadParameter(
            "give one --from-offset per --partition (and one --to-offset each, or none: to the end)",
            param_hint="--partition",
        )
    ends: list[int | None] = list(to_offset) or [None] * len(partition)
    for a, b in zip(from_offset, ends, strict=True):
        if b is not None and b < a:
            raise typer.BadParameter(f"--to-offset {b} is before --from-offset {a}", param_hint="--to-offset")
    return list(zip(partition, from_offset, ends, strict=True))


def replay(
    source: Annotated[
        ReplaySource, typer.Option("--from", help="raw: re-normalize webhooks; or observations")
    ] = (ReplaySource.RAW),
    since: Annotated[str | None, typer.Option(help="First record time, ISO 8601 (UTC if no zone)")] = None,
    until: Annotated[str | None, typer.Option(help="Records before this time (default: up to now)")] = None,
    partition: Annotated[
        list[int] | None, typer.Option(help="A partition to read (repeatable)", min=0)
    ] = None,
    from_offset: Annotated[
        list[int] | None, typer.Option(help="First offset, per --partition", min=0)
    ] = None,
    to_offset: Annotated[
        list[int] | None, typer.Option(help="Last offset (inclusive), per --partition")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's records")] = None,
    gateway: Annotated[Provider | None, typer.Option(help="Only this gateway's records")] = None,
    event_type: Annotated[
        list[str] | None, typer.Option(help="Only these gateway event types (repeatable)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; change nothing")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Replay a topic's records (by time, or by partition offsets) as observations marked `replay`.

    Reads assigned partitions (no consumer group, nothing committed), so live consumers are untouched.
    Observations the history already has are skipped, so a second run changes nothing.
    """
    if partition and (since or until):
        raise typer.BadParameter("give a time range or partition offsets, not both", param_hint="--since")
    if not partition and since is None:
        raise typer.BadParameter(
            "say where to start: --since, or --partition with --from-offset", param_hint="--since"
        )
    offsets = _offset_ranges(partition or [], from_offset or [], to_offset or []) if partition else None
    start, stop = _moment(since, "--since"), _moment(until, "--until")
    filters = Filters(tenant, gateway.value if gateway else None, frozenset(event_type or ()))
    try:
        report = asyncio.run(_replay(source, filters, dry_run, offsets, start, stop))
    except (ReplayStalled, DatabaseUnavailable, DomainConfigError, ValueError, TimeoutError) as exc:
        stderr.print(f"[red]replay stopped: {escape(str(exc))}[/]")
        raise typer.Exit(1) from exc
    _warn_unhashed(report)
    if as_json:
        # orjson: the stdlib's indenting encoder is pure Python, seconds for 10,000 listed payments.
        sys.stdout.buffer.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        _print_report(report)


async def _replay(
    source: ReplaySource,
    filters: Filters,
    dry_run: bool,
    offsets: list[tuple[int, int, int | None]] | None,
    since: datetime | None,
    until: datetime | None,
) -> ReplayReport:
    common, settings = CommonSettings(), ReplaySettings()
    yield_cores(settings.niceness)  # before any thread or worker process starts: they inherit it
    tune_gc(settings.gc_young_objects)
    kafka = consumer(common.kafka_bootstrap)
    engine = db_engine.make_engine(common.database_url, pool_size=2, application_name="paysync-replay")
    producer = (
        None
        if dry_run
        else DurableProducer(common.kafka_bootstrap, client_id="paysync-replay", max_batch_size=1 << 19)
    )
    projector = None if dry_run else ProjectorOffsets(common.kafka_bootstrap, settings.projector_group_id)
    await kafka.start()
    try:
        if producer is not None and projector is not None:
            await producer.start()
            await projector.start()
        ranges = await _ranges(kafka, source.topic, offsets, since, until)
        domains = Domains(load_domains(settings.domains_file, *settings.extra_domains_files))
        with _progress(source, dry_run) as progress:
            task = progress.add_task("replay", total=sum(r.size for r in ranges))
            replayer = Replayer(
                engine,
                settings,
                source,
                filters,
                producer,
                lambda n: progress.advance(task, n),
                domains,
                phone_key=common.phone_hash_key.get_secret_value(),
                progress=projector,
                warn=_warn,
            )
            # A dry run's parsing spreads over the cores; a real run is paced by the projector.
            workers = worker_count(settings, ranges) if dry_run else 1
            if workers > 1:
                return await dry_run_in_workers(replayer, ranges, workers, replayer.on_records)
            first = None if dry_run else settings.first_step_records
            records = read_ranges(kafka, source.topic, ranges, settings.batch_records, first=first)
            return await replayer.run(records)
    finally:
        await kafka.stop()
        if producer is not None:
            await producer.stop()
        if projector is not None:
            await projector.stop()
        await engine.dispose()


async def _ranges(
    kafka: AIOKafkaConsumer,
    topic: str,
    offsets: list[tuple[int, int, int | None]] | None,
    since: datetime | None,
    until: datetime | None,
) -> list[OffsetRange]:
    if offsets is not None:
        return await explicit_ranges(kafka, topic, offsets)
    return await time_ranges(kafka, topic, since, until)


def _progress(source: ReplaySource, dry_run: bool) -> Progress:
    verb = "dry run of" if dry_run else "replaying"
    return Progress(
        TextColumn(f"{verb} {source.topic}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        console=stderr,
        # Not on a terminal (a job's log), the bar is printed once, at the end: no redraw thread rendering
        # it ten times a second for nobody (1.5% of a real run's CPU).
        auto_refresh=stderr.is_terminal,
    )


def _warn(message: str) -> None:
    """A warning on stderr, above the progress bar (a database outage ridden through)."""
    stderr.print(f"[yellow]{escape(message)}[/]")


def _warn_unhashed(report: ReplayReport) -> None:
    """Say so when M-Pesa payers were replayed without the phone hash key (their lookups by phone fail)."""
    if report.counts.phones_unhashed:
        stderr.print(
            f"[yellow]{report.counts.phones_unhashed} M-Pesa callback(s) replayed without"
            " PAYSYNC_PHONE_HASH_KEY: their payments cannot be found by the payer's phone."
            " Give paysync the services' key.[/]"
        )


def _print_report(report: ReplayReport) -> None:
    verb = "would change" if report.dry_run else "changed"
    table = Table("payment", "tenant", "gateway ref", "domain row", "status", "received", "refunded")
    for c in report.changes:
        entity = f"{c.row.domain}/{c.row.entity_id}" if c.row.domain else "(none)"
        table.add_row(
            str(c.row.id),
            c.row.tenant,
            f"{c.row.provider} {c.row.provider_ref}",
            entity,
            f"{c.before.status} → [bold]{c.after.status}[/]",
            f"{c.before.amount_received_minor} → {c.after.amount_received_minor}",
            f"{c.before.amount_refunded_minor} → {c.after.amount_refunded_minor}",
        )
    if report.changes:
        stdout.print(table)
    if report.domain_rows:
        rows = Table("domain row", "tenant", f"columns ({verb})")
        for d in report.domain_rows:
            rows.add_row(d.describe().split(": ", 1)[0], d.key.tenant, d.describe().split(": ", 1)[1])
        stdout.print(rows)
    summary = Table("", "count", title=f"{'dry run: ' if report.dry_run else ''}replay summary")
    for name, value in report.to_json()["counts"].items():
        summary.add_row(name.replace("_", " "), f"{value:,}")
    stdout.print(summary)
    more = " (more than listed)" if report.truncated else ""
    stdout.print(
        f"{report.counts.payments_changed} payment(s) and {report.counts.domain_rows_changed} domain row(s)"
        f" {verb}{more} in {report.seconds:.1f}s"
    )
