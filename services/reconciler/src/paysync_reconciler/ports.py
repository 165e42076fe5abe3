"""The use cases' collaborators (the gateway ports, the outbound topics, the database) and what a check of
one payment comes to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.contracts import Alert, PaymentObservation, Provider, ReconcileReply
from paysync_core.credentials import GatewayCredentials
from paysync_core.domain.status import UnifiedStatus
from paysync_core.errors import GatewayError
from paysync_core.providers.clients import NotFoundAtGateway
from paysync_reconciler import failures
from paysync_reconciler.budget import Priority
from paysync_reconciler.known_tenants import KnownTenants
from paysync_reconciler.listing import PageReader, read_inline
from paysync_reconciler.models import ListedPage, ReconcileTick, Target
from paysync_reconciler.schedule import CheckSchedule
from paysync_reconciler.settings import ReconcilerSettings


class Port(Protocol):
    """One tenant's account at one gateway."""

    tenant: str
    provider: Provider

    @property
    def can_list(self) -> bool:
        """Whether a list call can answer for many payments."""
        ...

    @property
    def list_name(self) -> str:
        """The list sweep's watermark name."""
        ...

    def calls(self, level: Priority) -> int:
        """Requests sent at one priority so far."""
        ...

    async def check(self, provider_ref: str) -> PaymentObservation:
        """The payment's state now."""
        ...

    def list_pages(self, start: datetime, end: datetime) -> AsyncIterator[ListedPage]:
        """The list for the window, page by page."""
        ...


class Gateways(Protocol):
    """Finds a tenant's gateway ports and credentials."""

    async def port(self, tenant: str, provider: Provider) -> Port:
        """The port, or ProviderNotConfigured."""
        ...

    async def credentials(self, tenant: str) -> GatewayCredentials:
        """The tenant's gateway credentials."""
        ...


class Outbound(Protocol):
    """Where findings go; every call returns once the broker acknowledged."""

    async def observations(self, batch: Sequence[PaymentObservation]) -> None:
        """Publish observations (keyed by payment)."""
        ...

    async def records(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Publish observations already serialized, as (key, value)."""
        ...

    async def alert(self, alert: Alert) -> None:
        """Publish an alert (keyed by tenant)."""
        ...

    async def reply(self, topic: str, reply: ReconcileReply) -> None:
        """Publish a reply (keyed by tenant)."""
        ...

    async def tick(self, tick: ReconcileTick) -> None:
        """Publish a tick (keyed by tenant:provider)."""
        ...


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass
class Deps:
    """The use cases' collaborators: one composition root builds them, tests may pass fakes."""

    engine: AsyncEngine
    gateways: Gateways
    outbound: Outbound
    settings: ReconcilerSettings
    clock: Callable[[], datetime] = utcnow
    schedules: dict[Provider, CheckSchedule] = field(default_factory=dict)
    read_pages: PageReader = read_inline
    tenants: KnownTenants = field(default_factory=KnownTenants)

    def __post_init__(self) -> None:
        for provider in Provider:
            self.schedules.setdefault(
                provider,
                CheckSchedule.of(
                    self.settings.schedule_for(provider), self.settings.retry_after_error_seconds
                ),
            )

    @property
    def me(self) -> str:
        """This replica's name in claims and leases."""
        return self.settings.instance_id


class AnswerFrom(StrEnum):
    """Where a check's answer came from."""

    GATEWAY = "gateway"  # the gateway, asked about this payment
    LIST = "list"  # a list read at this sweep
    LOCAL = "local"  # paysync's own record: ended without money moving, nothing to confirm
    ERROR = "error"  # no answer: the gateway failed, or the check did


@dataclass(slots=True)
class Answer:
    """What a check of one payment came to: the gateway's observation, a list's word, or an error."""

    how: AnswerFrom
    status: UnifiedStatus | None = None
    observation: PaymentObservation | None = None
    error: GatewayError | None = None

    @property
    def answered(self) -> bool:
        """True when the gateway (or a list) said something definite about the payment."""
        return self.how is not AnswerFrom.ERROR or isinstance(self.error, NotFoundAtGateway)


def target_of(row: Any) -> Target:
    """A payment row (from payments, or a claimed check joined with its payment) as a check target."""
    pid = getattr(row, "payment_id", None) or row.id
    return Target(
        payment_id=pid,
        tenant=row.tenant_id,
        provider=Provider(row.provider),
        provider_ref=row.provider_ref,
        status=UnifiedStatus(row.status) if row.status else None,
        amount_minor=row.amount_minor,
        currency=row.currency,
        domain=row.domain,
        entity_id=row.entity_id,
        step=getattr(row, "step", 0),
        registered_at=getattr(row, "created_at", None),
    )


async def ask_each(port: Port, targets: Sequence[Target], concurrency: int) -> list[Answer]:
    """Ask the gateway about each target, `concurrency` at a time; the answers in the targets' order."""
    slots = asyncio.Semaphore(concurrency)

    async def one(target: Target) -> Answer:
        async with slots:
            return await ask(port, target)

    return list(await asyncio.gather(*(one(t) for t in targets)))


async def ask(port: Port, target: Target) -> Answer:
    """What the gateway says about one payment now: its observation, or the error (never raises)."""
    try:
        observation = await port.check(target.provider_ref)
    except GatewayError as exc:
        return Answer(AnswerFrom.ERROR, error=exc)
    except Exception as exc:  # noqa: BLE001 - one payment's problem never fails the sweep or request
        return Answer(AnswerFrom.ERROR, error=failures.check_failed(target, exc))
    return Answer(AnswerFrom.GATEWAY, observation.status, observation)
