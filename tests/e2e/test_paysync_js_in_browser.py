"""`paysync.js` in Debian's Chromium: tabs share one stream, a tab takes over when the leader closes,
and a page cut off from the stream (notifier stopped) says so and catches up by itself.

Against the five services as processes; status changes are made by the real pipeline (observations
to the projector, its relay, the notifier, api-gateway's `/v1/stream`). Streams are counted at the
notifier (`paysync_notifier_stream_clients{tenant}`) and in the browser's own request log.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from playwright.async_api import Page, expect

from paysync_dev.fixtures import TestTenant
from paysync_dev.service_fixtures import metric, publish_observation, stripe_paid, wait_until
from paysync_dev.stack import ServiceProcess

from .browsing import Browsing, logs_without, screenshot
from .test_stripe_payment_end_to_end import register, wait_for_status

pytestmark = pytest.mark.e2e

SLOW_MS = 60_000


async def open_demo(browsing: Browsing, stack: dict[str, ServiceProcess], tenant: TestTenant) -> Page:
    """A new tab of the paysync.js demo page, watching the tenant."""
    page = await browsing.page(f"{stack['api-gateway'].url}/console/watch")
    await page.get_by_label("Tenant API key").fill(tenant.api_key)
    await page.get_by_role("button", name="Watch").click()
    return page


async def paid(stack: dict[str, ServiceProcess], tenant: TestTenant, kafka_topics: str) -> str:
    """A new payment of the tenant, paid by a verified webhook's observation; its id."""
    session = f"cs_test_{uuid.uuid4().hex}"
    payment = await asyncio.to_thread(register, stack, tenant, session, f"job-{uuid.uuid4().hex[:8]}")
    await publish_observation(kafka_topics, stripe_paid(tenant.id, session))
    return payment["id"]


def shown(page: Page, payment_id: str):
    """The demo page's line of one payment."""
    return page.locator(f'li[data-payment-id="{payment_id}"]')


def streams_at_the_notifier(stack: dict[str, ServiceProcess], tenant: TestTenant) -> float:
    """The tenant's open streams, as the notifier counts them."""
    return metric(stack["notifier"].url, "paysync_notifier_stream_clients", tenant=tenant.id)


def stream_requests(browsing: Browsing) -> list[str]:
    """The URLs of every stream the browser opened."""
    return [url for url in browsing.urls if "/v1/stream?" in url]


async def test_two_tabs_share_one_stream_and_the_other_takes_over_when_the_leader_closes(
    stack: dict[str, ServiceProcess], tenant: TestTenant, browsing: Browsing, kafka_topics: str
) -> None:
    leader = await open_demo(browsing, stack, tenant)
    await expect(leader.locator("#connection")).to_have_text("Online", timeout=SLOW_MS)
    await expect(leader.locator("#role")).to_have_text("This tab holds the stream")
    follower = await open_demo(browsing, stack, tenant)
    await expect(follower.locator("#role")).to_have_text("Another tab holds the stream")
    await expect(follower.locator("#connection")).to_have_text("Online")

    first = await paid(stack, tenant, kafka_topics)
    for tab in (leader, follower):
        await expect(shown(tab, first)).to_have_attribute("data-status", "succeeded", timeout=SLOW_MS)
    assert len(stream_requests(browsing)) == 1, "one stream for both tabs"
    assert streams_at_the_notifier(stack, tenant) == 1
    await screenshot(leader, "helper-leader", secrets=(tenant.api_key,))
    await screenshot(follower, "helper-follower", secrets=(tenant.api_key,))

    await leader.close()
    await expect(follower.locator("#role")).to_have_text("This tab holds the stream", timeout=SLOW_MS)
    await expect(follower.locator("#connection")).to_have_text("Online", timeout=SLOW_MS)
    second = await paid(stack, tenant, kafka_topics)
    await expect(shown(follower, second)).to_have_attribute("data-status", "succeeded", timeout=SLOW_MS)
    opened = stream_requests(browsing)
    assert len(opened) == 2 and "last_event_id=" in opened[1], "the new leader resumed where the first left"

    async def one_stream_again() -> bool:  # the closed tab's stream was given back
        return streams_at_the_notifier(stack, tenant) == 1

    await wait_until(one_stream_again, 60, "one stream of the tenant at the notifier")
    await screenshot(follower, "helper-took-over", secrets=(tenant.api_key,))
    assert not [url for url in browsing.urls if tenant.api_key in url]
    logs_without([p.log_path for p in stack.values()], (tenant.api_key,))


async def test_with_the_notifier_stopped_the_console_shows_offline_and_catches_up_when_it_returns(
    stack: dict[str, ServiceProcess], tenant: TestTenant, browsing: Browsing, kafka_topics: str
) -> None:
    session = f"cs_test_{uuid.uuid4().hex}"
    during = (await asyncio.to_thread(register, stack, tenant, session, "job-gap"))["id"]
    page = await browsing.page(f"{stack['api-gateway'].url}/console")
    await page.get_by_label("Tenant API key").fill(tenant.api_key)
    await page.get_by_role("button", name="Sign in").click()
    connection = page.locator("#connection")
    await expect(connection).to_have_text("Online: live", timeout=SLOW_MS)
    await expect(page.locator(f'tr[data-payment-id="{during}"] .status')).to_have_text("pending")
    before = await paid(stack, tenant, kafka_topics)  # seen live: the page knows its stream position
    await expect(page.locator(f'tr[data-payment-id="{before}"] .status')).to_have_text(
        "succeeded", timeout=SLOW_MS
    )

    notifier = stack["notifier"]
    await asyncio.to_thread(notifier.stop)
    try:
        await expect(connection).to_have_text("Offline: reconnecting…", timeout=SLOW_MS)
        await publish_observation(kafka_topics, stripe_paid(tenant.id, session))  # paid while cut off
        assert (await asyncio.to_thread(wait_for_status, stack, tenant, during, "succeeded"))["status"] == (
            "succeeded"
        )
        await screenshot(page, "console-offline", secrets=(tenant.api_key,))
        await expect(page.locator(f'tr[data-payment-id="{during}"] .status')).to_have_text("pending")
    finally:
        notifier.start()
        await asyncio.to_thread(notifier.wait_ready, 120)

    await expect(connection).to_have_text("Online: live", timeout=SLOW_MS)
    await expect(page.locator(f'tr[data-payment-id="{during}"] .status')).to_have_text(
        "succeeded", timeout=SLOW_MS
    )
    assert "last_event_id=" in stream_requests(browsing)[-1], "the page resumed after the last event it had"
    await screenshot(page, "console-back-online", secrets=(tenant.api_key,))
    assert not [url for url in browsing.urls if tenant.api_key in url]
    logs_without([p.log_path for p in stack.values()], (tenant.api_key,))
