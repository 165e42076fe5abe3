"""`paysync dlq list|show|redrive`: dead letters per topic, reason, tenant and time; redrive after a fix.

Reading, choosing and redriving are `paysync_core.dlq_view` (which `/admin/v1/dead-letters` uses too).
"""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from paysync_cli._ops import JsonOption, console, database, fail, print_json, producer, progress_bar
from paysync_core import dlq_view
from paysync_core.dlq_view import Letter, Selection, counts, dlq_topics, find, in_view, ledger_json
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


async def _in_view(selection: Selection, show_progress: bool) -> list[Letter]:
    """The selected letters that were not redriven yet."""
    with progress_bar() as bar:
        task = bar.add_task("reading dead letters", total=None, visible=show_progress)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        async with database() as engine:
            return await in_view(CommonSettings().kafka_bootstrap, engine, selection, advance)


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
        print_json({"counts": counts(letters), "letters": [x.summary() for x in letters]})
        return
    table = Table("id", "failed at", "reason", "error", "source record", "tenant")
    for x in letters:
        s = x.summary()
        source = f"{s['source_topic']}:{s['source_partition']}:{s['source_offset']}"
        table.add_row(x.id, s["failed_at"][:19], x.reason, (s["error"] or "")[:80], source, s["tenant"] or "")
    console.print(table)
    console.print(f"{len(letters)} dead letter(s) in view: {counts(letters) or 'none'}")


@app.command("show")
def show(
    letter_id: Annotated[str, typer.Argument(help="<dlq topic>:<partition>:<offset>, as `dlq list` shows")],
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """One dead letter: reason, error, source topic/partition/offset, the original record, any redrive."""
    try:
        found, ledger = asyncio.run(_one(letter_id))
    except ValueError as exc:
        raise typer.BadParameter(f"{letter_id!r} is not <dlq topic>:<partition>:<offset> ({exc})") from None
    if found is None:
        raise fail(f"no dead letter {letter_id}")
    details = found.details() | {"redriven": ledger_json(ledger)}
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


async def _one(letter_id: str) -> tuple[Letter | None, Any]:
    async with database() as engine:
        return await find(CommonSettings().kafka_bootstrap, engine, letter_id)


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
    readable = sum(1 for x in letters if x.letter is not None)
    with progress_bar() as bar:
        task = bar.add_task("redriving", total=readable, unit="letters", visible=show_progress)
        async with producer("paysync-cli-redrive") as sender, database() as engine:
            return await dlq_view.redrive(letters, sender, engine, who, lambda: bar.update(task, advance=1))
