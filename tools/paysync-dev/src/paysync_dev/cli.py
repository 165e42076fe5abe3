"""The paysync-dev command: start, stop and inspect local Kafka and PostgreSQL."""

from __future__ import annotations

import logging
import os
import time
from typing import Annotated

import typer

from paysync_dev import kafka, paths, postgres

app = typer.Typer(
    help="Local Apache Kafka (KRaft) and PostgreSQL for paysync, without Docker.",
    no_args_is_help=True,
)

PortOption = Annotated[int, typer.Option(help="PLAINTEXT listener port (the bootstrap port).")]
ControllerPortOption = Annotated[int, typer.Option(help="KRaft CONTROLLER listener port.")]


@app.callback()
def _setup(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    """Configure logging for every command."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("paysync_dev").setLevel(logging.INFO if verbose else logging.WARNING)


def _fail(exc: Exception) -> typer.Exit:
    """Print an error and return the exit to raise."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def _kafka_up(port: int, controller_port: int) -> str:
    """Start the dev broker and report how long it took."""
    began = time.monotonic()
    try:
        bootstrap = kafka.start(port=port, controller_port=controller_port)
    except kafka.KafkaError as exc:
        raise _fail(exc) from exc
    took = time.monotonic() - began
    typer.echo(f"Apache Kafka {kafka.version()} at {bootstrap} ({took:.1f} s)", err=True)
    return bootstrap


def _pg_up() -> str:
    """Ensure PostgreSQL and report how long it took."""
    began = time.monotonic()
    try:
        url = postgres.ensure_postgres()
    except postgres.PostgresError as exc:
        raise _fail(exc) from exc
    typer.echo(f"PostgreSQL ready ({time.monotonic() - began:.1f} s)", err=True)
    return url


@app.command("kafka-up")
def kafka_up(
    port: PortOption = kafka.DEV_PORT,
    controller_port: ControllerPortOption = kafka.DEV_CONTROLLER_PORT,
) -> None:
    """Start the dev Kafka broker (idempotent) and print its bootstrap servers."""
    typer.echo(_kafka_up(port, controller_port))


@app.command("kafka-down")
def kafka_down() -> None:
    """Stop the dev Kafka broker (SIGTERM, then SIGKILL after a grace period)."""
    typer.echo("stopped" if kafka.stop() else "not running")


@app.command("pg-up")
def pg_up() -> None:
    """Install/start PostgreSQL as needed, ensure the paysync role and database, print the URL."""
    typer.echo(_pg_up())


@app.command("up")
def up(
    port: PortOption = kafka.DEV_PORT,
    controller_port: ControllerPortOption = kafka.DEV_CONTROLLER_PORT,
) -> None:
    """Start Kafka and PostgreSQL; print the bootstrap servers and the database URL."""
    bootstrap = _kafka_up(port, controller_port)
    url = _pg_up()
    typer.echo(f"{kafka.BOOTSTRAP_ENV}={bootstrap}")
    typer.echo(f"{postgres.DATABASE_URL_ENV}={url}")


@app.command("down")
def down(
    with_postgres: Annotated[
        bool,
        typer.Option("--postgres", help="Also stop the local PostgreSQL cluster (a system service)."),
    ] = False,
) -> None:
    """Stop the dev Kafka broker; PostgreSQL keeps running unless --postgres is given."""
    typer.echo(f"kafka: {'stopped' if kafka.stop() else 'not running'}")
    if with_postgres:
        try:
            stopped = postgres.stop_local()
        except postgres.PostgresError as exc:
            raise _fail(exc) from exc
        typer.echo(f"postgres: {'stopped' if stopped else 'not running'}")


def _kafka_row(label: str, broker: kafka.KafkaProcess) -> tuple[str, ...]:
    """Return a status row for one broker directory."""
    pid = broker.pid()
    state = "running" if broker.answers() else ("not answering" if pid else "stopped")
    version = (broker.running_version() if pid else None) or kafka.version()
    return (label, state, broker.bootstrap, f"Apache Kafka {version}", str(pid or "-"))


def _postgres_rows() -> list[tuple[str, ...]]:
    """Return status rows for PostgreSQL: the override URL or the local clusters."""
    override = os.environ.get(postgres.DATABASE_URL_ENV)
    if override:
        try:
            version = " ".join(postgres.server_version(override, timeout=2.0).split()[:2])
            state = "reachable"
        except postgres.PostgresError:
            version, state = "-", "unreachable"
        return [("postgres (env)", state, postgres.redact(override), version, "-")]
    if not postgres.installed_versions():
        return [("postgres", "not installed", "-", "-", "-")]
    return [
        (f"postgres {c.name}", c.status, f"127.0.0.1:{c.port}", f"PostgreSQL {c.version}", "-")
        for c in postgres.clusters()
    ]


@app.command("status")
def status() -> None:
    """Show what is running."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"paysync local infrastructure ({paths.local_dir()})")
    for column in ("component", "state", "address", "version", "pid"):
        table.add_column(column, no_wrap=column != "address", overflow="fold")
    test_broker = kafka.test_broker()
    table.add_row(*_kafka_row("kafka (dev)", kafka.dev_broker()))
    table.add_row(*_kafka_row("kafka (tests)", test_broker))
    for row in _postgres_rows():
        table.add_row(*row)
    Console().print(table)


def main() -> None:
    """Run the paysync-dev command line."""
    app()
