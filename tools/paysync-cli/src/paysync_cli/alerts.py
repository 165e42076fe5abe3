"""`paysync alerts config|log`: who a tenant's admin alerts go to, and what was sent (the delivery log).

The same settings as `/admin/v1/tenants/{id}/alert-settings`, validated by the same model; chat URLs
and signing secrets are stored encrypted (PAYSYNC_CREDENTIALS_KEYS) and never printed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from paysync_cli._ops import JsonOption, console, database, fail, print_json
from paysync_core.alerting import DELIVERY_STATUSES, AlertConfig, public_view
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import alerts as alert_repo
from paysync_core.db import tenants as tenant_repo
from paysync_core.settings import CommonSettings

app = typer.Typer(help="Admin alerts: who is told (email, chat), and the delivery log.", no_args_is_help=True)


def _cipher() -> CredentialsCipher:
    return CredentialsCipher(CommonSettings().credentials_keys.get_secret_value())


async def _load(tenant: str) -> AlertConfig | None:
    async with database() as engine, engine.connect() as conn:
        if not await tenant_repo.tenant_exists(conn, tenant):
            raise fail(f"no tenant {tenant!r}")
        return await alert_repo.load_alert_settings(conn, tenant, _cipher())


async def _save(tenant: str, config: AlertConfig) -> None:
    async with database() as engine, engine.begin() as conn:
        await alert_repo.save_alert_settings(conn, tenant, config, _cipher())


def _changes(
    email: list[str] | None,
    slack_url: list[str] | None,
    webhook: list[str] | None,
    webhook_secret: list[str] | None,
    kind: list[str] | None,
    all_kinds: bool,
    reminder_after: float | None,
    no_reminder: bool,
    quiet_seconds: float | None = None,
) -> dict[str, Any]:
    """The fields the options set; a list option given replaces that list."""
    changes: dict[str, Any] = {}
    if email is not None:
        changes["emails"] = [e for e in email if e]  # `--email ''` clears the list
    if slack_url is not None:
        changes["slack_urls"] = [u for u in slack_url if u]
    if webhook is not None:
        if any(webhook) and not webhook_secret:
            raise typer.BadParameter("a signed webhook needs --webhook-secret", param_hint="--webhook")
        current, *previous = webhook_secret or [""]
        changes["webhooks"] = [
            {"url": u, "secret": current, "previous_secrets": previous} for u in webhook if u
        ]
    if kind is not None or all_kinds:
        changes["kinds"] = None if all_kinds else kind
    if reminder_after is not None or no_reminder:
        changes["reminder_after_seconds"] = None if no_reminder else reminder_after
    if quiet_seconds is not None:
        changes["quiet_seconds"] = quiet_seconds
    return changes


def _rule_changes(
    pending_deadline: list[str] | None,
    failure_rate: str | None,
    failure_window: str | None,
    no_failure_rate: bool,
    dead_letters: bool | None,
) -> dict[str, Any]:
    """The rules the options set (`--pending-deadline ''` clears the deadlines)."""
    changes: dict[str, Any] = {}
    if pending_deadline is not None:
        pairs = [item.partition("=") for item in pending_deadline if item]
        if any(not sep or not domain for domain, sep, _ in pairs):
            raise typer.BadParameter("DOMAIN=DURATION, e.g. bookings=30m", param_hint="--pending-deadline")
        changes["pending_deadlines"] = {domain.strip(): value.strip() for domain, _, value in pairs}
    if no_failure_rate:
        changes["failure_rate"] = None
    elif failure_rate is not None or failure_window is not None:
        rule: dict[str, Any] = {}
        if failure_rate is not None:
            failed, sep, of_last = failure_rate.partition("/")
            if not sep:
                raise typer.BadParameter("FAILED/OF_LAST, e.g. 5/20", param_hint="--failure-rate")
            rule |= {"min_failed": failed.strip(), "of_last": of_last.strip()}
        if failure_window is not None:
            rule["window_seconds"] = failure_window
        changes["failure_rate"] = rule
    if dead_letters is not None:
        changes["dead_letters"] = dead_letters
    return changes


def _validated(current: AlertConfig | None, changes: dict[str, Any]) -> AlertConfig:
    """The settings after the changes, or exit 2 naming each problem (nothing is stored)."""
    base = current.model_dump() if current else {}
    if current is not None:  # secrets as values, so that an unchanged webhook keeps its secret
        base["webhooks"] = [hook.stored() for hook in current.webhooks]
    if isinstance(changes.get("failure_rate"), dict) and base.get("failure_rate"):
        # `--failure-rate` or `--failure-window` alone keeps the other half of the rule.
        changes = {**changes, "failure_rate": {**base["failure_rate"], **changes["failure_rate"]}}
    try:
        return AlertConfig.model_validate({**base, **changes})
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise fail("alert settings not changed: " + "; ".join(problems), code=2) from None


@app.command("config")
def config(
    tenant: str,
    email: Annotated[
        list[str] | None, typer.Option(help="Email recipient (repeat; replaces the list)")
    ] = None,
    slack_url: Annotated[list[str] | None, typer.Option(help="Slack-compatible webhook URL (repeat)")] = None,
    webhook: Annotated[list[str] | None, typer.Option(help="Signed JSON webhook URL (repeat)")] = None,
    webhook_secret: Annotated[
        list[str] | None,
        typer.Option(
            envvar="PAYSYNC_ALERTS_WEBHOOK_SECRET",
            help="whsec_ signing secret of the --webhook URLs; repeat during a rotation: new first, then old",
        ),
    ] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Alert only about this kind (repeat)")] = None,
    all_kinds: Annotated[bool, typer.Option("--all-kinds", help="Alert about every kind")] = False,
    reminder_after: Annotated[float | None, typer.Option(help="Remind after this many seconds open")] = None,
    no_reminder: Annotated[bool, typer.Option("--no-reminder", help="Never remind")] = False,
    quiet_seconds: Annotated[
        float | None, typer.Option(help="Tell only about issues still open this long (0: at once)")
    ] = None,
    pending_deadline: Annotated[
        list[str] | None, typer.Option(help="DOMAIN=DURATION (30m, 3d): alert a payment unsettled that long")
    ] = None,
    failure_rate: Annotated[
        str | None,
        typer.Option(help="FAILED/OF_LAST: alert when that many of a gateway's last outcomes failed"),
    ] = None,
    failure_window: Annotated[str | None, typer.Option(help="Outcomes this recent count (1h, 30m)")] = None,
    no_failure_rate: Annotated[
        bool, typer.Option("--no-failure-rate", help="No failure-rate alerts")
    ] = False,
    dead_letters: Annotated[bool | None, typer.Option(help="Alert on dead letters of the tenant")] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Show the tenant's alert settings, or change those the options name (the rest stay)."""
    changes = _changes(
        email, slack_url, webhook, webhook_secret, kind, all_kinds, reminder_after, no_reminder, quiet_seconds
    ) | _rule_changes(pending_deadline, failure_rate, failure_window, no_failure_rate, dead_letters)
    current = asyncio.run(_load(tenant))
    settings = current
    if changes:
        settings = _validated(current, changes)
        asyncio.run(_save(tenant, settings))
    view = {**public_view(tenant, settings or AlertConfig()), "configured": settings is not None}
    if as_json:
        print_json(view)
        return
    for name, value in view.items():
        console.print(f"[bold]{name}[/]: {value}")


LOG_COLUMNS = ("created_at", "kind", "step", "channel", "recipient", "status", "attempts", "last_error")


@app.command("log")
def log(
    tenant: str,
    status: Annotated[str | None, typer.Option(help=", ".join(DELIVERY_STATUSES))] = None,
    kind: Annotated[str | None, typer.Option(help="Only this alert kind")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Entered at or after (ISO time; UTC if naive)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """The delivery log, newest first: what was sent, to whom, when, and what failed (and why)."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise typer.BadParameter(f"one of {', '.join(DELIVERY_STATUSES)}", param_hint="--status")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)

    async def read() -> list[dict[str, Any]]:
        async with database() as engine, engine.connect() as conn:
            if not await tenant_repo.tenant_exists(conn, tenant):
                raise fail(f"no tenant {tenant!r}")
            rows = await alert_repo.list_deliveries(
                conn, tenant, status=status, kind=kind, since=since, limit=limit
            )
        return [dict(row._mapping) for row in rows]

    rows = asyncio.run(read())
    if as_json:
        print_json({"tenant": tenant, "deliveries": rows})
        return
    table = Table(*LOG_COLUMNS)
    for row in rows:
        table.add_row(*(str(row[c])[:60] if row[c] is not None else "" for c in LOG_COLUMNS))
    console.print(table)
    console.print(f"{len(rows)} deliveries")
