"""A Buy Goods till payment, started, paid and confirmed through the simulator, ends succeeded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from paysync_core import topics
from paysync_core.contracts import ReconcileRequest
from paysync_core.db.schema import payments
from paysync_core.providers.clients import DarajaGatewayClient
from paysync_dev.fixtures import create_gateway_tenant
from paysync_dev.reconcile import LOST, register
from paysync_dev.service_fixtures import fetch, publish, unique, wait_until
from paysync_dev.simulator import simulator_credentials

pytestmark = pytest.mark.integration


async def test_a_buy_goods_till_payment_is_confirmed_succeeded(
    sim, engine, projector, start_reconciler, credentials_keys, kafka_topics
):
    # LOST: the callback is confirmed by a query, whatever it said.
    till = {"shortcode": "7654321", "till_number": "5123456"}  # the store number, and its till
    tenant = await create_gateway_tenant(
        engine, credentials_keys, sim, ("mpesa",), faults={"mpesa": LOST}, account_specs={"mpesa": till}
    )
    credentials = simulator_credentials(
        sim,
        tenant.accounts,
        stripe_webhook_secret=tenant.stripe_webhook_secret,
        callback_token=tenant.mpesa_callback_token,
    ).mpesa
    assert credentials is not None and credentials.till_number == "5123456"
    async with httpx.AsyncClient() as http:
        started = await DarajaGatewayClient(tenant.id, credentials, http).stk_push(
            amount_minor=2_500_00,
            phone="0708374149",
            account_reference="SHOP-9",
            description="Groceries",
            callback_base_url="https://paysync.example",
        )
    pid = await register(
        engine,
        tenant.id,
        "mpesa",
        started.provider_ref,
        domain="referrals",
        entity_id=unique("ref"),
        amount_minor=2_500_00,
        currency="KES",
    )
    sim.pay(tenant.account("mpesa").id, started.provider_ref)
    await start_reconciler(scheduler_enabled="false", mpesa_schedule="3600")

    # What the normalizer asks for when the till's callback arrives: a query to confirm it.
    confirm = ReconcileRequest(
        request_id=f"confirm:{uuid.uuid4().hex}",
        tenant=tenant.id,
        kind="confirm_callback",
        provider="mpesa",
        refs=(started.provider_ref,),
        requested_at=datetime.now(UTC),
        reason="The service request is processed.",
    )
    await publish(kafka_topics, topics.RECONCILE_REQUESTS.name, tenant.id.encode(), confirm.to_bytes())

    async def confirmed() -> bool:
        rows = await fetch(engine, select(payments.c.status).where(payments.c.id == pid))
        return rows[0].status == "succeeded"

    await wait_until(confirmed, 60, "the till payment to show succeeded")
