"""`paysync payments show|override`: the evidence behind a payment's status, and setting it by hand."""

from __future__ import annotations

import asyncio
import getpass
import uuid
from typing import Annotated, Any

import typer
from rich.table import Table

from paysync_cli._ops import JsonOption, console, database, fail, print_json, producer, wait_for
from paysync_core.db import history as history_repo
from paysync_core.domain.status import UnifiedStatus
from paysync_core.overrides import MAX_BY, MAX_REASON, override_observation, override_record

app = typer.Typer(help="One payment: its evidence, and status overrides.", no_args_is_help=True)


def _payment_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a payment id (a UUID)") from None


@app.command("show")
def show(
    payment_id: Annotated[str, typer.Argument(help="The payment's id (as the API shows it)")],
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """The payment and every observation behind its status, in order, with the status after each."""
    key = _payment_id(payment_id)

    async def read() -> tuple[Any, list[Any]]:
        async with database() as engine, engine.connect() as conn:
            payment = await history_repo.find_payment(conn, key)
            rows = await history_repo.history(conn, key) if payment is not None else []
            return payment, rows

    payment, rows = asyncio.run(read())
    if payment is None:
        raise fail(f"no payment {payment_id}")
    entries = [history_repo.history_entry(r) for r in rows]
    if as_json:
        print_json({"payment": _payment_json(payment), "history": entries})
        return
    console.print(
        f"payment [bold]{payment.id}[/] ({payment.tenant_id}, {payment.provider} {payment.provider_ref}): "
        f"[bold]{payment.status}[/]"
    )
    console.print(_history_table(entries))


@app.command("override")
def override(
    payment_id: Annotated[str, typer.Argument(help="The payment's id")],
    status: Annotated[UnifiedStatus, typer.Option(help="The status to set")],
    reason: Annotated[str, typer.Option(help="Why: kept in the payment's history")],
    by: Annotated[str | None, typer.Option(help="Who decided (default: this user)")] = None,
    wait: Annotated[float, typer.Option(min=0, help="Seconds to wait for the projector to apply it")] = 30.0,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Set a payment's status by hand, audited; older gateway facts never undo it, newer ones that disagree
    open an `override_contradicted` sync issue."""
    key = _payment_id(payment_id)
    who = by or getpass.getuser()
    if not reason.strip() or len(reason) > MAX_REASON:
        raise typer.BadParameter(f"give a reason of 1 to {MAX_REASON} characters", param_hint="--reason")
    if not who.strip() or len(who) > MAX_BY:
        raise typer.BadParameter(f"give a name of 1 to {MAX_BY} characters", param_hint="--by")
    result = asyncio.run(_override(key, status, reason, who, wait))
    if result is None:
        raise fail(f"no payment {payment_id}")
    if as_json:
        print_json(result)
    else:
        state = "applied" if result["applied"] else f"published, not applied within {wait:g}s"
        console.print(
            f"payment [bold]{payment_id}[/]: {result['status_before']} → [bold]{status.value}[/] "
            f"by {who} ({state}; history entry {result['observation_id']})"
        )
    if not result["applied"]:
        raise typer.Exit(3)


async def _override(
    key: uuid.UUID, status: UnifiedStatus, reason: str, who: str, wait: float
) -> dict[str, Any] | None:
    """Publish the override, then wait until the projector recorded it; None for an unknown payment."""
    async with database() as engine:
        async with engine.connect() as conn:
            payment = await history_repo.find_payment(conn, key)
        if payment is None:
            return None
        obs = override_observation(payment, status, reason, who)
        async with producer("paysync-cli") as sender:
            await sender.send(*override_record(obs))

        async def applied() -> bool:
            async with engine.connect() as conn:
                return await history_repo.is_applied(conn, obs.tenant, obs.observation_id)

        done = await wait_for(applied, wait)
        async with engine.connect() as conn:
            after = await history_repo.find_payment(conn, key)
    return {
        "payment_id": str(key),
        "observation_id": obs.observation_id,
        "status_before": payment.status,
        "status": after.status if after is not None else payment.status,
        "by": who,
        "reason": reason,
        "applied": done,
    }


def _payment_json(payment: Any) -> dict[str, Any]:
    return {
        "id": str(payment.id),
        "tenant": payment.tenant_id,
        "provider": payment.provider,
        "provider_ref": payment.provider_ref,
        "domain": payment.domain,
        "entity_id": payment.entity_id,
        "status": payment.status,
        "amount_minor": payment.amount_minor,
        "currency": payment.currency,
        "paid_at": payment.paid_at.isoformat() if payment.paid_at else None,
        "flags": list(payment.flags),
    }


def _history_table(entries: list[dict[str, Any]]) -> Table:
    table = Table("#", "provider time", "source", "kind", "event / why", "raw record", "said", "status after")
    for e in entries:
        raw = e["raw_record"]
        why = e["provider_event_id"] or ""
        if e.get("override"):
            why = f"{e['override']['by']}: {e['override']['reason']}"
        table.add_row(
            str(e["seq"]),
            e["provider_time"][:19],
            e["source"],
            e["kind"] + (f" (refused: {e['refused']})" if e["refused"] else ""),
            why,
            f"{raw['partition']}@{raw['offset']}" if raw else "",
            e["status"] or "?",
            e["status_after"],
        )
    return table
