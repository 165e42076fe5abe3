"""What the console needs of the API: its own origin may call `/v1`, and `/v1/stats` sums refunds."""

from __future__ import annotations

import httpx
import pytest

from paysync_core.domain.status import UnifiedStatus
from paysync_dev.fixtures import TestTenant, stripe_registration
from paysync_dev.payments import observation, publish_observations
from paysync_dev.service_fixtures import wait_until

pytestmark = pytest.mark.integration

#: The host the test client calls (`client_of` in conftest.py): a page served by this API has this origin.
OWN_ORIGIN = "http://api"


async def test_a_page_of_the_apis_own_origin_calls_it_and_a_page_elsewhere_still_cannot(
    client: httpx.AsyncClient, tenant: TestTenant
) -> None:
    # The tenant allows no web origin; the console (served by the API itself) still works, as the
    # browser says with Sec-Fetch-Site, or with an Origin naming the host it called.
    for headers in ({"Origin": OWN_ORIGIN}, {"Origin": OWN_ORIGIN, "Sec-Fetch-Site": "same-origin"}):
        body = stripe_registration()
        registered = await client.post("/v1/payments", json=body, headers=tenant.auth | headers)
        assert registered.status_code == 201, registered.text
        assert "access-control-allow-origin" not in registered.headers  # same origin: no CORS needed
        assert (await client.get("/v1/stats", headers=tenant.auth | headers)).status_code == 200
    for origin in ("https://evil.example", "http://api.evil.example", "https://api:8443"):
        refused = await client.post(
            "/v1/payments",
            json=stripe_registration(),
            headers=tenant.auth | {"Origin": origin, "Sec-Fetch-Site": "cross-site"},
        )
        assert refused.status_code == 403, origin
        assert refused.json()["error"] == "origin_not_allowed"
    listed = await client.get("/v1/payments", headers=tenant.auth)
    assert len(listed.json()["items"]) == 2, "a refused request registered nothing"


async def test_stats_sum_what_was_registered_received_and_refunded_by_currency(
    projector, client: httpx.AsyncClient, tenant: TestTenant, kafka_topics: str
) -> None:
    refs = []
    for amount, currency in [(5000, "USD"), (3000, "USD"), (700, "KES")]:
        body = stripe_registration(amount_minor=amount, currency=currency)
        assert (await client.post("/v1/payments", json=body, headers=tenant.auth)).status_code == 201
        refs.append((body["provider_ref"], amount, currency))
    (first, first_amount, _), (second, second_amount, _), _ = refs
    await publish_observations(
        kafka_topics,
        [
            observation(tenant=tenant.id, ref=first, amount=first_amount),
            observation(tenant=tenant.id, ref=second, amount=second_amount),
            observation(
                tenant=tenant.id,
                ref=second,
                status=UnifiedStatus.PARTIALLY_REFUNDED,
                minute=5,
                amount=second_amount,
                refunded=1200,
            ),
        ],
    )

    async def projected() -> bool:
        stats = (await client.get("/v1/stats", headers=tenant.auth)).json()
        return stats["by_status"] == {"succeeded": 1, "partially_refunded": 1, "pending": 1}

    await wait_until(projected, 60, "the payments paid and refunded")
    stats = (await client.get("/v1/stats", headers=tenant.auth)).json()
    assert stats["total"] == 3
    assert stats["by_currency"] == {
        "USD": {"registered_minor": 8000, "received_minor": 8000, "refunded_minor": 1200},
        "KES": {"registered_minor": 700, "received_minor": 0, "refunded_minor": 0},
    }
