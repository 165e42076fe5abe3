"""Drift that only the gateway can reveal, and the alerts that report it: pure functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from paysync_core.contracts import Alert, AlertKind, EntityRef, PaymentObservation, Provider, alert_id
from paysync_core.domain.money import Money
from paysync_core.domain.status import UnifiedStatus
from paysync_reconciler.models import Target


@dataclass(frozen=True, slots=True)
class Finding:
    """One sync issue found about one payment, before it becomes an alert."""

    kind: AlertKind
    target: Target
    detail: str
    facts: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None  # defaults to the payment id
    occurrence: int = 1

    def alert(self, now: datetime, *, occurrence: int | None = None) -> Alert:
        """The alert for this finding (its id is the same whoever raises it, whenever)."""
        t = self.target
        n = occurrence or self.occurrence
        subject = self.subject or str(t.payment_id)
        entity = EntityRef(domain=t.domain, entity_id=t.entity_id) if t.domain and t.entity_id else None
        return Alert(
            alert_id=alert_id(self.kind, t.tenant, subject, n),
            kind=self.kind,
            tenant=t.tenant,
            payment_id=str(t.payment_id) if t.payment_id else None,
            provider=t.provider,
            provider_ref=t.provider_ref or None,
            entity=entity,
            detail=self.detail[:2000],
            facts=self.facts,
            occurrence=n,
            raised_at=now,
        )

    def issue_row(self, alert: Alert) -> dict[str, Any]:
        """The sync_issues row that makes this alert go out once."""
        return {
            "alert_id": alert.alert_id,
            "tenant_id": alert.tenant,
            "kind": alert.kind.value,
            "subject": self.subject or str(self.target.payment_id),
            "payment_id": self.target.payment_id,
            "domain": self.target.domain,
            "entity_id": self.target.entity_id,
            "detail": alert.detail,
            "facts": alert.facts,
            "occurrence": alert.occurrence,
        }


class Answered(Protocol):
    """What drift checks read of a gateway's answer (an observation, or a listed item)."""

    # Read-only (properties), so frozen models and dataclasses satisfy it.
    @property
    def observation_id(self) -> str: ...
    @property
    def provider_ref(self) -> str: ...
    @property
    def status(self) -> UnifiedStatus | None: ...
    @property
    def amount_minor(self) -> int | None: ...
    @property
    def currency(self) -> str | None: ...


def drift_between(target: Target, answer: Answered, *, current: bool) -> list[Finding]:
    """What a gateway's answer contradicts in what paysync shows; `current`: the answer is the state now."""
    found: list[Finding] = []
    local, seen = target.status, answer.status
    title = Provider(target.provider).display_name
    if current and local is not None and local.money_moved and seen is not None and not seen.money_moved:
        found.append(
            Finding(
                AlertKind.PAID_WITHOUT_GATEWAY_SUCCESS,
                target,
                f"{target.provider_ref} is shown as {local.value}, but {title} reports it {seen.value}: "
                "no successful payment at the gateway",
                {"shown": local.value, "gateway_status": seen.value, "observation_id": answer.observation_id},
            )
        )
    if seen is UnifiedStatus.SUCCEEDED:
        if target.currency and answer.currency and target.currency != answer.currency:
            found.append(
                Finding(
                    AlertKind.CURRENCY_MISMATCH,
                    target,
                    f"{title} reports {target.provider_ref} paid in {answer.currency}, "
                    f"but it was registered in "
                    f"{target.currency}; the payment is not marked paid",
                    _mismatch_facts(target, answer),
                )
            )
        elif (
            target.amount_minor is not None
            and answer.amount_minor is not None
            and target.amount_minor != answer.amount_minor
        ):
            found.append(
                Finding(
                    AlertKind.AMOUNT_MISMATCH,
                    target,
                    f"{title} reported {_money(answer.amount_minor, answer.currency)} paid for "
                    f"{target.provider_ref}, but {_money(target.amount_minor, target.currency)} was "
                    "registered; the payment is not marked paid",
                    _mismatch_facts(target, answer),
                )
            )
    return found


def stale(target: Target, last_status: UnifiedStatus | None, checks: int, last_error: str | None) -> Finding:
    """A payment still unresolved after its last scheduled check: stale, never silently failed."""
    title = Provider(target.provider).display_name
    shown = last_status.value if last_status else "unknown"
    why = f" (last error: {last_error})" if last_error else ""
    return Finding(
        AlertKind.STUCK_PAYMENT,
        target,
        f"{title} payment {target.provider_ref} is stale: still {shown} at the gateway after {checks} "
        f"scheduled checks{why}. It is not marked failed, since money may have moved; look at it in the "
        f"{title} dashboard.",
        {"state": "stale", "gateway_status": shown, "checks": checks},
    )


def check_failed(target: Target, reason: str) -> Finding:
    """One payment's check failed for a reason of its own: its schedule backs off, the others go on."""
    title = Provider(target.provider).display_name
    return Finding(
        AlertKind.CHECK_FAILED,
        target,
        f"paysync could not check {title} payment {target.provider_ref}: {reason}. Its checks back off "
        "along its schedule; the other payments are checked as usual. Correct the payment's reference "
        f"or look at it in the {title} dashboard.",
        {"reason": reason[:300]},
    )


def unrecorded(target: Target, answer: PaymentObservation) -> Finding:
    """Paid at the gateway, with no payment record: paysync created one from the gateway's data."""
    title = Provider(target.provider).display_name
    where = f" for {target.domain} {target.entity_id}" if target.domain and target.entity_id else ""
    return Finding(
        AlertKind.GATEWAY_PAYMENT_UNRECORDED,
        target,
        f"{title} reports {_money(answer.amount_minor, answer.currency)} paid for "
        f"{answer.provider_ref}{where}, "
        "which paysync had no record of; a payment record was created from the gateway's data",
        {
            "gateway_status": answer.status.value if answer.status else None,
            "observation_id": answer.observation_id,
            "amount_minor": answer.amount_minor,
            "currency": answer.currency,
        },
    )


def circuit_opened(tenant: str, provider: Provider, failures: int, occurrence: int) -> Finding:
    """The tenant's circuit to a gateway opened: it kept failing, and paysync stopped asking for a while."""
    title = Provider(provider).display_name
    return Finding(
        AlertKind.GATEWAY_ERROR,
        Target(None, tenant, provider, ""),
        f"{title} failed {failures} times in a row for this account; paysync pauses its checks there and "
        "tries again after a cool-down. Payment statuses may lag until it answers.",
        {"failures": failures, "circuit": "open"},
        subject=f"circuit:{Provider(provider).value}",
        occurrence=occurrence,
    )


def is_fix(local: UnifiedStatus | None, seen: UnifiedStatus | None) -> bool:
    """Whether an answer corrects what paysync shows (money that moved is never un-seen)."""
    if seen is None or seen == local:
        return False
    return not (local is not None and local.money_moved and not seen.money_moved)


def _mismatch_facts(target: Target, answer: Answered) -> dict[str, Any]:
    return {
        "expected_amount_minor": target.amount_minor,
        "expected_currency": target.currency,
        "seen_amount_minor": answer.amount_minor,
        "seen_currency": answer.currency,
        "observation_id": answer.observation_id,
    }


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None:
        return "an unknown amount"
    if currency is None:
        return f"{amount} (minor units)"
    try:
        return str(Money(amount, currency))
    except ValueError:
        return f"{amount} {currency} (minor units)"
