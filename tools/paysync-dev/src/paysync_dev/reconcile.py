"""What tests of the reconciler do from outside: register payments the way api-gateway does, ask
for a check over Kafka and wait for its reply, read the alerts about a tenant."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.contracts import Alert, ReconcileReply, ReconcileRequest
from paysync_dev.fixtures import TestTenant
from paysync_dev.payments import register_payment
from paysync_dev.service_fixtures import publish, unique
from paysync_dev.topic_reader import read_topic
from paysync_gateway_sim import SimulatorClient

#: Simulator faults that drop every webhook: the case the reconciler exists for.
LOST = {"webhooks": {"drop_ratio": 1.0}}


async def register(
    engine: AsyncEngine,
    tenant: str,
    provider: str,
    ref: str,
    *,
    domain: str | None = None,
    entity_id: str | None = None,
    amount_minor: int | None = 2000,
    currency: str | None = "USD",
) -> uuid.UUID:
    """A payment registered as api-gateway registers one (NOTIFY paysync_registered included); its id."""
    registered = await register_payment(
        engine,
        tenant,
        provider=provider,
        provider_ref=ref,
        domain=domain,
        entity_id=entity_id,
        amount_minor=amount_minor,
        currency=currency,
    )
    return registered.id


async def paid_referral(
    engine: AsyncEngine, sim: SimulatorClient, tenant: TestTenant, amount_minor: int = 5_000
) -> tuple[str, uuid.UUID]:
    """An M-Pesa push the customer paid at the simulator, registered for a referral as api-gateway
    registers one: (its CheckoutRequestID, the payment's id)."""
    account = tenant.account("mpesa").id
    ref = sim.create_payment(account, amount_minor=amount_minor).ref
    pid = await register(
        engine,
        tenant.id,
        "mpesa",
        ref,
        domain="referrals",
        entity_id=unique("ref"),
        amount_minor=amount_minor,
        currency="KES",
    )
    sim.pay(account, ref)
    return ref, pid


def check_request(tenant: str, kind: str, **fields: object) -> ReconcileRequest:
    """A check as api-gateway publishes it (`entity`, `bulk`, `payments`), its reply on the replies topic."""
    return ReconcileRequest(
        request_id=f"rr_{uuid.uuid4().hex}",
        tenant=tenant,
        kind=kind,
        reply_topic=topics.RECONCILE_REPLIES.name,
        requested_at=datetime.now(UTC),
        **fields,
    )


def confirm_request(tenant: str, ref: str) -> ReconcileRequest:
    """The confirmation of an unsigned M-Pesa callback as the normalizer asks for it: no reply topic."""
    return ReconcileRequest(
        request_id=f"confirm:{uuid.uuid4().hex}",
        tenant=tenant,
        kind="confirm_callback",
        provider="mpesa",
        refs=(ref,),
        requested_at=datetime.now(UTC),
        reason="The service request is processed.",
    )


async def ask(
    bootstrap: str, request: ReconcileRequest, timeout: float = 20.0
) -> tuple[ReconcileReply, float]:
    """Publish a request and wait for its reply on the replies topic; the reply and the seconds it took."""
    started = time.monotonic()
    await publish(bootstrap, topics.RECONCILE_REQUESTS.name, request.tenant.encode(), request.to_bytes())
    deadline = started + timeout
    while time.monotonic() < deadline:
        for record in await read_topic(bootstrap, topics.RECONCILE_REPLIES.name):
            if request.request_id.encode() in (record.value or b""):
                reply = ReconcileReply.from_bytes(record.value)
                if reply.request_id == request.request_id:
                    return reply, time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"no reply to {request.request_id} within {timeout}s")


async def alerts_of(bootstrap: str, tenant: str) -> list[Alert]:
    """Every alert on the alerts topic about one tenant."""
    records = await read_topic(bootstrap, topics.ALERTS.name)
    return [Alert.from_bytes(r.value) for r in records if r.key == tenant.encode()]
