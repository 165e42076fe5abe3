"""A phase's webhooks: payments made and paid at the simulator, registered in paysync, signed, as targets.

Every webhook is a distinct payment's settling webhook (Stripe `checkout.session.completed`, Paystack
`charge.success`, M-Pesa's STK callback), the simulator's own body and signature (`sim_server.py`),
its payment registered first as api-gateway registers one. Gateways are mixed in the given shares and
tenants taken in turn, each in a seeded random order, so every second of the run has the same mix.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from stack import Stack

from paysync_core.domain.ids import payment_id_for
from paysync_dev.payments import register_payments

#: Per gateway: amount (minor units), currency, and the built-in domain its payments belong to.
PAYMENTS = {
    "stripe": (2000, "USD", "jobs"),
    "paystack": (500_000, "NGN", "bookings"),
    "mpesa": (10_000, "KES", "referrals"),
}


@dataclass(frozen=True)
class Webhook:
    """One signed webhook of one registered payment; `index` is its place in the targets file."""

    index: int
    tenant: int
    provider: str
    ref: str
    payment_id: str
    domain: str
    entity_id: str
    url: str
    body: str  # base64
    headers: dict[str, str]


def parse_mix(spec: str) -> dict[str, float]:
    """`stripe=45,paystack=45,mpesa=10` as shares; ValueError for an unknown gateway or no weight."""
    mix = {}
    for part in spec.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in PAYMENTS:
            raise ValueError(f"unknown gateway {name!r} in the mix (stripe, paystack, mpesa)")
        mix[name.strip()] = float(weight)
    if sum(mix.values()) <= 0:
        raise ValueError("the mix has no weight")
    return mix


async def prepare(
    stack: Stack, engine: AsyncEngine, count: int, mix: dict[str, float], seed: int
) -> list[Webhook]:
    """`count` webhooks over the stack's tenants in the mix's shares, their payments registered."""
    rng = random.Random(seed)
    providers = rng.choices(list(mix), weights=list(mix.values()), k=count)
    owners = [n % len(stack.tenants) for n in range(count)]
    rng.shuffle(owners)
    pools: dict[tuple[int, str], list[dict]] = {}
    async with httpx.AsyncClient(timeout=300) as http:
        for (tenant, provider), n in Counter(zip(owners, providers, strict=True)).items():
            pools[(tenant, provider)] = await _paid(http, stack, tenant, provider, n)
    hooks = []
    for index, (tenant, provider) in enumerate(zip(owners, providers, strict=True)):
        made = pools[(tenant, provider)].pop()
        tenant_id = stack.tenants[tenant].id
        domain = PAYMENTS[provider][2]
        hooks.append(
            Webhook(
                index=index,
                tenant=tenant,
                provider=provider,
                ref=made["ref"],
                payment_id=str(payment_id_for(tenant_id, provider, made["ref"])),
                domain=domain,
                entity_id=f"{domain[:3]}-{uuid.uuid4().hex[:12]}",
                url=made["url"] or f"{stack.ingest}/webhooks/{tenant_id}/{provider}",
                body=made["body"],
                headers=made["headers"],
            )
        )
    await _register(engine, stack, hooks)
    return hooks


def write_targets(hooks: list[Webhook], path: Path) -> Path:
    """The webhooks as `bench/loadgen` targets, in order (target i is webhook i)."""
    with path.open("w") as f:
        for h in hooks:
            header = {name: [value] for name, value in h.headers.items()}
            f.write(json.dumps({"method": "POST", "url": h.url, "body": h.body, "header": header}) + "\n")
    return path


def body_of(hook: Webhook) -> bytes:
    """The webhook's raw body."""
    return base64.b64decode(hook.body)


async def _paid(http: httpx.AsyncClient, stack: Stack, tenant: int, provider: str, count: int) -> list[dict]:
    owner = stack.tenants[tenant]
    amount, currency, _ = PAYMENTS[provider]
    callback = (
        f"{stack.ingest}/webhooks/{owner.id}/mpesa/{owner.mpesa_callback_token}"
        if provider == "mpesa"
        else None
    )
    answer = await http.post(
        f"{stack.simulator_url}/_bench/paid",
        json={
            "account": owner.account(provider).id,
            "count": count,
            "amount_minor": amount,
            "currency": currency,
            "callback_url": callback,
        },
    )
    answer.raise_for_status()
    return answer.json()


async def _register(engine: AsyncEngine, stack: Stack, hooks: list[Webhook]) -> None:
    """Register every webhook's payment, as api-gateway's `POST /v1/payments` would, a chunk at a time."""
    per_tenant: dict[int, list[dict]] = defaultdict(list)
    for h in hooks:
        amount, currency, _ = PAYMENTS[h.provider]
        per_tenant[h.tenant].append(
            {
                "provider": h.provider,
                "provider_ref": h.ref,
                "domain": h.domain,
                "entity_id": h.entity_id,
                "amount_minor": amount,
                "currency": currency,
            }
        )
    for tenant, specs in per_tenant.items():
        for start in range(0, len(specs), 1000):
            await register_payments(engine, stack.tenants[tenant].id, specs[start : start + 1000])
