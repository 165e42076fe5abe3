"""`paysync endpoints add|list|rotate-secret|disable|enable`: tenants' own webhook endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_cli._ops import JsonOption, console, database, fail, print_json
from paysync_core.app_webhooks import EndpointSpec
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import app_webhooks as repo
from paysync_core.domain.status import UnifiedStatus
from paysync_core.errors import PaysyncError
from paysync_core.settings import CommonSettings

app = typer.Typer(
    help="Tenants' webhook endpoints (status changes, Standard Webhooks).", no_args_is_help=True
)
T = TypeVar("T")
#: How long a rotated-out secret keeps signing, unless told otherwise.
DEFAULT_OVERLAP_SECONDS = 24 * 3600


def cipher() -> CredentialsCipher:
    """The cipher of stored secrets (PAYSYNC_CREDENTIALS_KEYS)."""
    return CredentialsCipher(CommonSettings().credentials_keys.get_secret_value())


def in_transaction(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work(conn)` in one transaction; a paysync error (unknown tenant, endpoint) ends the command."""

    async def run() -> T:
        async with database() as engine, engine.begin() as conn:
            return await work(conn)

    try:
        return asyncio.run(run())
    except PaysyncError as exc:
        raise fail(str(exc)) from exc


@app.command("add")
def add(
    tenant_id: str,
    url: Annotated[str, typer.Argument(help="https:// URL (http only for localhost / 127.0.0.1)")],
    description: Annotated[str, typer.Option(help="What it is for")] = "",
    domain: Annotated[list[str] | None, typer.Option(help="Only this domain's payments (repeat)")] = None,
    status: Annotated[list[UnifiedStatus] | None, typer.Option(help="Only changes to this status")] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Register an endpoint; prints its signing secret, which is shown only this once."""
    try:
        spec = EndpointSpec(url=url, description=description, domains=domain or [], statuses=status or [])
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise fail(f"invalid endpoint: {problems}", 2) from None
    keys = cipher()
    row, secret = in_transaction(lambda conn: repo.create_endpoint(conn, tenant_id, spec, keys))
    view = repo.endpoint_view(row) | {"secret": secret}
    if as_json:
        print_json(view)
        return
    console.print(f"endpoint [bold]{row.id}[/] of tenant [bold]{tenant_id}[/]: {row.url}")
    console.print(f"signing secret (shown once): {secret}")


@app.command("list")
def list_(tenant_id: str, as_json: Annotated[bool, JsonOption] = False) -> None:
    """The tenant's endpoints: URL, filters, enabled or why not, failures (never a secret)."""
    views = [repo.endpoint_view(r) for r in in_transaction(lambda conn: repo.list_endpoints(conn, tenant_id))]
    if as_json:
        print_json(views)
        return
    table = Table("id", "url", "domains", "statuses", "state", "failures in a row")
    for v in views:
        state = "[green]enabled[/]" if v["enabled"] else f"[red]disabled[/] ({v['disabled_reason']})"
        domains, statuses = ",".join(v["domains"]) or "all", ",".join(v["statuses"]) or "all"
        table.add_row(str(v["id"]), v["url"], domains, statuses, state, str(v["consecutive_failures"]))
    console.print(table)


@app.command("rotate-secret")
def rotate_secret(
    tenant_id: str,
    endpoint_id: int,
    keep_old_for: Annotated[
        float, typer.Option(min=0, help="Seconds the previous secrets keep signing (0: stop now)")
    ] = DEFAULT_OVERLAP_SECONDS,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """A new signing secret (shown once); the previous ones keep signing for --keep-old-for seconds."""
    keys, overlap = cipher(), timedelta(seconds=keep_old_for)
    secret, until = in_transaction(
        lambda conn: repo.rotate_secret(conn, tenant_id, endpoint_id, keys, overlap)
    )
    if as_json:
        print_json({"id": endpoint_id, "secret": secret, "previous_expire_at": until.isoformat()})
        return
    console.print(f"new signing secret of endpoint {endpoint_id} (shown once): {secret}")
    console.print(f"the previous secrets sign until {until:%Y-%m-%d %H:%M:%S} UTC")


def _set_enabled(tenant_id: str, endpoint_id: int, enabled: bool, as_json: bool) -> None:
    row: Any = in_transaction(lambda conn: repo.set_enabled(conn, tenant_id, endpoint_id, enabled))
    if as_json:
        print_json(repo.endpoint_view(row))
    else:
        console.print(
            f"endpoint {endpoint_id} of tenant [bold]{tenant_id}[/] {'enabled' if enabled else 'disabled'}"
        )


@app.command("disable")
def disable(tenant_id: str, endpoint_id: int, as_json: Annotated[bool, JsonOption] = False) -> None:
    """Stop sending to an endpoint; its deliveries wait (pending) until it is enabled again."""
    _set_enabled(tenant_id, endpoint_id, False, as_json)


@app.command("enable")
def enable(tenant_id: str, endpoint_id: int, as_json: Annotated[bool, JsonOption] = False) -> None:
    """Send to an endpoint again (clears its failure record); what waited is delivered, in order."""
    _set_enabled(tenant_id, endpoint_id, True, as_json)
