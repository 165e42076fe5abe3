"""Stream tokens: a browser's `EventSource` (no headers) reads `/v1/stream?token=…`, and only that route."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from paysync_core.contracts import PaymentStatusChanged
from paysync_core.kafka import DurableProducer
from paysync_dev.fixtures import TestTenant, create_tenant
from paysync_dev.live_stream import SseListener, publish_status_changes, status_change
from paysync_dev.service_fixtures import wait_until
from paysync_dev.stack import ServiceProcess

pytestmark = pytest.mark.e2e


def bearer(tenant: TestTenant) -> dict[str, str]:
    """The tenant's API key, as its backend sends it."""
    return {"Authorization": f"Bearer {tenant.api_key}"}


async def issue(client: httpx.AsyncClient, api: str, tenant: TestTenant, **scope: object) -> str:
    """A stream token of `tenant` (its backend asks; the browser gets only the token)."""
    answer = await client.post(f"{api}/v1/stream-tokens", headers=bearer(tenant), json=scope)
    assert answer.status_code == 201, answer.text
    assert answer.json()["expires_at"]
    return answer.json()["token"]


def browser(client: httpx.AsyncClient, api: str, token: str) -> SseListener:
    """What `new EventSource("/v1/stream?token=…")` does: no Authorization, no other header."""
    return SseListener(client, f"{api}/v1/stream?token={token}", {}).start()


async def test_a_browser_with_a_stream_token_gets_its_tenants_events_and_a_scoped_one_only_its_entitys(
    stack: dict[str, ServiceProcess],
    tenant: TestTenant,
    migrated_database: str,
    credentials_keys: str,
    gateway_sim,
    kafka_topics: str,
) -> None:
    other = create_tenant(migrated_database, credentials_keys, sim=gateway_sim)
    api = stack["api-gateway"].url
    producer = DurableProducer(kafka_topics, client_id="paysync-tests")
    await producer.start()
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
        whole = browser(client, api, await issue(client, api, tenant))
        scoped_token = await issue(client, api, tenant, domain="jobs", entity_id="job-42")
        scoped = browser(client, api, scoped_token)
        theirs = browser(client, api, await issue(client, api, other))
        try:
            for listener in (whole, scoped, theirs):
                await listener.opened.wait()
                assert listener.status_code == 200, listener.error
            of_entity = status_change(tenant.id, domain="jobs", entity_id="job-42")
            elsewhere = status_change(tenant.id, domain="jobs", entity_id="job-7")
            other_tenants = status_change(other.id, domain="jobs", entity_id="job-42")
            await publish_status_changes(producer, [of_entity, elsewhere, other_tenants])

            async def all_arrived() -> bool:
                return len(whole.events) >= 2 and len(scoped.events) >= 1 and len(theirs.events) >= 1

            await wait_until(all_arrived, 30, "each browser's events")
            marker = status_change(tenant.id, domain="jobs", entity_id="job-42")  # nothing else is on its way
            await publish_status_changes(producer, [marker])
            await wait_until(lambda: _arrived(scoped, marker.payment_id), 30, "the marker")
        finally:
            await producer.stop()
            for listener in (whole, scoped, theirs):
                await listener.stop()
    assert whole.payment_ids() >= {of_entity.payment_id, elsewhere.payment_id}
    assert other_tenants.payment_id not in whole.payment_ids()
    assert [e["data"]["payment_id"] for e in scoped.events] == [of_entity.payment_id, marker.payment_id]
    assert theirs.payment_ids() == {other_tenants.payment_id}
    assert scoped_token not in stack["api-gateway"].log_path.read_text(errors="replace")


async def _arrived(listener: SseListener, payment_id: str) -> bool:
    return payment_id in listener.payment_ids()


async def test_an_expired_altered_or_other_tenants_token_gets_401_in_the_error_shape(
    stack: dict[str, ServiceProcess],
    tenant: TestTenant,
    migrated_database: str,
    credentials_keys: str,
    gateway_sim,
) -> None:
    other = create_tenant(migrated_database, credentials_keys, sim=gateway_sim)
    api = stack["api-gateway"].url
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
        # (That tokens work while they live is the test above; this one waits for one to die.)
        short = await issue(client, api, tenant, ttl_seconds=1)

        async def answer(token: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
            """The status, and the body unless it is a stream (which would never end)."""
            url, params = f"{api}/v1/stream", {"token": token}
            async with client.stream("GET", url, params=params, headers=headers or {}) as response:
                body = json.loads(await response.aread()) if response.status_code != 200 else {}
                return response.status_code, body

        async def refused(token: str, headers: dict[str, str] | None = None) -> None:
            status, body = await answer(token, headers)
            assert status == 401, body
            assert body["error"] == "unauthenticated" and body["message"]

        async def expired() -> bool:
            status, body = await answer(short)
            return status == 401 and "expired" in body["message"]

        await wait_until(expired, 30, "the one-second token to be refused")
        good = await issue(client, api, tenant)
        await refused(_claiming(good, other.id))  # its tenant changed: the signature no longer fits
        await refused(good + "x")
        await refused("pst_not-a-token")
        await refused(good, bearer(other))  # another tenant's key with this tenant's token

        # Only /v1/stream takes a token, and only as a query parameter.
        elsewhere = await client.get(f"{api}/v1/payments", params={"token": good}, headers=bearer(tenant))
        assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "unknown_parameter"
        as_key = {"Authorization": f"Bearer {good}"}
        assert (await client.get(f"{api}/v1/payments", headers=as_key)).status_code == 401
        async with client.stream("GET", f"{api}/v1/stream", headers=as_key) as as_key_answer:
            assert as_key_answer.status_code == 401


def _claiming(token: str, tenant: str) -> str:
    """`token` with its tenant replaced and its signature kept: what a tamperer would try."""
    payload, _, mac = token.removeprefix("pst_").partition(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps(claims | {"t": tenant}).encode()).rstrip(b"=").decode()
    return f"pst_{forged}.{mac}"


async def test_stream_token_requests_are_checked(
    stack: dict[str, ServiceProcess], tenant: TestTenant
) -> None:
    url = f"{stack['api-gateway'].url}/v1/stream-tokens"
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.post(url, json={})).status_code == 401
        cases = [({"entity_id": "job-1"}, "entity_id"), ({"ttl_seconds": 10**6}, "ttl_seconds")]
        for body, field in cases:
            answer = await client.post(url, headers=bearer(tenant), json=body)
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"] == "invalid_request"
            assert [p["field"] for p in answer.json()["problems"]] == [field]


async def test_a_new_event_source_resumes_after_the_id_it_passes_as_last_event_id(
    stack: dict[str, ServiceProcess], tenant: TestTenant, kafka_topics: str
) -> None:
    """A browser tab taking over a stream opens a new `EventSource`, which cannot send `Last-Event-ID`:
    `?last_event_id=` resumes it after that event, as the header does."""
    api = stack["api-gateway"].url
    producer = DurableProducer(kafka_topics, client_id="paysync-tests")
    await producer.start()
    listeners: list[SseListener] = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
        try:
            first = browser(client, api, await issue(client, api, tenant))
            listeners.append(first)
            await first.opened.wait()
            seen = await _published_and_seen(producer, first, status_change(tenant.id))
            await first.stop()  # the tab closes
            [position] = [e["id"] for e in first.events if e["data"]["payment_id"] == seen.payment_id]
            missed = [status_change(tenant.id) for _ in range(2)]  # made while no tab listened
            await publish_status_changes(producer, missed)
            token = await issue(client, api, tenant)
            resumed = SseListener(client, f"{api}/v1/stream?token={token}&last_event_id={position}", {})
            listeners.append(resumed.start())
            await wait_until(
                lambda: _all_arrived(resumed, [c.payment_id for c in missed]), 30, "the missed changes"
            )
            # Opened once the notifier's feed has read the missed changes (resumed got them from it): a
            # stream with no position starts after what the feed has read, not where the topic ends.
            fresh = browser(client, api, token)  # without a position a stream starts at the end
            listeners.append(fresh)
            await fresh.opened.wait()
            marker = await _published_and_seen(producer, fresh, status_change(tenant.id))
        finally:
            await producer.stop()
            for listener in listeners:
                await listener.stop()
    assert resumed.status_code == 200, resumed.error
    assert {e["data"]["payment_id"] for e in resumed.events[:2]} == {c.payment_id for c in missed}
    assert seen.payment_id not in resumed.payment_ids()
    assert fresh.payment_ids() == {marker.payment_id}


async def _all_arrived(listener: SseListener, payment_ids: list[str]) -> bool:
    return set(payment_ids) <= listener.payment_ids()


async def _published_and_seen(
    producer: DurableProducer, listener: SseListener, change: PaymentStatusChanged
) -> PaymentStatusChanged:
    """`change`, published, once `listener` has received it."""
    await publish_status_changes(producer, [change])
    await wait_until(lambda: _arrived(listener, change.payment_id), 30, f"{change.payment_id} on the stream")
    return change
