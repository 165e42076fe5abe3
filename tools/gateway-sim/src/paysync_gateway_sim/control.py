"""The control API under /_sim/: accounts, payments and scenario steps, faults, time, stats, reset."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from paysync_gateway_sim import faults
from paysync_gateway_sim.contracts import (
    Account,
    AccountSpec,
    AccountUpdate,
    Action,
    ActionRequest,
    ActionResult,
    Burst,
    DeliveryRecord,
    Faults,
    PaymentSpec,
    PaymentView,
    Stats,
)
from paysync_gateway_sim.runtime import Simulator, get_sim

router = APIRouter(tags=["control"])

Outcome = Literal["queued", "dropped", "duplicated", "held", "delivered", "failed", "gave_up", "no_endpoint"]


class ResetRequest(BaseModel):
    """Forget everything; optionally reseed."""

    seed: int | None = None


class AdvanceRequest(BaseModel):
    """Move simulated time forward, for one account or all of them."""

    seconds: float = Field(ge=0)
    account: str | None = None


@router.get("/health")
async def health(sim: Simulator = Depends(get_sim)) -> dict[str, object]:
    """Liveness, and the seed in force."""
    return {"status": "ok", "seed": sim.seed}


@router.get("/config")
async def config(sim: Simulator = Depends(get_sim)) -> dict[str, object]:
    """The settings this simulator runs with."""
    return sim.config.model_dump(mode="json")


@router.post("/reset")
async def reset(body: ResetRequest | None = None, sim: Simulator = Depends(get_sim)) -> dict[str, object]:
    """Forget every account, payment, event and webhook."""
    sim.reset(body.seed if body else None)
    return {"status": "reset", "seed": sim.seed}


@router.post("/clock/advance")
async def advance(body: AdvanceRequest, sim: Simulator = Depends(get_sim)) -> dict[str, object]:
    """Move time forward and apply expiries that fall due (sessions, STK prompts, tokens)."""
    sim.advance(body.seconds, body.account)
    return {"status": "advanced", "seconds": body.seconds}


@router.post("/accounts", status_code=201)
async def create_account(spec: AccountSpec, sim: Simulator = Depends(get_sim)) -> Account:
    """A new account; credentials left out are generated and returned."""
    return sim.create_account(spec).model()


@router.get("/accounts")
async def list_accounts(sim: Simulator = Depends(get_sim)) -> list[Account]:
    """Every account."""
    return [a.model() for a in sim.store.accounts.values()]


@router.get("/accounts/{account_id}")
async def get_account(account_id: str, sim: Simulator = Depends(get_sim)) -> Account:
    """One account."""
    return sim.account(account_id).model()


@router.patch("/accounts/{account_id}")
async def update_account(
    account_id: str, update: AccountUpdate, sim: Simulator = Depends(get_sim)
) -> Account:
    """Change the webhook URL, rate limit or subscriber lock."""
    return sim.update_account(account_id, update).model()


@router.delete("/accounts/{account_id}", status_code=204)
async def delete_account(account_id: str, sim: Simulator = Depends(get_sim)) -> None:
    """Forget an account and everything it holds."""
    sim.account(account_id)
    sim.store.remove(account_id)


@router.put("/accounts/{account_id}/faults")
async def set_faults(account_id: str, body: Faults, sim: Simulator = Depends(get_sim)) -> Account:
    """Replace the account's webhook and API fault settings."""
    account = sim.account(account_id)
    account.faults = body
    return account.model()


@router.post("/accounts/{account_id}/faults/burst")
async def add_burst(account_id: str, body: Burst, sim: Simulator = Depends(get_sim)) -> dict[str, object]:
    """Answer the account's next N API requests with an error of one kind."""
    account = sim.account(account_id)
    faults.add_burst(account, body)
    return {"queued": [{"kind": k.value, "count": n} for k, n in account.bursts]}


@router.post("/accounts/{account_id}/tokens/expire")
async def expire_tokens(account_id: str, sim: Simulator = Depends(get_sim)) -> dict[str, int]:
    """Expire every Daraja access token of the account now."""
    sim.account(account_id)
    return {"expired": sim.store.expire_tokens(account_id)}


@router.post("/accounts/{account_id}/payments", status_code=201)
async def create_payment(
    account_id: str, spec: PaymentSpec, sim: Simulator = Depends(get_sim)
) -> ActionResult:
    """A payment made directly, without the public create endpoint."""
    return sim.create_payment(account_id, spec)


@router.get("/accounts/{account_id}/payments")
async def list_payments(account_id: str, sim: Simulator = Depends(get_sim)) -> list[PaymentView]:
    """Every payment of the account, as the simulator sees it."""
    return sim.payments(account_id)


@router.get("/accounts/{account_id}/payments/{ref}")
async def get_payment(account_id: str, ref: str, sim: Simulator = Depends(get_sim)) -> PaymentView:
    """One payment."""
    return sim.payment(account_id, ref)


@router.post("/accounts/{account_id}/payments/{ref}/{action}")
async def act(
    account_id: str,
    ref: str,
    action: Action,
    body: ActionRequest | None = None,
    sim: Simulator = Depends(get_sim),
) -> ActionResult:
    """A scenario step: the state change and the webhooks the real gateway would send for it."""
    return sim.act(account_id, ref, action, body or ActionRequest())


@router.get("/stats")
async def stats(sim: Simulator = Depends(get_sim)) -> Stats:
    """Counters per account: API requests (and those over the rate limit), webhook outcomes."""
    return sim.stats()


@router.get("/deliveries")
async def deliveries(
    account: str | None = None,
    outcome: Outcome | None = None,
    label: str | None = None,
    after: int = Query(default=0, ge=0, description="Only records with a larger seq"),
    limit: int = Query(default=1000, ge=1, le=100_000),
    sim: Simulator = Depends(get_sim),
) -> list[DeliveryRecord]:
    """The webhook delivery log, oldest first."""
    return sim.sender.records(account=account, outcome=outcome, label=label, after=after, limit=limit)
