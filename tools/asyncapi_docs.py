"""Write the AsyncAPI document of every Kafka topic paysync uses to `docs/asyncapi.json`.

Everything comes from `paysync_core.topics` (name, partitions, configs, key) and the pydantic
contracts (message schemas); only who sends and who receives each topic is stated here, in
`OPERATIONS`. Run `.venv/bin/python tools/asyncapi_docs.py` (or `make asyncapi-docs`) after changing
a topic or a contract; `tests/docs/test_asyncapi.py` fails while the checked-in document differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from paysync_core import topics
from paysync_core.topics import TopicSpec

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "asyncapi.json"

#: Which service sends (produces) and receives (consumes) each topic; `*.dlq` topics are listed by
#: `_dead_letter_operations`. docs/topics.md says the same in words, with the consumer groups.
OPERATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    topics.WEBHOOKS_RAW.name: {
        "send": ("webhook-ingest",),
        "receive": ("webhook-ingest-normalizer", "paysync-cli"),
    },
    topics.PAYMENT_OBSERVATIONS.name: {
        "send": ("webhook-ingest-normalizer", "reconciler", "api-gateway", "paysync-cli"),
        "receive": ("status-projector", "paysync-cli"),
    },
    topics.RECONCILE_TICKS.name: {
        "send": ("reconciler", "api-gateway", "paysync-cli"),
        "receive": ("reconciler",),
    },
    topics.RECONCILE_REQUESTS.name: {
        "send": ("api-gateway", "webhook-ingest-normalizer"),
        "receive": ("reconciler",),
    },
    topics.RECONCILE_REPLIES.name: {"send": ("reconciler",), "receive": ("api-gateway",)},
    topics.PAYMENT_STATUS.name: {"send": ("status-projector",), "receive": ("notifier",)},
    topics.ALERTS.name: {"send": ("status-projector", "reconciler", "notifier"), "receive": ("notifier",)},
}


def _channel_id(name: str) -> str:
    return name.removeprefix("paysync.").replace(".", "_").replace("-", "_")


def _message_id(spec: TopicSpec[Any]) -> str:
    return spec.message.__name__


def _channel(spec: TopicSpec[Any]) -> dict[str, Any]:
    message = _message_id(spec)
    return {
        "address": spec.name,
        "title": spec.name,
        "description": spec.description,
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        "bindings": {
            "kafka": {
                "topic": spec.name,
                "partitions": spec.partitions,
                "topicConfiguration": _topic_configuration(spec.configs),
                "bindingVersion": "0.5.0",
            }
        },
    }


def _topic_configuration(configs: dict[str, str]) -> dict[str, Any]:
    # The Kafka binding knows these configs by name; their values are typed there.
    typed: dict[str, Any] = {}
    for key, value in sorted(configs.items()):
        if key == "cleanup.policy":
            typed[key] = value.split(",")
        elif key in {"retention.ms", "max.message.bytes"}:
            typed[key] = int(value)
    return typed


def _message(spec: TopicSpec[Any]) -> dict[str, Any]:
    return {
        "name": _message_id(spec),
        "title": _message_id(spec),
        "summary": (spec.message.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{_message_id(spec)}"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": spec.key_description},
                "bindingVersion": "0.5.0",
            }
        },
    }


def _operations(specs: tuple[TopicSpec[Any], ...]) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for spec in specs:
        sides = OPERATIONS.get(spec.name) or _dead_letter_operations(spec)
        for action in ("send", "receive"):
            for service in sides[action]:
                operations[f"{service}_{action}s_{_channel_id(spec.name)}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{_channel_id(spec.name)}"},
                    "summary": f"{service} {action}s {spec.name}",
                    "messages": [
                        {"$ref": f"#/channels/{_channel_id(spec.name)}/messages/{_message_id(spec)}"}
                    ],
                }
    return operations


def _dead_letter_operations(spec: TopicSpec[Any]) -> dict[str, tuple[str, ...]]:
    source = spec.name.removesuffix(".dlq")
    receivers = OPERATIONS[source]["receive"]
    # Whoever fails to process a source record parks it; operators read and redrive them.
    return {"send": receivers, "receive": ("paysync-cli", "api-gateway")}


def _schemas(specs: tuple[TopicSpec[Any], ...]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for spec in specs:
        schema = spec.message.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas[name] = definition
        schemas[_message_id(spec)] = schema
    return dict(sorted(schemas.items()))


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic in `paysync_core.topics.ALL`."""
    specs = topics.ALL
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "paysync topics",
            "version": "1",
            "description": "Every Kafka topic paysync uses: its records (JSON of the pydantic contracts in "
            "libs/paysync-core/src/paysync_core/contracts/), keys and partitions. Generated by "
            "tools/asyncapi_docs.py from libs/paysync-core/src/paysync_core/topics.py; see docs/topics.md.",
        },
        "defaultContentType": "application/json",
        "channels": {_channel_id(s.name): _channel(s) for s in specs},
        "operations": _operations(specs),
        "components": {
            "messages": {_message_id(s): _message(s) for s in specs},
            "schemas": _schemas(specs),
        },
    }


def render(doc: dict[str, Any]) -> str:
    """The checked-in form of the document."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Write the document."""
    OUT.write_text(render(document()))
    print(f"wrote {OUT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
