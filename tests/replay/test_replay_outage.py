"""Which database failures a replay rides through (`paysync_cli.replay_outage`): an outage is tried again up
to the deadline, anything else fails at once. `test_replay.py` runs whole replays through a restart."""

from __future__ import annotations

import pickle

import pytest
from sqlalchemy.exc import DBAPIError

from paysync_cli.replay_outage import DatabaseRetry, DatabaseUnavailable


class _Answer(Exception):
    """What PostgreSQL answered, as the driver raises it (its SQLSTATE), under SQLAlchemy's wrapper."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def answered(sqlstate: str, message: str) -> DBAPIError:
    return DBAPIError("SELECT 1", None, _Answer(sqlstate, message), connection_invalidated=False)


class Failing:
    """Work that fails with each of `errors` in turn, then answers "done"; counts its tries."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.tries = 0

    async def __call__(self) -> str:
        self.tries += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


STARTING_UP = ("57P03", "the database system is starting up")


async def test_an_outage_is_tried_again_until_the_database_answers_and_the_operator_is_told() -> None:
    told: list[str] = []
    work = Failing(answered(*STARTING_UP), ConnectionRefusedError("connect call failed"))

    assert await DatabaseRetry(60, told.append)("reading a batch", work) == "done"

    assert work.tries == 3
    assert told[0].startswith(
        "the database does not answer (_Answer 57P03: the database system is starting up)"
    )
    assert "while reading a batch: trying again for up to 60s" in told[0]
    assert told[-1].startswith("the database answers again after")


@pytest.mark.parametrize(
    "error",
    [
        answered("42601", 'syntax error at or near "SELEC"'),
        answered("23505", "duplicate key value violates unique constraint"),
        answered("08P01", "bind message supplies 1 parameters, but 2 are needed"),
        ValueError("not a database failure at all"),
    ],
)
async def test_anything_but_an_outage_fails_at_once(error: Exception) -> None:
    told: list[str] = []
    work = Failing(error)

    with pytest.raises(type(error)):
        await DatabaseRetry(60, told.append)("reading a batch", work)

    assert work.tries == 1 and told == []


async def test_an_outage_past_the_deadline_stops_the_replay_saying_so_even_from_a_worker_process() -> None:
    work = Failing(*[answered(*STARTING_UP) for _ in range(100)])

    with pytest.raises(DatabaseUnavailable) as stopped:
        await DatabaseRetry(0.2, lambda message: None)("reading a batch", work)
    stopped.value.done = "It had read 10"

    assert 2 <= work.tries < 100
    said = str(stopped.value)
    assert said.startswith("the database did not answer for ")
    assert said.endswith(
        "(_Answer 57P03: the database system is starting up) while reading a batch. It had read 10"
    )
    assert str(pickle.loads(pickle.dumps(stopped.value))) == said  # as a dry run's worker sends it
