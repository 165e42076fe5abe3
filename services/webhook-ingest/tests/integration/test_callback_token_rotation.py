"""Rotating a tenant's M-Pesa callback token with the `paysync` CLI, while callbacks keep coming."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.mpesa import checkout_request_id, stk_callback
from paysync_dev.fixtures import create_tenant
from paysync_dev.service_fixtures import wait_until
from paysync_dev.simulator import NOWHERE

pytestmark = pytest.mark.integration


def set_callback_tokens(tenant_id: str, tokens: list[str], database_url: str, keys: str) -> None:
    """`paysync tenants set-credentials` with the M-Pesa credentials and these tokens, current first."""
    command = [
        str(Path(sys.executable).with_name("paysync")),
        "tenants",
        "set-credentials",
        tenant_id,
        "--mpesa-consumer-key",
        "ck_test",
        "--mpesa-consumer-secret",
        "cs_test",
        "--mpesa-shortcode",
        "174379",
        "--mpesa-passkey",
        "passkey_test",
        "--mpesa-api-base",
        NOWHERE,
    ]
    for token in tokens:
        command += ["--mpesa-callback-token", token]
    env = {"PAYSYNC_DATABASE_URL": database_url, "PAYSYNC_CREDENTIALS_KEYS": keys, "PATH": "/usr/bin:/bin"}
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)


async def test_old_and_new_tokens_both_work_during_a_rotation_and_the_old_one_stops_after(
    webhook_ingest, migrated_database, credentials_keys
) -> None:
    tenant = create_tenant(migrated_database, credentials_keys, gateways=("mpesa",))
    old, new = tenant.mpesa_callback_token, uuid.uuid4().hex

    async def status_on(token: str) -> int:
        callback = to_body(stk_callback(checkout_request_id=checkout_request_id(), result_code=0, amount=10))
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{webhook_ingest.url}/webhooks/{tenant.id}/mpesa/{token}",
                content=callback,
                headers={"Content-Type": "application/json"},
            )
        return response.status_code

    assert await status_on(old) == 200
    assert await status_on(new) == 401

    set_callback_tokens(tenant.id, [new, old], migrated_database, credentials_keys)
    await wait_until(lambda: _is(status_on(new), 200), 15, "the new token to be accepted")
    assert await status_on(old) == 200  # callbacks of pushes made before the rotation still count

    set_callback_tokens(tenant.id, [new], migrated_database, credentials_keys)
    await wait_until(lambda: _is(status_on(old), 401), 15, "the dropped token to be refused")
    assert await status_on(new) == 200


async def _is(status, expected: int) -> bool:
    return await status == expected
