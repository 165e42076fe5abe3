"""`paysync dlq list|show|redrive`: dead letters per topic, reason, tenant and time; redrive after a fix.

Kafka records cannot be deleted, so a redriven letter leaves the view by its row in the redrive
ledger (`dead_letter_redrives`, keyed by the letter's own topic, partition and offset). A redriven
record that fails again is a new letter, with its new error, and is in the view again.
"""

from __future__ import annotations

import asyncio
import getpass
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from paysync_cli._ops import JsonOption, console, database, fail, print_json, producer
from paysync_cli.dead_letters import Letter, Selection, dlq_topics, read_letters
from paysync_core.contracts import DeadLetter
from paysync_core.db import redrives
from paysync_core.settings import CommonSettings

app = typer.Typer(help="Dead letters: list, show, redrive after a fix.", no_args_is_help=True)

TopicOption = Annotated[str | None, typer.Option(help="A topic (or its .dlq); default: every one")]
ReasonOption = Annotated[str | None, typer.Option(help="An error type, or words of the error")]
TenantOption = Annotated[str | None, typer.Option(help="Only letters of this tenant's records")]
SinceOption = Annotated[datetime | None, typer.Option(help="Written at or after (ISO time; UTC if naive)")]
UntilOption = Annotated[datetime | None, typer.Option(help="Written before (ISO time; UTC if naive)")]


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _selection(
    topic: str | None, reason: str | None, tenant: str | None, since: datetime | None, until: datetime | None
) -> Selection:
    try:
        names = dlq_topics(topic)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--topic") from None
    return Selection(names, reason, tenant, _utc(since), _utc(until))


def _progress() -> Progress:
    """A bar with rate and time left, on stderr (stdout stays clean for `--json`)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


async def _in_view(selection: Selection, show_progress: bool) -> list[Letter]:
    """The selected letters that were not redriven yet."""
    with _progress() as bar:
        task = bar.add_task("reading dead letters", total=None, rate="", visible=show_progress)

        def advance(done: int, total: int) -> None:
            speed = bar.tasks[0].speed
            bar.update(task, completed=done, total=total, rate=f"{speed:,.0f} rec/s" if speed else "")

        letters = await read_letters(CommonSettings().kafka_bootstrap, selection, advance)
    async with database() as engine, engine.connect() as conn:
        done = await redrives.redriven(conn, (x.position for x in letters))
    return [x for x in letters if x.position not in done]


def _counts(letters: list[Letter]) -> dict[str, int]:
    return dict(sorted(Counter(x.dlq_topic for x in letters).items()))


@app.command("list")
def list_letters(
    topic: TopicOption = None,
    reason: ReasonOption = None,
    tenant: TenantOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Dead letters not redriven yet: where, why, from which record; counts per topic."""
    selection = _selection(topic, reason, tenant, since, until)
    letters = asyncio.run(_in_view(selection, not as_json))
    if as_json:
        print_json({"counts": _counts(letters), "letters": [x.summary() for x in letters]})
        return
    table = Table("id", "failed at", "reason", "error", "source record", "tenant")
    for x in letters:
        s = x.summary()
        source = f"{s['source_topic']}:{s['source_partition']}:{s['source_offset']}"
        table.add_row(x.id, s["failed_at"][:19], x.reason, (s["error"] or "")[:80], source, s["tenant"] or "")
    console.print(table)
    console.print(f"{len(letters)} dead letter(s) in view: {_counts(letters) or 'none'}")


@app.command("show")
def show(
    letter_id: Annotated[str, typer.Argument(help="<dlq topic>:<partition>:<offset>, as `dlq list` shows")],
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """One dead letter: reason, error, source topic/partition/offset, the original record, any redrive."""
    try:
        dlq_topic, partition, offset = letter_id.rsplit(":", 2)
        position = (dlq_topic, int(partition), int(offset))
        selection = Selection(dlq_topics(dlq_topic))
    except ValueError as exc:
        raise typer.BadParameter(f"{letter_id!r} is not <dlq topic>:<partition>:<offset> ({exc})") from None
    found, ledger = asyncio.run(_one(selection, position))
    if found is None:
        raise fail(f"no dead letter {letter_id}")
    details = found.details() | {"redriven": _ledger_json(ledger)}
    if as_json:
        print_json(details)
        return
    for name in ("id", "reason", "error", "source_topic", "source_partition", "source_offset", "failed_at"):
        console.print(f"[bold]{name}[/]: {details[name]}")
    console.print(f"[bold]redriven[/]: {details['redriven'] or 'no'}")
    if isinstance(details["original"], dict):
        console.print_json(data=details["original"])
    else:
        console.print(details["original"])


async def _one(selection: Selection, position: tuple[str, int, int]) -> tuple[Letter | None, Any]:
    letters = await read_letters(CommonSettings().kafka_bootstrap, selection)
    found = next((x for x in letters if x.position == position), None)
    async with database() as engine, engine.connect() as conn:
        ledger = await redrives.redriven(conn, [position])
    return found, ledger.get(position)


def _ledger_json(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "by": row.redriven_by,
        "at": row.redriven_at.isoformat(),
        "to": f"{row.source_topic}:{row.redriven_partition}:{row.redriven_offset}",
    }


@app.command("redrive")
def redrive(
    topic: TopicOption = None,
    reason: ReasonOption = None,
    tenant: TenantOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    by: Annotated[str | None, typer.Option(help="Who (default: this user); kept in the ledger")] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Republish the selected letters' original records to their source topics, after a fix.

    Each is entered in the redrive ledger and leaves the view; one that fails again comes back as a
    new letter with its new error. Counts before and after are printed.
    """
    selection = _selection(topic, reason, tenant, since, until)
    report = asyncio.run(_redrive(selection, by or getpass.getuser(), not as_json))
    if as_json:
        print_json(report)
        return
    table = Table("dead-letter topic", "in view before", "redriven", "in view after")
    for name in sorted(set(report["before"]) | set(report["after"])):
        redriven_here = sum(1 for r in report["redriven"] if r["dlq_topic"] == name)
        table.add_row(
            name, str(report["before"].get(name, 0)), str(redriven_here), str(report["after"].get(name, 0))
        )
    console.print(table)
    console.print(f"redrove {len(report['redriven'])} record(s); skipped {len(report['skipped'])} unreadable")


async def _redrive(selection: Selection, who: str, show_progress: bool) -> dict[str, Any]:
    letters = await _in_view(selection, show_progress)
    readable = [(x, x.letter) for x in letters if x.letter is not None]
    done: list[dict[str, Any]] = []
    with _progress() as bar:
        task = bar.add_task("redriving", total=len(readable), rate="", visible=show_progress)
        async with producer("paysync-cli-redrive") as sender, database() as engine:
            for x, letter in readable:
                sent = await sender.send(letter.source_topic, letter.key, letter.value)
                row = _ledger_row(x, letter, sent, who)
                # Entered after the broker took the record: a crash in between redrives it again on the
                # next run, which idempotent consumers make harmless; the reverse would lose it.
                async with engine.begin() as conn:
                    await redrives.record_redrives(conn, [row])
                to = f"{row['source_topic']}:{row['redriven_partition']}:{row['redriven_offset']}"
                done.append({"id": x.id, "dlq_topic": x.dlq_topic, "to": to})
                bar.update(task, advance=1)
    unreadable = [x for x in letters if x.letter is None]
    return {
        "before": _counts(letters),
        "redriven": done,
        "skipped": [x.id for x in unreadable],
        "after": _counts(unreadable),
    }


def _ledger_row(x: Letter, letter: DeadLetter, sent: Any, who: str) -> dict[str, Any]:
    """The ledger row of a letter republished as `sent` (the broker's record metadata)."""
    return {
        "dlq_topic": x.dlq_topic,
        "partition": x.partition,
        "offset": x.offset,
        "source_topic": letter.source_topic,
        "error_type": letter.error_type[:200],
        "redriven_partition": sent.partition,
        "redriven_offset": sent.offset,
        "redriven_by": who[:100],
    }
