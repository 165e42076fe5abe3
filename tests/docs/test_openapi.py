"""The checked-in OpenAPI documents (docs/openapi/) are what the services serve, and say the truth
about errors and authentication."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from paysync_dev import repo_tools

ROOT = Path(__file__).resolve().parents[2]


TOOL = repo_tools.load("openapi_docs.py")
FIX = "run `make openapi-docs` (.venv/bin/python tools/openapi_docs.py) and commit docs/openapi/"


def _checked_in(service: str) -> dict:
    return json.loads((ROOT / "docs" / "openapi" / f"{service}.json").read_text())


async def test_api_gateway_serves_the_checked_in_document() -> None:
    app = TOOL.SERVICES["api-gateway"]()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        served = await client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == _checked_in("api-gateway"), FIX


def test_webhook_ingest_document_is_the_checked_in_one() -> None:
    # webhook-ingest serves no document (gateways do not read one); the one its app builds is checked.
    assert TOOL.SERVICES["webhook-ingest"]().openapi() == _checked_in("webhook-ingest"), FIX


@pytest.mark.parametrize("service", sorted(TOOL.SERVICES))
def test_every_error_answer_is_the_one_error_shape(service: str) -> None:
    document = _checked_in(service)
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"error", "message"} and "problems" in problem["properties"]
    for path, operations in document["paths"].items():
        if not path.startswith(("/v1", "/admin", "/webhooks")):
            continue
        for method, operation in operations.items():
            answers = operation["responses"]
            assert {"400", "401", "500"} <= set(answers), (method, path)
            for code, answer in answers.items():
                if code.startswith(("4", "5")):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, code)


def test_the_api_gateway_names_its_two_security_schemes() -> None:
    document = _checked_in("api-gateway")
    assert set(document["components"]["securitySchemes"]) == {"TenantApiKey", "OperatorToken"}
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path.startswith("/v1"):
                assert operation["security"] == [{"TenantApiKey": []}], path
            elif path.startswith("/admin/v1"):
                assert operation["security"] == [{"OperatorToken": []}], path
