"""reconciler's settings; env prefix `PAYSYNC_RECONCILER_` (shared ones: `PAYSYNC_`)."""

from __future__ import annotations

import os
import socket
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from paysync_core.contracts import Provider
from paysync_core.settings import CommonSettings


def _seconds_list(value: object) -> object:
    """`60,300,900` (or a JSON list) as a list of seconds."""
    if isinstance(value, str):
        text = value.strip().strip("[]")
        return [float(part) for part in text.split(",") if part.strip()]
    return value


def _names_list(value: object) -> object:
    """`a,b,c` (or a JSON list) as a list of names."""
    if isinstance(value, str):
        text = value.strip().strip("[]")
        return [part.strip().strip('"') for part in text.split(",") if part.strip()]
    return value


#: Delays in seconds: the first counts from registration, each next one from the check before.
Delays = Annotated[list[float], NoDecode, BeforeValidator(_seconds_list), Field(min_length=1)]
Names = Annotated[list[str], NoDecode, BeforeValidator(_names_list)]

#: Stripe's documented basic limits, requests per second per account.
STRIPE_TEST_MODE_RATE = 25.0
STRIPE_LIVE_MODE_RATE = 100.0


def _instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ReconcilerSettings(BaseSettings):
    """Consumer groups, check schedules, gateway budgets, the scheduler's cadence and the sweeps' bounds."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_RECONCILER_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    host: str = "127.0.0.1"
    port: int = 8002
    instance_id: str = Field(
        default_factory=_instance_id, description="Names this replica in claims and ticks"
    )
    group_id: str = Field(
        default="paysync-reconciler", description="Ticks' consumer group; requests use <id>-requests"
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest",
        description="Where the ticks' and requests' groups start on a partition they have committed "
        "nothing on",
    )

    # -- check schedules (seconds) ------------------------------------------------------------
    stripe_schedule: Delays = Field(
        default_factory=lambda: [300.0, 900.0, 3600.0, 21600.0, 90000.0],
        description="When an unsettled payment is checked: the first delay counts from its registration, "
        "each next one from the check before; still unsettled after the last, it is stale (a sync issue)",
    )
    paystack_schedule: Delays = Field(
        default_factory=lambda: [300.0, 900.0, 3600.0, 21600.0, 86400.0],
        description="The same for Paystack payments",
    )
    mpesa_schedule: Delays = Field(
        default_factory=lambda: [60.0, 120.0, 300.0, 900.0],
        description="STK Push Query: first after about a minute, then backing off",
    )
    retry_after_error_seconds: float = Field(
        default=60.0, description="Next try of a check the gateway failed"
    )

    # -- scheduler ------------------------------------------------------------------------------
    scheduler_enabled: bool = Field(
        default=True,
        description="Publish scheduled ticks from this replica (every replica may: each tick is taken on "
        "once)",
    )
    scheduler_tenants: Names = Field(
        default_factory=list, description="Only these tenants; empty: every tenant"
    )
    stripe_cadence_seconds: float = Field(
        default=900.0, gt=0, description="Seconds between scheduled sweeps of each tenant's Stripe account"
    )
    paystack_cadence_seconds: float = Field(default=900.0, gt=0, description="The same for Paystack")
    mpesa_cadence_seconds: float = Field(default=60.0, gt=0, description="The same for M-Pesa")

    # -- gateway budgets: per tenant and gateway, shared by every replica through PostgreSQL -----
    stripe_mode: Literal["test", "live"] = Field(
        default="test", description="Which Stripe rate limit applies: `test` 25 requests/s, `live` 100"
    )
    stripe_rate: float | None = Field(default=None, gt=0, description="Overrides the mode's documented limit")
    paystack_rate: float = Field(default=10.0, gt=0, description="Conservative: Paystack documents no number")
    mpesa_rate: float = Field(default=5.0, gt=0, description="Conservative: Daraja throttles by spike arrest")
    replicas: int | None = Field(
        default=None,
        description="Deprecated and ignored: the replicas share each budget through PostgreSQL",
    )
    budget_lease_seconds: float = Field(
        default=0.25,
        gt=0,
        le=0.5,
        description="A replica leases this many seconds' worth of a shared budget at a time; unused "
        "leased tokens are dropped after it (at most 0.5 s, so the budget never crosses the limit)",
    )
    budget_headroom: float = Field(
        default=0.96, gt=0, le=1, description="Share of the limit used, so network jitter never crosses it"
    )
    budget_burst_seconds: float = Field(default=0.4, gt=0, description="Burst, in seconds' worth of the rate")
    slowdown_factor: float = Field(
        default=0.5, gt=0, lt=1, description="Rate kept after the gateway says 429"
    )
    recovery_seconds: float = Field(default=30.0, gt=0, description="Time to climb back to the full rate")

    # -- retries and the circuit breaker --------------------------------------------------------
    max_attempts: int = Field(
        default=4, ge=1, description="Tries of one gateway request that fails retryably"
    )
    base_delay: float = Field(
        default=0.25,
        gt=0,
        description="Backoff before the first retry (seconds, with jitter), doubling each time",
    )
    max_delay: float = Field(default=8.0, gt=0, description="Longest backoff between two tries")
    max_retry_after: float = Field(
        default=30.0,
        gt=0,
        description="Longest `Retry-After` waited out; a longer one ends the request's tries",
    )
    max_budget_wait: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait for the tenant's gateway budget before a request gives up",
    )
    http_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Timeout of a gateway request (connecting: 5 s)"
    )
    breaker_threshold: int = Field(default=5, ge=1, description="Consecutive failures that open the circuit")
    breaker_cooldown_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long an open circuit waits before it lets one trial request through",
    )

    # -- sweeps ---------------------------------------------------------------------------------
    list_overlap_seconds: float = Field(
        default=300.0, ge=0, description="Each list window re-reads this much"
    )
    paystack_list_overlap_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="Each Paystack list window re-reads this much (not `…_LIST_OVERLAP_SECONDS`)",
    )
    first_window_margin_seconds: float = Field(
        default=86400.0, ge=0, description="A first sweep lists from this long before its oldest open payment"
    )
    initial_lookback_seconds: float = Field(
        default=30 * 86400.0, gt=0, description="Furthest back a first sweep lists (Stripe keeps 30 days)"
    )
    claim_batch: int = Field(default=200, ge=1, description="Due checks a sweep claims at a time")
    claim_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="How long claimed checks stay this replica's before another may claim them",
    )
    check_concurrency: int = Field(default=8, ge=1, description="Gateway calls in flight per sweep")
    list_batch: int = Field(default=500, ge=1, description="Listed items read and published together")
    list_buffer_pages: int = Field(
        default=1000, ge=1, description="Fetched pages waiting to be read, at most"
    )
    list_read_workers: int = Field(
        default=1, ge=0, description="Processes reading listed pages; 0: in-process"
    )
    max_concurrent_sweeps: int = Field(default=8, ge=1, description="Sweeps running at once in this replica")
    window_progress_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often a window sweep (`paysync reconcile`) writes its counts on its tick's row, "
        "for the command's progress bar",
    )
    unrecorded_grace_seconds: float = Field(
        default=300.0, ge=0, description="A gateway success unmatched this long is a payment with no record"
    )

    # -- on-demand checks -----------------------------------------------------------------------
    on_demand_concurrency: int = Field(
        default=16, ge=1, description="Gateway calls in flight for one on-demand check of several payments"
    )
    bulk_limit: int = Field(default=10_000, ge=1, description="Most payments one bulk check asks about")
    bulk_window_margin_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="A bulk check reads Stripe's Events and Paystack's transactions from this long before "
        "its oldest unsettled payment was registered (one paid before it was registered is still listed); "
        "what the lists do not settle is asked about one by one",
    )
    bulk_list_max_per_payment: float = Field(
        default=25.0,
        ge=0,
        description="A bulk check reads a gateway's list only while the payments registered in its window "
        "are at most this many per unsettled one (a couple of listed items each, 100 a page: beyond about "
        "50 the list costs more calls than asking one by one); 0: always one by one",
    )
    max_concurrent_requests: int = Field(
        default=32, ge=1, description="On-demand checks running at once, all tenants together"
    )
    max_concurrent_requests_per_tenant: int = Field(
        default=8,
        ge=1,
        description="One tenant's checks of entities and payments and callback confirmations running at "
        "once; tenants with checks waiting take turns, so one tenant's checks never hold back another's",
    )
    max_concurrent_bulk_checks_per_tenant: int = Field(
        default=1,
        ge=1,
        description="One tenant's bulk checks running at once (more would only share its gateway budget); "
        "the others wait their turn, and never hold back the tenant's other checks",
    )
    apply_wait_seconds: float = Field(default=8.0, ge=0, description="How long to wait for the projector")
    request_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Lease of an on-demand check taken on, renewed while it runs; once it runs out another "
        "replica takes the check over",
    )
    request_max_attempts: int = Field(
        default=3,
        ge=1,
        description="Tries of an on-demand check that keeps failing as a whole (each after its lease "
        "ran out) before it is recorded as failed, with the reason its follow-up link shows",
    )
    recovery_poll_seconds: float = Field(
        default=15.0, gt=0, description="How often on-demand checks whose lease ran out are looked for"
    )
    checkout_grace_seconds: float = Field(
        default=120.0,
        ge=0,
        description="A checkout (`POST /v1/payments/checkout`) still initiating this long after it was last "
        "touched lost its answer: a Stripe one is finished (the session created again with the same "
        "idempotency key, and registered), others expire",
    )
    checkout_sweep_seconds: float = Field(
        default=30.0, gt=0, description="How often checkouts left initiating are looked for"
    )
    credentials_ttl_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a tenant's gateway credentials are kept (NOTIFY `paysync_tenants` forgets "
        "them sooner, and every tenant's when the LISTEN connection comes back)",
    )
    keep_records_hours: float = Field(
        default=72.0, gt=0, description="Answered requests and ticks kept this long"
    )

    def schedule_for(self, provider: Provider) -> list[float]:
        """The check delays of one gateway."""
        provider = Provider(provider)
        return {
            Provider.STRIPE: self.stripe_schedule,
            Provider.PAYSTACK: self.paystack_schedule,
            Provider.MPESA: self.mpesa_schedule,
        }[provider]

    def cadence_for(self, provider: Provider) -> float:
        """Seconds between the scheduler's ticks for one gateway."""
        provider = Provider(provider)
        return {
            Provider.STRIPE: self.stripe_cadence_seconds,
            Provider.PAYSTACK: self.paystack_cadence_seconds,
            Provider.MPESA: self.mpesa_cadence_seconds,
        }[provider]

    def rate_for(self, provider: Provider) -> float:
        """Requests per second to one gateway, per tenant, for all replicas together."""
        provider = Provider(provider)
        if provider is Provider.STRIPE:
            limit = self.stripe_rate or (
                STRIPE_LIVE_MODE_RATE if self.stripe_mode == "live" else STRIPE_TEST_MODE_RATE
            )
        elif provider is Provider.PAYSTACK:
            limit = self.paystack_rate
        else:
            limit = self.mpesa_rate
        return limit * self.budget_headroom
