"""In-memory state: accounts (one tenant's credentials at one gateway) and the payments they hold.

Everything here is plain data, changed only on the server's event loop, so it needs no locks.
"""

from __future__ import annotations

import random
import secrets
import string
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from paysync_core.contracts.common import Provider
from paysync_gateway_sim.clock import SimClock
from paysync_gateway_sim.contracts import (
    Account as AccountModel,
)
from paysync_gateway_sim.contracts import (
    AccountSpec,
    ApiStats,
    BurstKind,
    Faults,
    WebhookStats,
)

JsonDict = dict[str, Any]
#: The values Stripe's API reference lists for each status field the simulator keeps.
SessionStatus = Literal["open", "complete", "expired"]
SessionPaymentStatus = Literal["unpaid", "paid", "no_payment_required"]
InvoiceStatus = Literal["draft", "open", "paid", "void", "uncollectible"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A webhook a gateway would send now: signed at send time, URL from the account or the push."""

    account_id: str
    provider: Provider
    label: str  # event type, or stkCallback
    ref: str  # the payment it is about; webhooks of one payment are sent one at a time
    body: bytes
    event_id: str | None = None
    url: str | None = None  # M-Pesa: the CallBackURL given with the push


# --- Stripe -------------------------------------------------------------------------------------


@dataclass(slots=True)
class StripeIntent:
    """A PaymentIntent."""

    id: str
    amount: int
    currency: str
    created: int
    status: str = "requires_payment_method"
    metadata: dict[str, str] = field(default_factory=dict)
    latest_charge: str | None = None
    amount_received: int = 0
    last_payment_error: JsonDict | None = None
    canceled_at: int | None = None
    cancellation_reason: str | None = None


@dataclass(slots=True)
class StripeSession:
    """A Checkout Session in payment mode."""

    id: str
    amount_total: int
    currency: str
    created: int
    expires_at: int
    status: SessionStatus = "open"
    payment_status: SessionPaymentStatus = "unpaid"
    metadata: dict[str, str] = field(default_factory=dict)
    client_reference_id: str | None = None
    success_url: str | None = None
    cancel_url: str | None = None
    payment_intent: str | None = None  # made when the customer first tries to pay
    intent_metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StripeInvoice:
    """A finalized Invoice collected automatically."""

    id: str
    amount_due: int
    currency: str
    created: int
    status: InvoiceStatus = "open"
    amount_paid: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    payment_intent: str | None = None
    next_payment_attempt: int | None = None
    attempt_count: int = 0
    #: `status_transitions`: when it was finalized, paid, voided, marked uncollectible (unix times).
    transitions: dict[str, int | None] = field(
        default_factory=lambda: dict.fromkeys(
            ("finalized_at", "paid_at", "voided_at", "marked_uncollectible_at")
        )
    )


@dataclass(slots=True)
class StripeCharge:
    """A succeeded Charge, with its refunds and dispute."""

    id: str
    amount: int
    currency: str
    payment_intent: str
    created: int
    metadata: dict[str, str] = field(default_factory=dict)
    amount_refunded: int = 0
    dispute: str | None = None


@dataclass(slots=True)
class StripeDispute:
    """A Dispute on a charge."""

    id: str
    charge: str
    payment_intent: str
    amount: int
    currency: str
    created: int
    status: str = "needs_response"
    reason: str = "fraudulent"


@dataclass(slots=True)
class StripeBook:
    """One Stripe account's objects, and its Events in the order they happened."""

    sessions: dict[str, StripeSession] = field(default_factory=dict)
    intents: dict[str, StripeIntent] = field(default_factory=dict)
    invoices: dict[str, StripeInvoice] = field(default_factory=dict)
    charges: dict[str, StripeCharge] = field(default_factory=dict)
    disputes: dict[str, StripeDispute] = field(default_factory=dict)
    events: list[JsonDict] = field(default_factory=list)
    event_index: dict[str, int] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, JsonDict]] = field(default_factory=dict)  # key -> (request, answer)
    expiries: list[tuple[int, str]] = field(default_factory=list)  # heap of (expires_at, session)


# --- Paystack -----------------------------------------------------------------------------------


@dataclass(slots=True)
class PaystackTransaction:
    """A Paystack transaction; amounts in subunits (kobo, pesewas, cents)."""

    id: int
    reference: str
    amount: int
    currency: str
    email: str
    created_at: datetime
    access_code: str
    status: str = "abandoned"  # what verify shows until the customer starts paying
    gateway_response: str = "The transaction was not completed"
    paid_at: datetime | None = None
    metadata: JsonDict | str = ""
    channel: str = "card"
    refunded: int = 0
    dispute_id: int | None = None
    dispute_outcome: str | None = None  # won | lost once resolved


# --- Daraja -------------------------------------------------------------------------------------


@dataclass(slots=True)
class StkRequest:
    """An STK Push: pending until the customer answers (or does not); amounts in whole KES."""

    merchant_request_id: str
    checkout_request_id: str
    amount: int
    phone: str
    callback_url: str | None
    account_reference: str
    description: str
    created_at: float
    result_code: int | None = None
    result_desc: str | None = None
    receipt: str | None = None
    completed_at: datetime | None = None

    @property
    def pending(self) -> bool:
        """True until a ResultCode is known."""
        return self.result_code is None


# --- accounts -----------------------------------------------------------------------------------


@dataclass(slots=True)
class TokenBucket:
    """Requests per second with a burst of one second's worth, refilled continuously."""

    rate: float
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        """Spend a token if there is one."""
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass(slots=True)
class Account:
    """One tenant's credentials at one gateway, its payments, faults and counters."""

    id: str
    provider: Provider
    webhook_url: str | None
    secret_key: str | None
    webhook_secret: str | None
    consumer_key: str | None
    consumer_secret: str | None
    shortcode: str | None
    till_number: str | None
    passkey: str | None
    rate_limit: float | None
    lock_subscriber: bool
    faults: Faults
    clock: SimClock  # per account, so a test moving its time leaves other tests' accounts alone
    api_rng: random.Random  # API faults and webhook faults draw from separate sequences, so
    webhook_rng: random.Random  # how often a client polls never changes which webhooks drop
    bucket: TokenBucket | None = None
    bursts: deque[tuple[BurstKind, int]] = field(default_factory=deque)
    api_stats: ApiStats = field(default_factory=ApiStats)
    webhook_stats: WebhookStats = field(default_factory=WebhookStats)
    stripe: StripeBook = field(default_factory=StripeBook)
    paystack: dict[str, PaystackTransaction] = field(default_factory=dict)
    stk: dict[str, StkRequest] = field(default_factory=dict)
    stk_deadlines: list[tuple[float, str]] = field(default_factory=list)  # heap of (created, push)
    stk_pending_phones: dict[str, str] = field(default_factory=dict)  # phone -> its unanswered push

    def model(self) -> AccountModel:
        """The account as the control API shows it."""
        return AccountModel(
            id=self.id,
            provider=self.provider,
            webhook_url=self.webhook_url,
            secret_key=self.secret_key,
            webhook_secret=self.webhook_secret,
            consumer_key=self.consumer_key,
            consumer_secret=self.consumer_secret,
            shortcode=self.shortcode,
            till_number=self.till_number,
            passkey=self.passkey,
            rate_limit=self.rate_limit,
            lock_subscriber=self.lock_subscriber,
            faults=self.faults,
        )


def token(length: int = 24, alphabet: str = string.ascii_letters + string.digits) -> str:
    """A random credential or id fragment."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


class Store:
    """Every account, found by id or by the credential a request carries."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self._by_key: dict[tuple[Provider, str], str] = {}  # (gateway, secret or consumer key) -> account
        self.tokens: dict[str, tuple[str, float]] = {}  # Daraja access token -> (account, expires at)
        self.unauthenticated: dict[str, int] = {p.value: 0 for p in Provider}

    def add(self, spec: AccountSpec, *, seed: int, rate_limit: float | None, faults: Faults) -> Account:
        """A new account from `spec`, its missing credentials generated; ValueError on a clash."""
        account_id = spec.id or f"{spec.provider.value}-{token(10).lower()}"
        if account_id in self.accounts:
            raise ValueError(f"account {account_id} exists")
        stripe, paystack, mpesa = (spec.provider is p for p in Provider)
        account = Account(
            id=account_id,
            provider=spec.provider,
            webhook_url=spec.webhook_url,
            secret_key=spec.secret_key or (f"sk_test_{token(40)}" if stripe or paystack else None),
            webhook_secret=spec.webhook_secret or (f"whsec_{token(32)}" if stripe else None),
            consumer_key=spec.consumer_key or (token(48) if mpesa else None),
            consumer_secret=spec.consumer_secret or (token(64) if mpesa else None),
            shortcode=spec.shortcode or ("174379" if mpesa else None),
            till_number=spec.till_number,
            passkey=spec.passkey or (token(64, "0123456789abcdef") if mpesa else None),
            rate_limit=rate_limit,
            lock_subscriber=spec.lock_subscriber,
            faults=spec.faults or faults.model_copy(deep=True),
            clock=SimClock(),
            # Seeded per account, so one account's decisions do not depend on another's traffic.
            api_rng=random.Random(f"{seed}:{account_id}:api"),  # noqa: S311 - seeded fault decisions of the simulator, not secrets
            webhook_rng=random.Random(f"{seed}:{account_id}:webhooks"),  # noqa: S311 - seeded fault decisions of the simulator, not secrets
        )
        key = (account.provider, account.secret_key or account.consumer_key or "")
        if key in self._by_key:
            raise ValueError(f"account {self._by_key[key]} already uses these credentials")
        self._by_key[key] = account_id
        self.accounts[account_id] = account
        return account

    def get(self, account_id: str) -> Account | None:
        """An account by id."""
        return self.accounts.get(account_id)

    def remove(self, account_id: str) -> bool:
        """Forget an account and its tokens."""
        self.tokens = {t: v for t, v in self.tokens.items() if v[0] != account_id}
        self._by_key = {k: v for k, v in self._by_key.items() if v != account_id}
        return self.accounts.pop(account_id, None) is not None

    def by_secret_key(self, provider: Provider, key: str) -> Account | None:
        """The Stripe or Paystack account whose secret key this is."""
        return self.accounts.get(self._by_key.get((provider, key), ""))

    def by_consumer_key(self, key: str) -> Account | None:
        """The Daraja app with this consumer key."""
        return self.accounts.get(self._by_key.get((Provider.MPESA, key), ""))

    def issue_token(self, account: Account, ttl: int) -> str:
        """A new Daraja access token, valid for `ttl` seconds of the account's time."""
        value = token(28)
        self.tokens[value] = (account.id, account.clock.time() + ttl)
        return value

    def account_for_token(self, value: str) -> Account | None:
        """The account an unexpired token belongs to."""
        found = self.tokens.get(value)
        account = self.accounts.get(found[0]) if found else None
        if found is None or account is None or found[1] <= account.clock.time():
            return None
        return account

    def expire_tokens(self, account_id: str) -> int:
        """Force every token of an account to expire now; returns how many there were."""
        expired = [t for t, (owner, _) in self.tokens.items() if owner == account_id]
        for value in expired:
            self.tokens[value] = (account_id, 0.0)
        return len(expired)

    def reset(self) -> None:
        """Forget everything."""
        self.accounts.clear()
        self._by_key.clear()
        self.tokens.clear()
        self.unauthenticated = {p.value: 0 for p in Provider}
