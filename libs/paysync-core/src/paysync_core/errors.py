"""paysync's errors: one root, a `retryable` flag that decides redelivery vs dead letter."""

from __future__ import annotations


class PaysyncError(Exception):
    """Root of paysync's errors. `retryable` says whether trying again can help."""

    retryable: bool = False
    code: str = "paysync_error"

    def __init__(self, message: str | None = None, **fields: object) -> None:
        self.fields = fields
        super().__init__(message or self.describe())

    def describe(self) -> str:
        """A message built from the error's fields."""
        return self.code


class MalformedPayload(PaysyncError):
    """A request or record whose bytes do not form what they claim to be."""

    code = "malformed_payload"

    def __init__(self, reason: str, **fields: object) -> None:
        self.reason = reason
        super().__init__(f"malformed payload: {reason}", **fields)


class AuthenticityError(PaysyncError):
    """A webhook that failed its authenticity check; nothing it says may be applied."""

    code = "authenticity_failed"

    def __init__(self, reason: str, **fields: object) -> None:
        self.reason = reason
        super().__init__(f"authenticity check failed: {reason}", **fields)


class ModeMismatch(PaysyncError):
    """A verified webhook from the other mode than the tenant's credentials (live vs test)."""

    code = "mode_mismatch"

    def __init__(self, reason: str, **fields: object) -> None:
        self.reason = reason
        super().__init__(f"refused, nothing applied: {reason.replace('_', ' ')}", **fields)


class UnknownTenant(PaysyncError):
    """No tenant by that id."""

    code = "unknown_tenant"

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        super().__init__(f"unknown tenant {tenant!r}", tenant=tenant)


class ProviderNotConfigured(PaysyncError):
    """The tenant has no credentials for that gateway."""

    code = "provider_not_configured"

    def __init__(self, tenant: str, provider: str) -> None:
        self.tenant, self.provider = tenant, provider
        super().__init__(f"tenant {tenant!r} has no {provider} configured")


class NotDurable(PaysyncError):
    """The broker did not acknowledge in time; the caller should retry later."""

    code = "not_durable"
    retryable = True


class GatewayError(PaysyncError):
    """A gateway answered with an error or not at all."""

    code = "gateway_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.provider = provider
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(f"{provider}: {message}")


class RateLimited(GatewayError):
    """The gateway said 429 (or its own equivalent); wait `retry_after` seconds."""

    code = "rate_limited"
