"""schemathesis against the running api-gateway with a real tenant: no 5xx, no status code the
OpenAPI document does not list, no answer that breaks its schema. Bounded: a few examples per route."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from paysync_dev.fixtures import TestTenant, create_tenant
from paysync_dev.service_fixtures import running, service_env
from paysync_dev.stack import ServiceProcess

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[4]

#: Routes left out, and why: the stream never ends; refreshes wait for a reconciler (none runs here).
SKIPPED = r"^/v1/(stream|payments/refresh|domains/[^/]+/[^/]+/payments/refresh)$"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_process(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The api-gateway as its own process, as deployed."""
    env = {
        **service_env(kafka_topics, migrated_database, credentials_keys),
        "PAYSYNC_PHONE_HASH_KEY": uuid.uuid4().hex,
        "PAYSYNC_API_GATEWAY_STREAM_TOKEN_SECRET": uuid.uuid4().hex,
    }
    with running("api-gateway", env, tmp_path_factory.mktemp("api-gateway") / "api-gateway.log") as process:
        yield process


@pytest.fixture(scope="module")
def shop(migrated_database: str, credentials_keys: str) -> TestTenant:
    """The tenant whose API key every generated request carries."""
    return create_tenant(migrated_database, credentials_keys)


#: The checked-in document: tests/docs/test_openapi.py proves it is the one the api-gateway serves.
#: Tenant routes only (`/admin/v1` takes the operator token).
schema = (
    schemathesis.openapi.from_path(ROOT / "docs" / "openapi" / "api-gateway.json")
    .include(path_regex=r"^/v1/")
    .exclude(path_regex=SKIPPED)
)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_its_document_says(case, api_process: ServiceProcess, shop: TestTenant) -> None:
    case.call_and_validate(base_url=api_process.url, headers=shop.auth, checks=CHECKS, timeout=30)
