"""`GET /v1/stream` when the notifier behind it is down: a clear, retryable answer, and /readyz says so."""

from __future__ import annotations

import asyncio

import pytest

from paysync_dev.service_fixtures import service_env
from paysync_dev.stack import ServiceProcess, free_port

pytestmark = pytest.mark.integration


async def test_with_the_notifier_down_the_stream_answers_503_and_readyz_names_it(open_api, tenant) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with open_api(notifier_url=nowhere) as api:
        response = await api.get("/v1/stream", headers={"Authorization": f"Bearer {tenant.api_key}"})
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) > 0
        body = response.json()
        assert body["error"] == "stream_unavailable" and body["message"]
        assert "127.0.0.1" not in body["message"]

        ready = await api.get("/readyz")
        # Everything else still works: degraded, not taken out of service.
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["degraded"] == ["notifier"]
        assert ready.json()["checks"]["notifier"].startswith("error")
        assert ready.json()["checks"]["database"] == "ok"


async def test_an_internal_token_the_notifier_refuses_is_a_503_and_shows_in_readyz(
    open_api, tenant, kafka_topics, migrated_database, credentials_keys, tmp_path, monkeypatch
) -> None:
    shared = service_env(kafka_topics, migrated_database, credentials_keys)
    env = {**shared, "PAYSYNC_INTERNAL_TOKEN": "theirs"}
    notifier = ServiceProcess("notifier", free_port(), env, tmp_path / "notifier.log")
    notifier.start()
    try:
        await asyncio.to_thread(notifier.wait_ready)
        monkeypatch.setenv("PAYSYNC_INTERNAL_TOKEN", "ours")
        async with open_api(notifier_url=notifier.url) as api:
            response = await api.get("/v1/stream", headers={"Authorization": f"Bearer {tenant.api_key}"})
            assert response.status_code == 503 and response.headers["retry-after"]
            assert response.json()["error"] == "stream_unavailable"
            ready = (await api.get("/readyz")).json()
            assert ready["status"] == "degraded" and ready["checks"]["notifier"] == "error: NotifierRefusedUs"
    finally:
        notifier.stop()
