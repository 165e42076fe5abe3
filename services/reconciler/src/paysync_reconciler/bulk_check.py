"""A bulk "Check payments" through the gateways' lists: a few list calls answer for most payments.

Stripe's Events and Paystack's transaction list are read for the window of the tenant's unsettled
payments with the list sweep's own code (`ListSweep`, as a window sweep reads them: the watermark
stays where it is). A payment the list shows ended (or paid) is settled by it, with no call of its
own. The rest are asked about one by one, as before: those the list does not name as soon as it is
fetched (while its pages are still read and published), those it names without an ending once it is
read. M-Pesa has no list: each payment is an STK query, within the tenant's Daraja budget.

A list that fails part way (its retries spent) settles what it read; everything else is asked about
one by one, so the report's `gateway_errors` counts only the payments left without an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from paysync_core.contracts import Provider
from paysync_core.errors import GatewayError, ProviderNotConfigured
from paysync_reconciler.list_sweep import ListAnswers, ListSweep, ListWindow
from paysync_reconciler.models import RunStats, Target
from paysync_reconciler.ports import Answer, AnswerFrom, Deps, Port, ask_each
from paysync_reconciler.repository import checks as checks_repo
from paysync_reconciler.repository import window as window_repo
from paysync_reconciler.schedule import resolved

log = structlog.get_logger()


@dataclass(slots=True)
class BulkAnswers:
    """Each payment's answer (by payment id), and the listed observations to wait for."""

    answers: dict[uuid.UUID | None, Answer] = field(default_factory=dict)
    listed_observations: set[str] = field(default_factory=set)


async def ask_in_bulk(deps: Deps, targets: list[Target]) -> tuple[list[Answer], set[str]]:
    """Answer for every target, each gateway at once: the answers in the targets' order, and the ids of
    the listed observations that settled payments (the caller waits for the projector to apply them)."""
    groups: dict[Provider, list[Target]] = defaultdict(list)
    for target in targets:
        groups[target.provider].append(target)
    found = BulkAnswers()
    await asyncio.gather(*(_one_gateway(deps, provider, group, found) for provider, group in groups.items()))
    return [found.answers[t.payment_id] for t in targets], found.listed_observations


async def _one_gateway(deps: Deps, provider: Provider, targets: list[Target], found: BulkAnswers) -> None:
    """One gateway's share of a bulk check: through its list where that is cheaper, else one by one."""
    tenant = targets[0].tenant
    try:
        port = await deps.gateways.port(tenant, provider)
    except ProviderNotConfigured as exc:
        error = GatewayError(str(exc), provider=provider.value, retryable=False)
        found.answers |= {t.payment_id: Answer(AnswerFrom.ERROR, error=error) for t in targets}
        return
    span = await _list_span(deps, port, targets) if port.can_list else None
    if span is None:
        await _ask(deps, port, targets, found)
        return
    settled = await _through_list(deps, port, targets, span, found)
    log.info(
        "reconcile.bulk.listed",
        tenant=tenant,
        provider=provider.value,
        payments=len(targets),
        settled_by_list=len(settled),
        asked_one_by_one=len(targets) - len(settled),
    )


async def _through_list(
    deps: Deps, port: Port, targets: list[Target], span: tuple[datetime, datetime], found: BulkAnswers
) -> dict[uuid.UUID, str]:
    """Read the list for the span; ask about the payments it does not name once it is fetched (while
    it is read), end the schedules of those it settles, and ask about those it names without an
    ending once it is read. The payments it settled, with their statuses."""
    listed, fetched = ListAnswers(), asyncio.Event()
    sweep = ListSweep(deps, port, deps.clock(), ListWindow(), RunStats(), fetched, span, listed)
    listing = asyncio.create_task(sweep.run())
    early: asyncio.Task[None] | None = None
    try:
        waiter = asyncio.ensure_future(fetched.wait())
        try:
            await asyncio.wait({waiter, listing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        unnamed = [t for t in targets if t.payment_id not in listed.touched]
        early = asyncio.create_task(_ask(deps, port, unnamed, found))
        await listing
        settled = _settled_by_list(targets, listed, found)
        async with deps.engine.begin() as conn:  # while the unnamed ones are still being asked about
            await checks_repo.resolve_schedules(conn, settled, deps.clock())
        await early
    finally:
        for task in (listing, early):
            if task is None:
                continue
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    await _ask(deps, port, [t for t in targets if t.payment_id not in found.answers], found)
    return settled


def _settled_by_list(targets: list[Target], listed: ListAnswers, found: BulkAnswers) -> dict[uuid.UUID, str]:
    """The payments the list named and its answer ended (no call of their own): recorded as answered by
    the list."""
    settled: dict[uuid.UUID, str] = {}
    for target in targets:
        pid = target.payment_id
        if pid is None or pid not in listed.touched:
            continue
        item = listed.newest.get(pid)
        if item is None or item.status is None:
            continue
        if not resolved(item.status):
            continue
        found.answers[pid] = Answer(AnswerFrom.LIST, item.status)
        found.listed_observations.add(item.observation_id)
        settled[pid] = item.status.value
    return settled


async def _ask(deps: Deps, port: Port, targets: list[Target], found: BulkAnswers) -> None:
    """Ask the gateway about each target, as a check of one payment does."""
    if targets:
        answers = await ask_each(port, targets, deps.settings.on_demand_concurrency)
        found.answers |= {t.payment_id: a for t, a in zip(targets, answers, strict=True)}


async def _list_span(deps: Deps, port: Port, targets: list[Target]) -> tuple[datetime, datetime] | None:
    """The list's window: from a margin before the oldest target's registration (at most the list's
    history back) to now; None when the list would cost more calls than asking one by one."""
    s, now = deps.settings, deps.clock()
    oldest = min((t.registered_at for t in targets if t.registered_at is not None), default=now)
    since = max(
        oldest - timedelta(seconds=s.bulk_window_margin_seconds),
        now - timedelta(seconds=s.initial_lookback_seconds),
    )
    in_window = sum(1 for t in targets if t.registered_at is None or t.registered_at >= since)
    if not in_window or s.bulk_list_max_per_payment == 0:
        return None
    async with deps.engine.connect() as conn:
        registered = await window_repo.count_in_window(
            conn, port.tenant, port.provider.value, (since, now), open_only=False
        )
    # Each registered payment is a couple of listed items, 100 a page: a window crowded with payments
    # that ended long ago would cost more pages than its unsettled ones cost asked one by one.
    if registered > s.bulk_list_max_per_payment * in_window:
        return None
    return since, now
