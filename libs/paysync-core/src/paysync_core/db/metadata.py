"""The metadata every paysync table belongs to, and the timestamp columns they share."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    func,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def created_at() -> Column:
    """`created_at`, set by the database when the row is inserted."""
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def updated_at() -> Column:
    """`updated_at`, set by the database on insert; writers set it on each update."""
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now())
