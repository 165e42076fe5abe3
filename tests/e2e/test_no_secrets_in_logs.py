"""No service's log holds a secret: the paths that log are driven, then every log file is grepped.

Drives, against the five services as processes: a forged and a genuine Stripe webhook, a signed
Paystack webhook, an M-Pesa payment whose callback the simulator sends to the tenant's token URL
(and the reconciler confirms with an STK Push Query, which uses the passkey and consumer secret),
callbacks with a wrong token and a malformed body on the real token path, a wrong and a right API
key, and a tenant whose credentials no configured key opens (a 500 logged with its stack trace).
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from cryptography.fernet import Fernet

from paysync_core.logging import token_fingerprint
from paysync_core.providers import sign_paystack
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.mpesa import checkout_request_id, stk_callback
from paysync_core.testing.builders.paystack import paystack_charge_success
from paysync_core.testing.builders.stripe import checkout_session, stripe_event
from paysync_dev.fixtures import create_tenant

from .test_stripe_payment_end_to_end import deliver, register, wait_for_status

pytestmark = pytest.mark.e2e

JSON = {"Content-Type": "application/json"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def secrets_of(tenant) -> dict[str, str]:
    """Every secret the tenant's requests and gateway calls use, by what it is."""
    stripe, paystack, mpesa = (tenant.account(p) for p in ("stripe", "paystack", "mpesa"))
    return {
        "API key": tenant.api_key,
        "Stripe webhook secret": tenant.stripe_webhook_secret,
        "Stripe secret key": stripe.secret_key,
        "Paystack secret key": paystack.secret_key,
        "M-Pesa callback token": tenant.mpesa_callback_token,
        "M-Pesa consumer secret": mpesa.consumer_secret,
        "M-Pesa passkey": mpesa.passkey,
    }


def test_no_log_line_of_any_service_holds_a_secret_it_was_given(
    stack, tenant, gateway_sim, migrated_database
) -> None:
    ingest, api = stack["webhook-ingest"].url, stack["api-gateway"].url
    callback_url = f"{ingest}/webhooks/{tenant.id}/mpesa/{tenant.mpesa_callback_token}"

    # Stripe: a forgery, then the genuine event of a registered payment, followed to the API.
    session_id = f"cs_test_{uuid.uuid4().hex}"
    stripe_payment = register(stack, tenant, session_id, f"job-{uuid.uuid4().hex[:8]}")
    session = checkout_session(id=session_id, amount_total=12500, currency="usd")
    event = stripe_event("checkout.session.completed", session)
    assert deliver(stack, tenant, event, secret="whsec_forged").status_code == 401
    assert deliver(stack, tenant, event).status_code == 200

    # Paystack, signed with the tenant's secret key.
    body = to_body(paystack_charge_success(reference=f"ref_{uuid.uuid4().hex}", amount=250_000))
    signed = {**JSON, "x-paystack-signature": sign_paystack(body, tenant.paystack_secret_key)}
    paystack = httpx.post(f"{ingest}/webhooks/{tenant.id}/paystack", content=body, headers=signed)
    assert paystack.status_code == 200

    # M-Pesa: the simulator calls back on the token URL; the reconciler confirms with an STK Push Query.
    account = tenant.account("mpesa").id
    push = gateway_sim.create_payment(account, kind="stk_push", amount_minor=15000, callback_url=callback_url)
    mpesa_payment = httpx.post(
        f"{api}/v1/payments",
        headers=bearer(tenant.api_key),
        json={
            "provider": "mpesa",
            "provider_ref": push.ref,
            "domain": "jobs",
            "entity_id": f"job-{uuid.uuid4().hex[:8]}",
            "amount_minor": 15000,
            "currency": "KES",
        },
    ).json()
    gateway_sim.pay(account, push.ref)
    callback = to_body(stk_callback(checkout_request_id=checkout_request_id(), result_code=0, amount=10))
    assert httpx.post(f"{callback_url}x", content=callback, headers=JSON).status_code == 401
    assert httpx.post(callback_url, content=b"{not json", headers=JSON).status_code == 400

    # API keys: a wrong one refused, the right one served.
    wrong_key = "psk_" + uuid.uuid4().hex
    assert httpx.get(f"{api}/v1/payments", headers=bearer(wrong_key)).status_code == 401
    assert httpx.get(f"{api}/v1/payments", headers=bearer(tenant.api_key)).status_code == 200

    # An error that is logged with its stack trace: credentials no configured key opens.
    locked = create_tenant(migrated_database, Fernet.generate_key().decode(), gateways=("mpesa",))
    locked_url = f"{ingest}/webhooks/{locked.id}/mpesa/{locked.mpesa_callback_token}"
    assert httpx.post(locked_url, content=callback, headers=JSON).status_code == 500

    assert wait_for_status(stack, tenant, stripe_payment["id"], "succeeded")["status"] == "succeeded"
    # Through the callback, the normalizer, the reconciler's STK Push Query and the projector: the
    # default bound (the stack's reconciler is new and sweeps every tenant that has payments meanwhile).
    confirmed = wait_for_status(stack, tenant, mpesa_payment["id"], "succeeded")
    assert confirmed["status"] == "succeeded"

    logs = {name: proc.log_path.read_text(errors="replace") for name, proc in stack.items()}
    secrets = {
        **secrets_of(tenant),
        "guessed API key": wrong_key,
        "near-miss callback token": f"{tenant.mpesa_callback_token}x",
        "locked tenant's callback token": locked.mpesa_callback_token,
    }
    leaks = [
        (what, service) for what, value in secrets.items() for service, text in logs.items() if value in text
    ]
    assert leaks == []
    # The grep reads the lines those requests wrote: what is not secret about them is there.
    ingest_log = logs["webhook-ingest"]
    assert f"/mpesa/[{token_fingerprint(tenant.mpesa_callback_token)}]" in ingest_log
    # The failed request's line, found by its token's fingerprint (a tenant id of random hex can hold
    # a digit run the phone-number mask hides, so the id itself is not a reliable marker).
    fingerprint = token_fingerprint(locked.mpesa_callback_token)
    failed = [line for line in ingest_log.splitlines() if fingerprint in line and "webhook.failed" in line]
    assert failed and "Traceback (most recent call last)" in failed[0]
    assert "<traceback object" not in "".join(logs.values())
