"""PostgreSQL for dev and tests: a URL from the environment, else Debian's packaged cluster."""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from paysync_core.db.notify import asyncpg_dsn
from paysync_dev import paths
from paysync_dev._aio import run_sync

log = logging.getLogger(__name__)

DATABASE_URL_ENV = "PAYSYNC_DATABASE_URL"
ROLE = "paysync"
PASSWORD = "paysync"  # noqa: S105 - the local development server's role password
DATABASE = "paysync"
_IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """PostgreSQL could not be installed, started, reached or changed."""


@dataclass(frozen=True)
class Cluster:
    """One row of pg_lsclusters."""

    version: str
    name: str
    port: int
    status: str
    owner: str
    data_dir: str
    log_file: str

    @property
    def online(self) -> bool:
        """Tell whether the cluster is running."""
        return self.status.startswith("online")


def database_name(url: str) -> str:
    """Return the name of the database url points at (its path, without the query)."""
    return urlsplit(url).path.lstrip("/")


def with_database(url: str, name: str) -> str:
    """Return url pointing at database name on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _quote_identifier(name: str) -> str:
    """Return name double-quoted after checking it is a plain lower-case identifier."""
    if not _IDENTIFIER_RE.match(name):
        raise PostgresError(f"invalid database name {name!r}: use [a-z_][a-z0-9_]*, at most 63 chars")
    return f'"{name}"'


async def _fetch_version(url: str, timeout: float) -> str:
    """Connect to url and return the server's version string."""
    import asyncpg

    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=timeout)
    try:
        return str(await connection.fetchval("select version()"))
    finally:
        await connection.close()


def server_version(url: str, timeout: float = 5.0) -> str:
    """Return `select version()` of the server at url, raising PostgresError if unreachable."""
    try:
        return run_sync(_fetch_version(url, timeout))
    except Exception as exc:
        raise PostgresError(f"cannot connect to {redact(url)}: {exc}") from exc


def redact(url: str) -> str:
    """Return url with its password hidden, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _run(command: list[str], what: str) -> str:
    """Run a command, returning stdout, or raise PostgresError with its output."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise PostgresError(f"{what} failed: {' '.join(command)} exited {result.returncode}:\n{output}")
    return result.stdout


def _version_key(version: str) -> tuple[int, ...]:
    """Return a sortable key for a version like 15 or 9.6."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


def installed_versions() -> list[str]:
    """Return the installed PostgreSQL server major versions, highest last."""
    found = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    return sorted((Path(path).parent.parent.name for path in found), key=_version_key)


def _is_installed() -> bool:
    """Tell whether Debian's PostgreSQL server and cluster tools are installed."""
    return shutil.which("pg_lsclusters") is not None and bool(installed_versions())


def _install() -> None:
    """Install Debian's postgresql package with apt-get, logging to .local/postgres/apt.log."""
    if os.geteuid() != 0:
        raise PostgresError("PostgreSQL is not installed; run: sudo apt-get install -y postgresql")
    log_path = paths.postgres_dir() / "apt.log"
    log.info("installing PostgreSQL with apt-get (log: %s)", log_path)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with log_path.open("w") as out:
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
            code = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False
            ).returncode
            if code != 0:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
                raise PostgresError(f"{' '.join(command)} exited {code}; last lines of {log_path}:\n{tail}")


def clusters() -> list[Cluster]:
    """Return the clusters pg_lsclusters knows."""
    rows = _run(["pg_lsclusters", "-h"], "listing PostgreSQL clusters").splitlines()
    parsed = []
    for row in rows:
        fields = row.split()
        if len(fields) >= 7:
            version, name, port, status, owner, data_dir, log_file = fields[:7]
            parsed.append(Cluster(version, name, int(port), status, owner, data_dir, log_file))
    return parsed


def _pick_cluster(found: list[Cluster]) -> Cluster | None:
    """Prefer a cluster named main of the highest version."""
    ranked = sorted(found, key=lambda c: (c.name == "main", _version_key(c.version)))
    return ranked[-1] if ranked else None


def _ensure_cluster() -> Cluster:
    """Return a running local cluster, creating and starting one if needed."""
    cluster = _pick_cluster(clusters())
    if cluster is None:
        version = installed_versions()[-1]
        log.info("creating PostgreSQL cluster %s/main", version)
        _run(["pg_createcluster", version, "main"], "creating a PostgreSQL cluster")
        cluster = _pick_cluster(clusters())
        if cluster is None:
            raise PostgresError("pg_createcluster succeeded but pg_lsclusters shows no cluster")
    if not cluster.online:
        _configure(cluster)
        log.info("starting PostgreSQL cluster %s/%s", cluster.version, cluster.name)
        try:
            _run(["pg_ctlcluster", cluster.version, cluster.name, "start"], "starting PostgreSQL")
        except PostgresError as exc:
            raise PostgresError(f"{exc}\nlast lines of {cluster.log_file}:\n{_log_tail(cluster)}") from exc
    return cluster


#: Connections the local cluster takes. Debian's default of 100 runs out when test sessions share the
#: cluster (`make test` beside `make dev`, or beside another checkout's tests): every service a test
#: starts keeps a pool (api-gateway's is 20).
MAX_CONNECTIONS = 400


def _configure(cluster: Cluster) -> None:
    """Set this checkout's server settings in the cluster's `conf.d` (read when it starts).

    Only a cluster about to be started is configured: one already running is shared, never restarted.
    """
    conf_d = Path("/etc/postgresql") / cluster.version / cluster.name / "conf.d"
    if not conf_d.is_dir() or os.geteuid() != 0:
        return
    (conf_d / "paysync-dev.conf").write_text(
        f"# Written by paysync-dev (tools/paysync-dev/src/paysync_dev/postgres.py)\n"
        f"max_connections = {MAX_CONNECTIONS}\n"
    )


def _log_tail(cluster: Cluster, lines: int = 20) -> str:
    """Return the end of the cluster's server log."""
    try:
        with open(cluster.log_file, encoding="utf-8", errors="replace") as handle:
            return "\n".join(handle.read().splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read: {exc})"


def _as_postgres(command: list[str]) -> list[str]:
    """Return command run as the postgres OS user (peer authentication)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return ["sudo", "-n", "-u", "postgres", *command]


def _psql(cluster: Cluster, sql: str, database: str = "postgres") -> str:
    """Run one SQL statement as the postgres superuser and return its unaligned output."""
    command = [
        "psql",
        "-X",
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-p",
        str(cluster.port),
        "-d",
        database,
        "-c",
        sql,
    ]
    return _run(_as_postgres(command), "psql as postgres").strip()


def _ensure_role_and_database(cluster: Cluster) -> None:
    """Create or reset the paysync role and create the paysync database if missing."""
    role_exists = _psql(cluster, f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'") == "1"  # noqa: S608 - constants of this module, or a literal with its quotes doubled
    verb = "ALTER" if role_exists else "CREATE"
    _psql(cluster, f"{verb} ROLE {ROLE} WITH LOGIN CREATEDB PASSWORD '{PASSWORD}'")
    if _psql(cluster, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'") != "1":  # noqa: S608 - constants of this module, or a literal with its quotes doubled
        _psql(cluster, f"CREATE DATABASE {DATABASE} OWNER {ROLE}")


def local_url(port: int) -> str:
    """Return the URL of the paysync database on a local cluster port.

    Without TLS: Debian's cluster offers it (`ssl = on`, a snakeoil certificate) and asyncpg takes it
    when offered, which on loopback protects nothing and cost ~40 µs of the client's CPU and ~17 µs
    of the server's on every round trip (bench/README.md, "PostgreSQL on loopback without TLS").
    """
    return f"postgresql+asyncpg://{ROLE}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}?ssl=disable"


def ensure_postgres() -> str:
    """Return a working database URL: $PAYSYNC_DATABASE_URL, else the local packaged cluster."""
    override = os.environ.get(DATABASE_URL_ENV)
    if override:
        server_version(override)
        return override
    if not _is_installed():
        _install()
    cluster = _ensure_cluster()
    url = local_url(cluster.port)
    try:
        server_version(url)
        return url
    except PostgresError:
        log.info("creating role and database %s on cluster %s/%s", ROLE, cluster.version, cluster.name)
    _ensure_role_and_database(cluster)
    server_version(url)
    return url


async def _execute(url: str, sql: str) -> None:
    """Run one statement outside a transaction on the server at url."""
    import asyncpg

    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def create_database(name: str, base_url: str | None = None, template: str | None = None) -> str:
    """Create database name on base_url's server (default: ensure_postgres()); return its URL."""
    base = base_url or ensure_postgres()
    sql = f"CREATE DATABASE {_quote_identifier(name)}"
    if template:
        sql += f" TEMPLATE {_quote_identifier(template)}"
    try:
        run_sync(_execute(base, sql))
    except Exception as exc:
        raise PostgresError(f"cannot create database {name} on {redact(base)}: {exc}") from exc
    return with_database(base, name)


def drop_database(name: str, base_url: str | None = None) -> None:
    """Drop database name on the server of base_url, disconnecting its sessions."""
    base = base_url or ensure_postgres()
    # Not `WITH (FORCE)`: it refuses when an autovacuum worker (a superuser's process) is in the
    # database. Our own sessions are ended here; a plain DROP asks autovacuum to leave by itself.
    literal = name.replace("'", "''")
    disconnect = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"  # noqa: S608 - constants of this module, or a literal with its quotes doubled
        f" WHERE datname = '{literal}' AND pid <> pg_backend_pid() AND usename = current_user"
    )
    try:
        run_sync(_execute(base, disconnect))
        run_sync(_execute(base, f"DROP DATABASE IF EXISTS {_quote_identifier(name)}"))
    except Exception as exc:
        raise PostgresError(f"cannot drop database {name} on {redact(base)}: {exc}") from exc


def stop_local() -> bool:
    """Stop the local packaged cluster if it runs; return whether it did."""
    if not _is_installed():
        return False
    cluster = _pick_cluster(clusters())
    if cluster is None or not cluster.online:
        return False
    _run(["pg_ctlcluster", cluster.version, cluster.name, "stop"], "stopping PostgreSQL")
    return True
