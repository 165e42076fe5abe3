"""Print a service's AsyncAPI 3.0 document, built by FastStream from the service's own broker.

Run `.venv/bin/python tools/asyncapi.py webhook-ingest` (or any service in `SERVICES`);
`tests/architecture/test_asyncapi.py` checks every channel carries its contract's schema.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet
from faststream.specification import AsyncAPI
from pydantic import SecretStr

from paysync_core.settings import CommonSettings

#: Service name -> (its package, its settings class).
SERVICES = {
    "webhook-ingest": ("paysync_webhook_ingest", "WebhookIngestSettings"),
    "status-projector": ("paysync_status_projector", "StatusProjectorSettings"),
    "reconciler": ("paysync_reconciler", "ReconcilerSettings"),
    "notifier": ("paysync_notifier", "NotifierSettings"),
    "api-gateway": ("paysync_api_gateway", "ApiGatewaySettings"),
}


@dataclass(frozen=True, slots=True)
class Channel:
    """One channel of a document: a topic a subscriber reads or a publisher writes, and its payload."""

    name: str
    address: str
    action: str  # "receive" (a subscriber) or "send" (a publisher)
    payload: str  # the schema's name: a contract class, or EmptyPayload for a subscriber reading bytes
    fields: frozenset[str]


def document(service: str) -> dict[str, Any]:
    """The service's AsyncAPI document, from the broker its `create_app` wires (nothing connects)."""
    package, settings_class = SERVICES[service]
    settings_type = getattr(importlib.import_module(f"{package}.settings"), settings_class)
    # Throwaway secrets: building the app needs them, the document never shows them.
    common = CommonSettings(
        credentials_keys=SecretStr(Fernet.generate_key().decode()), internal_token=SecretStr("x" * 32)
    )
    app = importlib.import_module(f"{package}.app").create_app(settings_type(common=common))
    spec = AsyncAPI(app.state.broker, title=f"paysync {service}", version="1")
    return spec.to_specification().to_jsonable()


def channels(doc: dict[str, Any]) -> list[Channel]:
    """Every channel of a document with the name and fields of its message's payload schema."""
    components = doc["components"]
    actions = {op["channel"]["$ref"].split("/")[-1]: op["action"] for op in doc["operations"].values()}
    found = []
    for name, channel in doc["channels"].items():
        for ref in channel["messages"].values():
            message = components["messages"][ref["$ref"].split("/")[-1]]
            payload = message["payload"]["$ref"].split("/")[-1]
            properties = components["schemas"][payload].get("properties", {})
            found.append(Channel(name, channel["address"], actions[name], payload, frozenset(properties)))
    return found


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SERVICES:
        sys.exit(f"usage: tools/asyncapi.py {{{','.join(SERVICES)}}}")
    print(json.dumps(document(sys.argv[1]), indent=2))
