"""Which failures are the infrastructure's (the batch is redelivered) and which the record's (retried, then
dead-lettered): PostgreSQL's answers told apart by SQLSTATE, as asyncpg raises them and as SQLAlchemy
wraps them."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from paysync_core.dead_letters import is_outage


class _Translated(Exception):
    """What SQLAlchemy's asyncpg dialect raises for asyncpg's error: its SQLSTATE copied over."""

    def __init__(self, cause: asyncpg.PostgresError) -> None:
        super().__init__(str(cause))
        self.sqlstate = cause.sqlstate


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),
        (asyncpg.TooManyConnectionsError("sorry, too many clients already"), True),
        (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"), True),
        (asyncpg.ProtocolViolationError("bind message supplies 1 parameters, but 2 are needed"), False),
        (asyncpg.NotNullViolationError("null value in column"), False),
        (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), False),
    ],
)
def test_postgresql_answers_are_an_outage_by_sqlstate(error: asyncpg.PostgresError, outage: bool) -> None:
    assert is_outage(error) is outage
    wrapped = DBAPIError("SELECT 1", None, _Translated(error), connection_invalidated=False)
    assert is_outage(wrapped) is outage
