"""An M-Pesa callback's confirmation: nobody awaits its answer, so it ends as soon as the gateway's word is
published, whether or not the status-projector has applied it (no projector runs in this module)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from paysync_core import topics
from paysync_core.contracts import PaymentObservation, ReconcileReply
from paysync_core.db.schema import reconcile_checks, reconcile_requests
from paysync_dev.reconcile import confirm_request, paid_referral
from paysync_dev.service_fixtures import fetch, publish, wait_until
from paysync_dev.topic_reader import read_topic

pytestmark = pytest.mark.integration


async def test_a_callback_confirmation_ends_once_the_gateway_answer_is_published(
    sim, engine, start_reconciler, lost_webhooks_tenant, kafka_topics
):
    tenant = await lost_webhooks_tenant(("mpesa",))
    ref, pid = await paid_referral(engine, sim, tenant)
    # Ten minutes for the projector: an awaited check would still be waiting when this test gives up.
    await start_reconciler(scheduler_enabled="false", mpesa_schedule="3600", apply_wait_seconds=600)

    confirm = confirm_request(tenant.id, ref)
    await publish(kafka_topics, topics.RECONCILE_REQUESTS.name, tenant.id.encode(), confirm.to_bytes())

    async def stored() -> list:
        return await fetch(
            engine, select(reconcile_requests).where(reconcile_requests.c.request_id == confirm.request_id)
        )

    async def completed() -> bool:
        rows = await stored()
        return bool(rows) and rows[0].status == "completed"

    await wait_until(completed, 60, "the confirmation to be completed")
    # Daraja's answer is on the observations topic, for the projector to apply whenever it runs.
    observed = [
        PaymentObservation.from_bytes(r.value)
        for r in await read_topic(kafka_topics, topics.PAYMENT_OBSERVATIONS.name)
        if r.value and ref.encode() in r.value
    ]
    assert [(o.status, o.verified, o.source) for o in observed if o.source == "reconcile"] == [
        ("succeeded", True, "reconcile")
    ]
    # The payment needs no more scheduled queries, and the stored answer counts the query.
    check = await fetch(engine, select(reconcile_checks).where(reconcile_checks.c.payment_id == pid))
    assert check[0].done_at is not None and check[0].last_status == "succeeded"
    reply = ReconcileReply.model_validate((await stored())[0].reply)
    assert (reply.kind, reply.payments_checked, reply.gateway_errors) == ("confirm_callback", 1, 0)
