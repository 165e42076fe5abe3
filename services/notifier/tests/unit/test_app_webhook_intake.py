"""The app-webhook intake's batches: one failing change is dead-lettered alone, the rest taken in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy.exc import OperationalError

from paysync_core import topics
from paysync_core.contracts import DeadLetter, PaymentStatusChanged
from paysync_dev.live_stream import status_change
from paysync_notifier.hooks_handlers import ChangeIntake


class Hooks:
    """Takes changes in; a batch holding `refused` fails as an insert would for a bad row."""

    def __init__(self, refused: str | None = None, outage: bool = False) -> None:
        self.refused, self.outage = refused, outage
        self.taken: list[str] = []

    async def take_in(self, changes: Sequence[PaymentStatusChanged]) -> None:
        if self.outage:
            raise OperationalError("INSERT", {}, ConnectionError("database away"))
        if any(c.event_id == self.refused for c in changes):
            raise ValueError("a row the database refuses")
        self.taken.extend(c.event_id for c in changes)


class DeadLetters:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    async def forward(self, _key: bytes | None, letter: bytes) -> None:
        self.values.append(DeadLetter.from_bytes(letter).value)


def records(values: Sequence[bytes]) -> list[ConsumerRecord]:
    name = topics.PAYMENT_STATUS.name
    return [ConsumerRecord(name, 0, n, 0, 0, None, v, None, 0, len(v), ()) for n, v in enumerate(values)]


def intake(hooks: Hooks, letters: DeadLetters) -> ChangeIntake:
    return ChangeIntake(cast(Any, hooks), cast(Any, letters))


async def test_a_change_the_batch_insert_refuses_is_dead_lettered_and_the_others_taken_in() -> None:
    changes = [status_change("t1") for _ in range(4)]
    hooks, letters = Hooks(refused=changes[2].event_id), DeadLetters()

    await intake(hooks, letters).take_in(records([c.to_bytes() for c in changes]))

    assert hooks.taken == [c.event_id for i, c in enumerate(changes) if i != 2]
    assert letters.values == [changes[2].to_bytes()]


async def test_a_record_that_does_not_parse_is_dead_lettered_and_the_batch_taken_in_at_once() -> None:
    changes = [status_change("t1") for _ in range(3)]
    hooks, letters = Hooks(), DeadLetters()

    await intake(hooks, letters).take_in(
        records([changes[0].to_bytes(), b"{not json", changes[1].to_bytes()])
    )

    assert hooks.taken == [changes[0].event_id, changes[1].event_id]
    assert letters.values == [b"{not json"]


async def test_an_outage_fails_the_batch_for_redelivery_and_dead_letters_nothing() -> None:
    hooks, letters = Hooks(outage=True), DeadLetters()

    with pytest.raises(OperationalError):
        await intake(hooks, letters).take_in(records([status_change("t1").to_bytes()]))

    assert letters.values == []
