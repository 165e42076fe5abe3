"""The running simulator: state, the three gateways, the webhook sender, and the use cases routes call."""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog
from fastapi import Request

from paysync_core.contracts.common import Provider
from paysync_gateway_sim import faults
from paysync_gateway_sim.config import SimConfig
from paysync_gateway_sim.contracts import (
    AccountSpec,
    AccountStats,
    AccountUpdate,
    Action,
    ActionRequest,
    ActionResult,
    ApiStats,
    PaymentSpec,
    PaymentView,
    Stats,
    WebhookStats,
)
from paysync_gateway_sim.errors import ScenarioError, not_found
from paysync_gateway_sim.gateways.daraja import DarajaSim
from paysync_gateway_sim.gateways.paystack import PaystackSim
from paysync_gateway_sim.gateways.stripe import StripeSim
from paysync_gateway_sim.state import Account, Outgoing, Store
from paysync_gateway_sim.webhooks import WebhookSender

log = structlog.get_logger(__name__)


class GatewaySim(Protocol):
    """What every gateway offers the scenario layer."""

    provider: Provider

    def create(self, account: Account, spec: PaymentSpec) -> tuple[str, list[Outgoing]]:
        """Make a payment directly; its reference and the webhooks that creation sends."""
        ...

    def act(self, account: Account, ref: str, action: Action, req: ActionRequest) -> list[Outgoing]:
        """Apply a scenario step; the webhooks it sends."""
        ...

    def view(self, account: Account, ref: str) -> PaymentView:
        """A payment's current state."""
        ...

    def refs(self, account: Account) -> list[str]:
        """Every payment reference of the account."""
        ...

    def sweep(self, account: Account) -> list[Outgoing]:
        """Apply expiries that have fallen due."""
        ...


class Simulator:
    """One simulator: every account of every gateway, and the webhooks on their way."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.seed = config.seed
        self.store = Store()
        self.stripe = StripeSim()
        self.paystack = PaystackSim()
        self.daraja = DarajaSim(config.stk_timeout_seconds)
        self.sender = WebhookSender(self.store, config)

    def gateway(self, provider: Provider) -> GatewaySim:
        """The simulation of one gateway."""
        gateways: dict[Provider, GatewaySim] = {
            Provider.STRIPE: self.stripe,
            Provider.PAYSTACK: self.paystack,
            Provider.MPESA: self.daraja,
        }
        return gateways[provider]

    # --- accounts -----------------------------------------------------------------------------

    def account(self, account_id: str) -> Account:
        """An account, or a 404 ScenarioError."""
        account = self.store.get(account_id)
        if account is None:
            raise not_found(f"account {account_id}")
        return account

    def create_account(self, spec: AccountSpec) -> Account:
        """A new account with the gateway's default rate limit unless the spec sets one."""
        rate = spec.rate_limit if spec.rate_limit is not None else self.config.rate_limit_for(spec.provider)
        try:
            account = self.store.add(spec, seed=self.seed, rate_limit=rate, faults=self.config.default_faults)
        except ValueError as exc:
            raise ScenarioError(409, str(exc)) from exc
        faults.set_rate_limit(account, rate)
        log.info(
            "gateway_sim.account.created",
            account=account.id,
            provider=account.provider.value,
            rate_limit=account.rate_limit,
        )
        return account

    def update_account(self, account_id: str, update: AccountUpdate) -> Account:
        """Change an account's webhook URL, rate limit or subscriber lock."""
        account = self.account(account_id)
        fields = update.model_fields_set
        if "webhook_url" in fields:
            account.webhook_url = update.webhook_url
        if "rate_limit" in fields:
            faults.set_rate_limit(account, update.rate_limit)
        if update.lock_subscriber is not None:
            account.lock_subscriber = update.lock_subscriber
        return account

    # --- payments and scenarios ---------------------------------------------------------------

    def create_payment(self, account_id: str, spec: PaymentSpec) -> ActionResult:
        """A payment made directly, and the webhooks its creation sends."""
        account = self.account(account_id)
        gateway = self.gateway(account.provider)
        ref, outgoing = gateway.create(account, spec)
        self.send(outgoing)
        return ActionResult(payment=gateway.view(account, ref), webhooks=[o.label for o in outgoing])

    def act(self, account_id: str, ref: str, action: Action, req: ActionRequest) -> ActionResult:
        """Apply one scenario step; the payment afterwards and the webhooks queued for it."""
        account = self.account(account_id)
        gateway = self.gateway(account.provider)
        outgoing = gateway.act(account, ref, action, req)
        self.send(outgoing)
        log.info(
            "gateway_sim.scenario.step",
            account=account.id,
            action=action.value,
            webhooks=[o.label for o in outgoing],
        )
        return ActionResult(payment=gateway.view(account, ref), webhooks=[o.label for o in outgoing])

    def payment(self, account_id: str, ref: str) -> PaymentView:
        """One payment's state."""
        account = self.account(account_id)
        return self.gateway(account.provider).view(account, ref)

    def payments(self, account_id: str) -> list[PaymentView]:
        """Every payment of an account."""
        account = self.account(account_id)
        gateway = self.gateway(account.provider)
        return [gateway.view(account, ref) for ref in gateway.refs(account)]

    def send(self, outgoing: list[Outgoing]) -> None:
        """Hand webhooks to the sender."""
        if outgoing:
            self.sender.submit(outgoing)

    # --- time ---------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Apply every expiry that has fallen due (sessions, STK prompts)."""
        for account in list(self.store.accounts.values()):
            self.send(self.gateway(account.provider).sweep(account))

    def advance(self, seconds: float, account_id: str | None = None) -> None:
        """Move one account's time (or every account's) forward and apply what falls due."""
        accounts = [self.account(account_id)] if account_id else list(self.store.accounts.values())
        for account in accounts:
            account.clock.advance(seconds)
        self.sweep()

    async def run_sweeper(self) -> None:
        """Sweep now and then, until cancelled."""
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            try:
                self.sweep()
            except Exception:  # a bug in one expiry must not stop every later one
                log.exception("gateway_sim.sweep.failed")

    # --- reading and resetting ----------------------------------------------------------------

    def stats(self) -> Stats:
        """Every account's counters and their totals."""
        per_account: dict[str, AccountStats] = {}
        total_api, total_hooks = ApiStats(), WebhookStats()
        for account in self.store.accounts.values():
            hooks = account.webhook_stats.model_copy(update={"pending": self.sender.pending(account.id)})
            per_account[account.id] = AccountStats(
                api=account.api_stats.model_copy(deep=True), webhooks=hooks
            )
            for total, part in ((total_api, account.api_stats), (total_hooks, hooks)):
                for name in type(part).model_fields:
                    if name != "by_operation":
                        setattr(total, name, getattr(total, name) + getattr(part, name))
            for operation, count in account.api_stats.by_operation.items():
                total_api.by_operation[operation] = total_api.by_operation.get(operation, 0) + count
        return Stats(
            accounts=per_account,
            total=AccountStats(api=total_api, webhooks=total_hooks),
            unauthenticated=dict(self.store.unauthenticated),
        )

    def reset(self, seed: int | None = None) -> None:
        """Forget every account, payment and webhook, and reseed."""
        if seed is not None:
            self.seed = seed
        self.store.reset()
        self.sender.reset()
        log.info("gateway_sim.reset", seed=self.seed)


async def get_sim(request: Request) -> Simulator:
    """The simulator serving this request (a FastAPI dependency).

    Async though it awaits nothing: FastAPI runs a plain `def` dependency in its thread pool, a hand-off
    to a worker thread and back on every request (a tenth of the simulator's CPU per STK Push Query).
    """
    return request.app.state.sim
