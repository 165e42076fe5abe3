"""A payment's answer built from its row without the model is, byte for byte, the model's JSON."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from paysync_api_gateway.service import payment_json, to_payment

_CREATED = datetime(2026, 12, 6, 20, 1, 2, 345678, tzinfo=UTC)


def row(**columns: object) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "provider": "stripe",
        "provider_ref": "cs_test_1",
        "aliases": ["pi_b", "pi_a"],
        "domain": "jobs",
        "entity_id": "job-1",
        "amount_minor": 2500,
        "currency": "USD",
        "status": "succeeded",
        "mode": "test",
        "amount_received_minor": 2500,
        "amount_refunded_minor": 0,
        "paid_at": _CREATED + timedelta(seconds=3),
        "flags": ("late",),
        "sequence": 4,
        "metadata": {"note": "é ✓", "n": [1, 0.1, 1e16, None, {"deep": True}]},
        "created_at": _CREATED,
        "updated_at": _CREATED,
        **columns,
    }


@pytest.mark.parametrize(
    "columns",
    [
        {},
        {"paid_at": None, "amount_received_minor": None, "mode": None, "aliases": None, "metadata": {}},
        {"created_at": datetime(2026, 1, 1, tzinfo=UTC)},  # no fraction of a second
        {"updated_at": datetime(2026, 1, 1, 0, 0, 0, 120, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))},
        {"paid_at": datetime(1, 1, 1, tzinfo=UTC), "domain": None, "entity_id": None, "currency": None},
    ],
)
def test_the_answer_is_the_model_s_json(columns: dict[str, object]) -> None:
    shown = row(**columns)
    expected = to_payment(shown).model_dump(mode="json")
    answer = payment_json(shown)
    assert json.dumps(answer, ensure_ascii=False) == json.dumps(expected, ensure_ascii=False)
