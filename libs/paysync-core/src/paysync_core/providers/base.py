"""What every gateway adapter provides: authenticity, parsing and its status table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeAlias

from paysync_core.contracts.common import ObservationSource, Provider, Verdict
from paysync_core.contracts.observation import Evidence, PaymentObservation
from paysync_core.credentials import MpesaCredentials, PaystackCredentials, StripeCredentials
from paysync_core.providers.tables import StatusTable

#: What `authenticate` accepts: the gateway's typed credentials, or a mapping of their fields.
ProviderCredentials: TypeAlias = (
    StripeCredentials | PaystackCredentials | MpesaCredentials | Mapping[str, object]
)


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A webhook as received: the raw bytes and what came with them."""

    tenant: str
    body: bytes
    headers: Mapping[str, str]  # lower-case names
    remote_addr: str | None
    received_at: datetime
    path_token: str | None = None  # M-Pesa's callback token from the URL


@dataclass(frozen=True, slots=True)
class ParseContext:
    """Where the bytes being parsed came from."""

    tenant: str
    source: ObservationSource
    verified: bool
    observed_at: datetime
    #: Evidence every observation parsed here carries (e.g. the raw record's position). A plain mapping
    #: of Evidence's fields is validated once, as part of each observation, instead of as a model here
    #: too: the normalizer and the replay build one context per record.
    evidence: Evidence | Mapping[str, str | int | None] = field(default_factory=Evidence)
    #: Keys the payer phone hash an M-Pesa callback's observation carries (`paysync_core.phones`);
    #: empty: none is computed. Never shown (a secret).
    phone_key: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a webhook body says: observations, or an event type paysync does not map."""

    event_type: str
    observations: tuple[PaymentObservation, ...] = ()
    unmapped: bool = False


class ProviderAdapter(Protocol):
    """One gateway's knowledge, the same shape for all three."""

    # Read-only (properties), so an adapter's plain class attributes satisfy them.
    @property
    def provider(self) -> Provider:
        """The gateway this adapter speaks for."""

    @property
    def status_tables(self) -> tuple[StatusTable, ...]:
        """The tables that map the gateway's words to unified statuses (rendered into docs)."""

    def authenticate(self, request: WebhookRequest, credentials: ProviderCredentials) -> Verdict:
        """Verdict for the request, or raise AuthenticityError."""
        ...

    def ip_allowed(self, request: WebhookRequest, credentials: ProviderCredentials) -> bool:
        """False when the tenant set a source-IP allowlist and the request came from elsewhere."""
        ...

    def parse(self, body: bytes, ctx: ParseContext) -> Parsed:
        """Observations in a webhook body, or raise MalformedPayload; never another error."""
        ...

    def reference_hint(self, body: bytes | dict[str, Any]) -> str | None:
        """The payment reference in a body (or in the JSON object already parsed from it), cheaply
        and without raising, for the record key."""
        ...
