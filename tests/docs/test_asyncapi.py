"""The checked-in AsyncAPI document (docs/asyncapi.json) is what the topics and contracts say."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from paysync_core import topics
from paysync_core.contracts import Provider, ReconcileTick
from paysync_dev import repo_tools

ROOT = Path(__file__).resolve().parents[2]
FIX = "run `make asyncapi-docs` (.venv/bin/python tools/asyncapi_docs.py) and commit docs/asyncapi.json"


TOOL = repo_tools.load("asyncapi_docs.py")


def _checked_in() -> dict[str, Any]:
    return json.loads((ROOT / "docs" / "asyncapi.json").read_text())


def test_the_checked_in_document_is_what_the_code_says() -> None:
    assert TOOL.document() == _checked_in(), FIX


def test_a_changed_contract_makes_the_document_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the check above stands on: a topic that changes in code no longer matches the file.
    monkeypatch.setattr(topics, "ALL", (*topics.ALL[:-1],))
    assert TOOL.document() != _checked_in()


@pytest.mark.parametrize("spec", topics.ALL, ids=lambda s: s.name)
def test_every_topic_is_a_channel_with_its_partitions_key_and_who_uses_it(
    spec: topics.TopicSpec[Any],
) -> None:
    document = _checked_in()
    channel = next(c for c in document["channels"].values() if c["address"] == spec.name)
    assert channel["bindings"]["kafka"]["partitions"] == spec.partitions
    message = document["components"]["messages"][spec.message.__name__]
    assert message["bindings"]["kafka"]["key"]["description"] == spec.key_description
    actions = {
        op["action"]
        for op in document["operations"].values()
        if op["channel"]["$ref"].endswith(
            "/" + next(k for k, c in document["channels"].items() if c["address"] == spec.name)
        )
    }
    assert actions == {"send", "receive"}, f"{spec.name}: say who sends and receives it in OPERATIONS"


def test_a_record_as_producers_write_it_matches_its_message_schema() -> None:
    document = _checked_in()
    schemas = document["components"]["schemas"]
    tick = ReconcileTick(
        tick_id="t-1", tenant="acme", provider=Provider.STRIPE, scheduled_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    record = json.loads(topics.RECONCILE_TICKS.message.model_validate(tick).model_dump_json())
    schema = {**schemas["ReconcileTick"], "components": {"schemas": schemas}}
    Draft202012Validator.check_schema(schema)
    errors = list(Draft202012Validator(schema).iter_errors(record))
    assert not errors, errors
    broken = {**record, "provider": "paypal"}
    assert list(Draft202012Validator(schema).iter_errors(broken)), (
        "the schema must refuse an unknown provider"
    )
