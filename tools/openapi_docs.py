"""Write the OpenAPI documents of the HTTP services to `docs/openapi/<service>.json`.

Run `.venv/bin/python tools/openapi_docs.py` (or `make openapi-docs`) after changing a route;
`tests/docs/test_openapi.py` fails while a checked-in document differs from what the service serves.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from fastapi import FastAPI

from paysync_api_gateway.app import create_app as api_gateway
from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_core.settings import CommonSettings
from paysync_webhook_ingest.app import create_app as webhook_ingest
from paysync_webhook_ingest.settings import WebhookIngestSettings

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "openapi"


def _common() -> CommonSettings:
    # A throwaway key: webhook-ingest refuses to start without one; nothing is encrypted here.
    return CommonSettings(credentials_keys=Fernet.generate_key().decode())


#: Each HTTP service and how to build its app (not started: building it connects to nothing).
SERVICES: dict[str, Callable[[], FastAPI]] = {
    "api-gateway": lambda: api_gateway(ApiGatewaySettings(common=_common())),
    "webhook-ingest": lambda: webhook_ingest(WebhookIngestSettings(common=_common())),
}


def render(document: dict[str, Any]) -> str:
    """The checked-in form of a document."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Write every service's document."""
    OUT.mkdir(parents=True, exist_ok=True)
    for name, build in SERVICES.items():
        path = OUT / f"{name}.json"
        path.write_text(render(build().openapi()))
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
