"""How one simulator process behaves: seed, default rate limits, webhook retries, time limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from paysync_core.contracts.common import Provider
from paysync_gateway_sim.contracts import Faults

#: Stripe's basic rate limiter in test mode (sandboxes): 25 requests per second per account.
STRIPE_TEST_MODE_RATE = 25.0


class SimConfig(BaseModel):
    """Settings of the whole simulator; accounts may override the rate limit and faults."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=0, description="Seeds every account's fault decisions")
    stripe_rate_limit: float | None = Field(default=STRIPE_TEST_MODE_RATE, ge=0)
    paystack_rate_limit: float | None = Field(default=None, ge=0, description="None or 0: unlimited")
    daraja_rate_limit: float | None = Field(default=None, ge=0, description="None or 0: unlimited")
    default_faults: Faults = Field(default_factory=Faults, description="Faults of accounts that set none")
    # Compressed stand-ins for the gateways' hours-long schedules (Stripe: up to 3 days).
    webhook_retry_schedule: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 4.0)
    # Daraja sends an STK callback once; integrators must query. Set True to retry anyway.
    mpesa_callback_retries: bool = False
    webhook_timeout: float = Field(default=5.0, gt=0)
    delivery_concurrency: int = Field(default=16, ge=1)
    delivery_log_size: int = Field(default=100_000, ge=100)
    token_ttl_seconds: int = Field(default=3599, ge=1, description="Daraja access token lifetime")
    stk_timeout_seconds: float | None = Field(
        default=60.0, gt=0, description="An unanswered STK prompt ends with ResultCode 1037; None: never"
    )
    sweep_interval: float = Field(default=0.25, gt=0, description="How often expiries are checked")

    def rate_limit_for(self, provider: Provider) -> float | None:
        """The default requests-per-second limit of a gateway; None means unlimited."""
        value = {
            Provider.STRIPE: self.stripe_rate_limit,
            Provider.PAYSTACK: self.paystack_rate_limit,
            Provider.MPESA: self.daraja_rate_limit,
        }[provider]
        return value or None
