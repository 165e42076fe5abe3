"""Alert rules on status changes: payments past their domain's deadline, failure rates, dead letters.

Every replica runs `RuleEvaluator.run`; one round at a time is evaluated, by whichever replica holds
the rules lock, a session-level advisory lock (`session_lock`) held from the round's first read to its
last write. A round compares what each rule finds now with the open sync issues of its kind: the alerts
of the new findings are published to `paysync.alerts.v1` and, once the broker has acknowledged every
one, their issues are opened and the open issues no longer found are resolved (so no issue is recorded
without its alert having gone out). The delivery path then tells it once, reminds, and tells the
resolution, as for every other kind. Each step is a statement of its own, committed at once: while the
round waits for the broker (through a whole broker outage, if it comes to that) its session holds the
lock and no transaction, so no snapshot holding back vacuum and no row locks. Whatever cuts a round
short before its issues are opened (a crash, a dropped connection, an outage) leaves them unopened: the
next round, here or on another replica, finds them new again and publishes their alerts again under the
same deterministic `alert_id`s, which the delivery log takes once; nothing is lost.

The dead-letter rule reads only what is new: a position per dead-letter partition and an index of the
letters that name a tenant are kept in PostgreSQL, so each letter is read once across replicas and
restarts; the redrive ledger says which indexed letters are gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paysync_core import dlq_view, topics
from paysync_core.alert_rules import AlertRules
from paysync_core.contracts import Alert, AlertKind
from paysync_core.db import issues
from paysync_core.db.engine import session_lock
from paysync_core.kafka import DurableProducer
from paysync_notifier import rule_alerts
from paysync_notifier import rules_repo as repo
from paysync_notifier.alert_settings import AlertDeliverySettings

log = structlog.get_logger()
ROUNDS = Counter("paysync_notifier_alert_rule_rounds_total", "Rounds of alert-rule evaluation completed")
RAISED = Counter("paysync_notifier_alert_rule_alerts_total", "Alerts raised by the rules", ["kind"])
LETTERS_READ = Counter(
    "paysync_notifier_dead_letters_read_total",
    "Records the dead-letter rule read from the dead-letter topics (each once: it reads only what is new)",
)
#: Longest failure-rate window a tenant may set: the widest look for failed payments.
_MAX_WINDOW = timedelta(days=7)

Findings = dict[tuple[str, str], rule_alerts.Build]


class RuleEvaluator:
    """Evaluates every tenant's rules now and then; publishes what opens, resolves what cleared."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: AlertDeliverySettings,
        bootstrap: str,
        producer: DurableProducer | None = None,
    ) -> None:
        """`producer`: what the alerts are published with (started and stopped by `run`); by default one
        of its own on `bootstrap`, where the dead-letter topics are read too."""
        self._engine = engine
        self._settings = settings
        self._bootstrap = bootstrap
        self._producer = producer or DurableProducer(bootstrap, client_id="paysync-notifier-rules")
        self._letters_checked = float("-inf")

    async def run(self) -> None:
        """Forever: one round, then wait for the next (a failed round is logged and tried again)."""
        started = False
        try:
            while True:
                try:
                    if not started:
                        await self._producer.start()
                        started = True
                    await self.evaluate()
                except Exception:  # a database or broker blip must not end the rules; the next round retries
                    log.exception("alert_rules.round_failed")
                await asyncio.sleep(self._settings.alert_rules_seconds)
        finally:
            await self._producer.stop()

    async def evaluate(self) -> int:
        """One round, if no other replica is in one; returns the alerts raised."""
        async with session_lock(self._engine, repo.RULES_LOCK) as conn:
            if conn is None:
                return 0  # another replica is in a round
            now = datetime.now(UTC)
            rules = await repo.tenant_rules(conn)
            # Every finding first, then the alerts and issues.
            found = {
                AlertKind.PAYMENT_PAST_DEADLINE: await _past_deadline(conn, rules, now),
                AlertKind.GATEWAY_FAILURE_RATE: await _failing(conn, rules, now),
            }
            if time.monotonic() - self._letters_checked >= self._settings.alert_rules_dead_letter_seconds:
                found[AlertKind.DEAD_LETTERS] = await self._dead_letters(conn, rules, now)
                self._letters_checked = time.monotonic()
            raised = sum([await self._sync(conn, kind, findings) for kind, findings in found.items()])
        ROUNDS.inc()
        return raised

    async def _sync(self, conn: AsyncConnection, kind: AlertKind, found: Findings) -> int:
        """Publish the alerts of the findings of `kind` not open yet, then open their issues and resolve
        the open ones not found any more."""
        open_now = await repo.open_subjects(conn, kind.value)
        new = sorted(key for key in found if key not in open_now)
        seen = await issues.occurrences(conn, kind.value, new)
        alerts = {key: found[key](seen.get(key, 0) + 1) for key in new}
        await self._publish(alerts.values())  # with no transaction open, however long the broker takes
        await issues.resolve_issues(conn, [issue for key, issue in open_now.items() if key not in found])
        rows = [issues.issue_row(a, subject=key[1]) for key, a in alerts.items()]
        opened = await issues.open_issues(conn, rows)
        if len(opened) < len(alerts):
            # Opened meanwhile (an issue reopened by hand while the round waited for the broker): the
            # alert went out without an issue of its own, told once (delivery's issueless alerts).
            log.warning("alert_rules.issue_already_open", kind=kind.value, alerts=len(alerts) - len(opened))
        if alerts:
            RAISED.labels(kind.value).inc(len(alerts))
            log.info("alert_rules.raised", kind=kind.value, alerts=len(alerts))
        return len(alerts)

    async def _publish(self, alerts: Collection[Alert]) -> None:
        """Publish the alerts and wait for the broker's acknowledgements; raise if one was not, but only
        once none is in flight any more (the lock is not let go of with an alert still on its way)."""
        outcomes = await asyncio.gather(*map(self._send, alerts), return_exceptions=True)
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failure is not None:
            raise failure

    async def _send(self, alert: Alert) -> None:
        await self._producer.send(topics.ALERTS.name, topics.ALERTS.key_for(alert), alert.to_bytes())

    async def _dead_letters(
        self, conn: AsyncConnection, rules: dict[str, AlertRules], now: datetime
    ) -> Findings:
        """Per tenant (that wants it) and dead-letter topic, the letters not redriven yet.

        Reads the letters written since the last read into the index first (`index_dead_letters`: a round
        cut short before the position moved reads them again, and the index takes each once); what the
        rule finds comes from the index, so letters indexed by a round that failed later are found by
        the next."""
        after = await repo.dead_letter_read_positions(conn)
        read = await dlq_view.read_new(self._bootstrap, dlq_view.dlq_topics(None), after)
        await repo.index_dead_letters(conn, read)
        LETTERS_READ.inc(len(read.letters))
        return {
            (row.tenant_id, f"dlq:{row.dlq_topic}"): rule_alerts.dead_letters(row, now)
            for row in await repo.unredriven_letters(conn)
            if row.tenant_id in rules and rules[row.tenant_id].dead_letters
        }


async def _past_deadline(conn: AsyncConnection, rules: dict[str, AlertRules], now: datetime) -> Findings:
    found: Findings = {}
    for tenant, rule in rules.items():
        for domain, deadline in rule.pending_deadlines.items():
            for row in await repo.past_deadline(conn, tenant, domain, deadline):
                found[(tenant, str(row.id))] = rule_alerts.past_deadline(row, deadline, now)
    return found


async def _failing(conn: AsyncConnection, rules: dict[str, AlertRules], now: datetime) -> Findings:
    found: Findings = {}
    for tenant, provider in await repo.gateways_with_failures(conn, _MAX_WINDOW):
        rule = rules[tenant].failure_rate if tenant in rules else None
        if rule is None:
            continue
        window = timedelta(seconds=rule.window_seconds)
        failed, outcomes = await repo.latest_outcomes(conn, tenant, provider, rule.of_last, window)
        if failed >= rule.min_failed:
            found[(tenant, f"failures:{provider}")] = rule_alerts.failure_rate(
                tenant, provider, failed, outcomes, rule, now
            )
    return found
