"""Engines and migrations for the shared database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, pool_size: int = 10, application_name: str = "paysync") -> AsyncEngine:
    """An asyncpg engine with a bounded pool and connections that are checked before use."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": application_name}},
    )


def alembic_config(url: str) -> Config:
    """Alembic configured for paysync's migrations and the given database."""
    # Imported here: alembic is a quarter of a second of CPU to import, which a process that only
    # connects (each of `paysync replay`'s worker processes) would pay on every start.
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database's schema up to `revision` (blocking; call from a thread in async code)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
