"""`paysync deliveries list|attempts|redeliver`: the delivery log of tenants' webhook endpoints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from paysync_cli._ops import JsonOption, console, fail, print_json
from paysync_cli.endpoints import in_transaction
from paysync_core.db import app_webhooks as repo

app = typer.Typer(
    help="Deliveries of status changes to tenants' endpoints, and redelivery.", no_args_is_help=True
)
_STATUSES = ("pending", "delivered", "failed")


def _jsonable(row: Any) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row._mapping.items()}


@app.command("list")
def list_(
    tenant_id: str,
    endpoint: Annotated[int | None, typer.Option(help="Only this endpoint's")] = None,
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed (given up)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """The tenant's deliveries, newest first: event, state, attempts, last error."""
    if status is not None and status not in _STATUSES:
        raise typer.BadParameter(f"one of {', '.join(_STATUSES)}", param_hint="--status")
    rows = in_transaction(
        lambda conn: repo.list_deliveries(conn, tenant_id, endpoint_id=endpoint, status=status, limit=limit)
    )
    views = [_jsonable(r) for r in rows]
    if as_json:
        print_json(views)
        return
    table = Table("id", "endpoint", "event", "payment", "seq", "status", "attempts", "last error")
    for v in views:
        table.add_row(
            *(str(v[k] or "") for k in ("id", "endpoint_id", "event_id", "payment_id", "sequence", "status")),
            str(v["attempts"]),
            v["last_error"] or "",
        )
    console.print(table)


@app.command("attempts")
def attempts(tenant_id: str, delivery_id: int, as_json: Annotated[bool, JsonOption] = False) -> None:
    """The delivery log of one delivery: each attempt's time, status code, duration and error."""
    views = [
        _jsonable(r)
        for r in in_transaction(lambda conn: repo.delivery_attempts(conn, tenant_id, delivery_id))
    ]
    if as_json:
        print_json(views)
        return
    table = Table("at", "status code", "ms", "error", "by")
    for v in views:
        table.add_row(
            v["attempted_at"],
            str(v["status_code"] or "-"),
            str(v["duration_ms"]),
            v["error"] or "",
            v["attempted_by"],
        )
    console.print(table)


@app.command("redeliver")
def redeliver(
    tenant_id: str,
    delivery_id: Annotated[int | None, typer.Argument(help="One delivery (from `deliveries list`)")] = None,
    endpoint: Annotated[int | None, typer.Option(help="Every delivery to this endpoint in the range")] = None,
    since: Annotated[datetime | None, typer.Option(help="Taken in at or after (UTC unless given)")] = None,
    until: Annotated[datetime | None, typer.Option(help="Taken in before (default: now)")] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Send a delivery again (same webhook-id, fresh retries), or all of an endpoint's in a time range."""
    if (delivery_id is None) == (endpoint is None):
        raise fail("give a delivery id, or --endpoint with --since (and optionally --until)", 2)
    if delivery_id is not None:
        row = in_transaction(lambda conn: repo.redeliver(conn, tenant_id, delivery_id))
        result: dict[str, Any] = {"redelivered": 1, "delivery": _jsonable(row)}
    else:
        if since is None:
            raise fail("--endpoint needs --since", 2)
        start, end, endpoint_id = _utc(since), _utc(until or datetime.now(UTC)), endpoint or 0
        count = in_transaction(lambda conn: repo.redeliver_range(conn, tenant_id, endpoint_id, start, end))
        result = {
            "redelivered": count,
            "endpoint_id": endpoint,
            "since": start.isoformat(),
            "until": end.isoformat(),
        }
    if as_json:
        print_json(result)
    else:
        console.print(
            f"{result['redelivered']} deliver{'y' if result['redelivered'] == 1 else 'ies'} queued again"
        )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
