"""`paysync`: the operator's command line (schema, topics, tenants and keys, replays, dead letters, sweeps,
payments' evidence and overrides, alerts, app webhook endpoints and deliveries)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from paysync_cli import (
    alerts,
    db_wait,
    deliveries,
    dlq,
    endpoints,
    payments,
    reconcile,
    replay,
    topics_describe,
)
from paysync_core.credentials import (
    GatewayCredentials,
    MpesaCredentials,
    PaystackCredentials,
    StripeCredentials,
)
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import engine as db_engine
from paysync_core.db import tenants as tenant_repo
from paysync_core.kafka import provision_topics
from paysync_core.settings import CommonSettings

app = typer.Typer(
    help="Operate paysync: schema, topics, tenants, replays, dead letters, payments, alerts, app webhooks.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants, API keys and gateway credentials.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")
app.add_typer(tenants_app, name="tenants")
app.add_typer(payments.app, name="payments")
app.add_typer(dlq.app, name="dlq")
app.add_typer(alerts.app, name="alerts")
app.add_typer(endpoints.app, name="endpoints")
app.add_typer(deliveries.app, name="deliveries")
app.command("reconcile")(reconcile.reconcile)
app.command("replay")(replay.replay)
topics_app.command("describe")(topics_describe.describe)
db_app.command("wait")(db_wait.wait)
console = Console()


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION."""
    db_engine.upgrade(CommonSettings().database_url, revision)
    console.print(f"[green]schema at {revision}[/]")


@topics_app.command("provision")
def topics_provision(
    replication_factor: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Create every paysync topic that does not exist yet."""
    report = asyncio.run(
        provision_topics(CommonSettings().kafka_bootstrap, replication_factor=replication_factor)
    )
    table = Table("topic", "action")
    for name in report.created:
        table.add_row(name, "[green]created[/]")
    for name in report.existing:
        table.add_row(name, "exists")
    console.print(table)


@tenants_app.command("create")
def tenants_create(
    tenant_id: str,
    name: Annotated[str, typer.Option(help="Display name")] = "",
    api_key: Annotated[
        str | None, typer.Option(help="Install this key instead of a random one (dev only)")
    ] = None,
) -> None:
    """Create a tenant (if new) and print a new API key for it."""

    async def run() -> tuple[bool, str]:
        engine = db_engine.make_engine(CommonSettings().database_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                created = await tenant_repo.create_tenant(conn, tenant_id, name or tenant_id)
                if api_key:
                    await tenant_repo.install_api_key(conn, tenant_id, api_key)
                    return created, api_key
                return created, await tenant_repo.issue_api_key(conn, tenant_id)
        finally:
            await engine.dispose()

    created, key = asyncio.run(run())
    console.print(f"tenant [bold]{tenant_id}[/] {'created' if created else 'already existed'}")
    console.print(f"API key: {key}")


def _run_on_database(work):  # an async function of a connection, and its result
    """Run `work(conn)` in one transaction on PAYSYNC_DATABASE_URL."""

    async def run():
        engine = db_engine.make_engine(CommonSettings().database_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@tenants_app.command("keys")
def tenants_keys(tenant_id: str) -> None:
    """List the tenant's API keys: id, prefix, kind or scopes, issued, expires, revoked (never a key)."""
    rows = _run_on_database(lambda conn: tenant_repo.list_api_keys(conn, tenant_id))
    table = Table("id", Column("prefix", no_wrap=True), "access", "created", "expires", "revoked")
    for row in rows:
        revoked = f"[red]{row.revoked_at:%Y-%m-%d %H:%M}[/]" if row.revoked_at else ""
        expires = f"{row.expires_at:%Y-%m-%d %H:%M}" if row.expires_at else ""
        access = "publishable" if row.kind == "publishable" else ",".join(row.scopes)
        table.add_row(str(row.id), row.prefix, access, f"{row.created_at:%Y-%m-%d %H:%M}", expires, revoked)
    console.print(table)


@tenants_app.command("revoke-key")
def tenants_revoke_key(
    tenant_id: str,
    key: Annotated[str, typer.Argument(help="The key's id (from `tenants keys`) or its 12-character prefix")],
) -> None:
    """Revoke one API key; api-gateway refuses it within PAYSYNC_API_GATEWAY_API_KEY_CACHE_SECONDS (5 s)."""
    which: int | str = int(key) if key.isdigit() else key
    try:
        revoked = _run_on_database(lambda conn: tenant_repo.revoke_api_key(conn, tenant_id, which))
    except tenant_repo.AmbiguousKey as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    if not revoked:
        console.print(f"[red]tenant {tenant_id} has no live API key {key}[/]")
        raise typer.Exit(1)
    console.print(f"revoked API key {revoked[0]} of tenant [bold]{tenant_id}[/]")


@tenants_app.command("set-credentials")
def tenants_set_credentials(
    tenant_id: str,
    stripe_secret_key: Annotated[str | None, typer.Option(envvar="STRIPE_SECRET_KEY")] = None,
    stripe_webhook_secret: Annotated[list[str] | None, typer.Option(help="Repeat during a rotation")] = None,
    stripe_api_base: str | None = None,
    paystack_secret_key: Annotated[str | None, typer.Option(envvar="PAYSTACK_SECRET_KEY")] = None,
    paystack_api_base: str | None = None,
    mpesa_consumer_key: str | None = None,
    mpesa_consumer_secret: str | None = None,
    mpesa_shortcode: Annotated[str | None, typer.Option(help="PayBill, or a till's store number")] = None,
    mpesa_till_number: Annotated[str | None, typer.Option(help="Buy Goods till; none for a PayBill")] = None,
    mpesa_passkey: str | None = None,
    mpesa_callback_token: Annotated[
        list[str] | None, typer.Option(help="Repeat in a rotation: the first is current, the rest accepted")
    ] = None,
    mpesa_api_base: str | None = None,
) -> None:
    """Set (replace) the gateways given; gateways not given keep their credentials."""
    settings = CommonSettings()
    cipher = CredentialsCipher(settings.credentials_keys.get_secret_value())

    async def run() -> GatewayCredentials:
        engine = db_engine.make_engine(settings.database_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                current = await tenant_repo.load_credentials(conn, tenant_id, cipher)
                changes: dict[str, object] = {}
                if stripe_secret_key:
                    changes["stripe"] = StripeCredentials(
                        secret_key=stripe_secret_key,
                        webhook_secrets=tuple(stripe_webhook_secret or ()),
                        api_base=stripe_api_base,
                    )
                if paystack_secret_key:
                    changes["paystack"] = PaystackCredentials(
                        secret_key=paystack_secret_key, api_base=paystack_api_base
                    )
                if mpesa_consumer_key:
                    changes["mpesa"] = MpesaCredentials(
                        consumer_key=mpesa_consumer_key,
                        consumer_secret=mpesa_consumer_secret or "",
                        shortcode=mpesa_shortcode or "",
                        till_number=mpesa_till_number,
                        passkey=mpesa_passkey or "",
                        callback_token=(mpesa_callback_token or [""])[0],
                        previous_callback_tokens=tuple((mpesa_callback_token or [])[1:]),
                        api_base=mpesa_api_base,
                    )
                updated = current.model_copy(update=changes)
                await tenant_repo.set_credentials(conn, tenant_id, updated, cipher)
                return updated
        finally:
            await engine.dispose()

    updated = asyncio.run(run())
    configured = [p for p in ("stripe", "paystack", "mpesa") if getattr(updated, p) is not None]
    gateways = ", ".join(configured) or "no gateway"
    console.print(f"tenant [bold]{tenant_id}[/]: credentials stored encrypted for {gateways}")


@tenants_app.command("reencrypt")
def tenants_reencrypt() -> None:
    """Re-encrypt every tenant's credentials under the first key of PAYSYNC_CREDENTIALS_KEYS."""
    settings = CommonSettings()
    cipher = CredentialsCipher(settings.credentials_keys.get_secret_value())

    async def run() -> int:
        engine = db_engine.make_engine(settings.database_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                return await tenant_repo.reencrypt_all(conn, cipher)
        finally:
            await engine.dispose()

    console.print(f"re-encrypted the credentials of {asyncio.run(run())} tenant(s) under the newest key")


@app.command("new-key")
def new_key() -> None:
    """Print a fresh credentials-encryption key (put it first in PAYSYNC_CREDENTIALS_KEYS)."""
    console.print(CredentialsCipher.new_key())


def main() -> None:
    """Entry point of the `paysync` command."""
    app()
