"""What a phase measured: the sender's answers, the poller's reads and the stream clients' arrivals,
joined by webhook (target index, payment id), as percentiles and counts."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

from clients import StreamClient
from webhooks import Webhook

PERCENTILES = (50, 95, 99)


def pct(values: list[float], p: float) -> float | None:
    """The p-th percentile of sorted `values` (nearest rank); None when there are none."""
    if not values:
        return None
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def summary(values: list[float]) -> dict[str, float | int | None]:
    """Count, p50/p95/p99 and max of latencies in ms, rounded to 0.1 ms."""
    ordered = sorted(values)
    out: dict[str, float | int | None] = {"n": len(ordered)}
    for p in PERCENTILES:
        value = pct(ordered, p)
        out[f"p{p}"] = None if value is None else round(value, 1)
    out["max"] = round(ordered[-1], 1) if ordered else None
    return out


def read_acks(path: Path) -> dict[int, tuple[int, int, int]]:
    """The sender's answers: target index -> (due µs, answered µs, HTTP status)."""
    with path.open() as f:
        return {
            int(r["index"]): (int(r["due_us"]), int(r["answered_us"]), int(r["status"]))
            for r in csv.DictReader(f)
        }


def read_polls(path: Path) -> dict[int, tuple[int, int, int, int]]:
    """The poller's results: index -> (first read of the new status, µs, or 0; requests; 304s; errors)."""
    with path.open() as f:
        return {
            int(r["index"]): (int(r["seen_us"]), int(r["requests"]), int(r["not_modified"]), int(r["errors"]))
            for r in csv.DictReader(f)
        }


def read_arrivals(path: Path) -> list[tuple[int, str, int]]:
    """The stream clients' arrivals: (client, payment id, µs)."""
    with path.open() as f:
        return [(int(r["client"]), r["payment_id"], int(r["arrival_us"])) for r in csv.DictReader(f)]


def expected_deliveries(hooks: list[Webhook], accepted: set[int], clients: list[StreamClient]) -> int:
    """How many (webhook, client) deliveries the accepted webhooks owe the clients."""
    consoles = Counter(c.tenant for c in clients if c.entity is None)
    entities = Counter((c.tenant, c.entity) for c in clients if c.entity is not None)
    return sum(
        consoles[h.tenant] + entities[(h.tenant, (h.domain, h.entity_id))]
        for h in hooks
        if h.index in accepted
    )


def answers(acks: dict[int, tuple[int, int, int]], planned: int, rate: int) -> dict:
    """The sender's side: sent, accepted, due → 200, the rate it achieved."""
    ok = {i: a for i, a in acks.items() if a[2] == 200}
    first_due = min((a[0] for a in acks.values()), default=0)
    last_answer = max((a[1] for a in acks.values()), default=0)
    span = (last_answer - first_due) / 1e6 if acks else 0.0
    return {
        "planned": planned,
        "sent": len(acks),
        "accepted": len(ok),
        "statuses": dict(Counter(str(a[2]) for a in acks.values())),
        "due_to_200_ms": summary([(a[1] - a[0]) / 1000 for a in ok.values()]),
        "offered_per_s": rate or None,
        "achieved_per_s": round(len(ok) / span, 1) if span else None,
    }


def readable(hooks: list[Webhook], acks: dict, polls: dict[int, tuple[int, int, int, int]]) -> dict:
    """Due → the new status read through `GET /v1/payments/{id}`, per gateway and in all."""
    by_provider: dict[str, list[float]] = defaultdict(list)
    missing = 0
    for index, (seen, *_rest) in polls.items():
        due, _, status = acks.get(index, (0, 0, 0))
        if status != 200:
            continue
        if not seen:
            missing += 1
            continue
        by_provider[hooks[index].provider].append((seen - due) / 1000)
    every = [v for values in by_provider.values() for v in values]
    requests = sum(p[1] for p in polls.values())
    return {
        "polled": len(polls),
        "missing": missing,
        "ms": summary(every),
        "per_gateway_ms": {p: summary(v) for p, v in sorted(by_provider.items())},
        "requests": requests,
        "not_modified": sum(p[2] for p in polls.values()),
        "errors": sum(p[3] for p in polls.values()),
    }


def stream(
    hooks: list[Webhook], acks: dict, clients: list[StreamClient], arrivals: list[tuple[int, str, int]]
) -> dict:
    """Due → event and accepted (200) → event, per (webhook, client) pair; missing and duplicated pairs."""
    by_payment = {h.payment_id: h for h in hooks}
    accepted = {i for i, a in acks.items() if a[2] == 200}
    first: dict[tuple[int, int], int] = {}
    duplicates = strangers = 0
    for client, payment_id, at in arrivals:
        hook = by_payment.get(payment_id)
        if hook is None or not clients[client].receives(hook):
            strangers += 1  # not this phase's, or not this client's: must never happen
            continue
        if (hook.index, client) in first:
            duplicates += 1
            continue
        first[(hook.index, client)] = at
    due_ms: dict[str, list[float]] = defaultdict(list)
    accepted_ms: dict[str, list[float]] = defaultdict(list)
    per_gateway: dict[str, list[float]] = defaultdict(list)
    for (index, client), at in first.items():
        if index not in accepted:
            continue
        due, answered, _ = acks[index]
        kind = clients[client].kind
        due_ms[kind].append((at - due) / 1000)
        accepted_ms[kind].append((at - answered) / 1000)
        per_gateway[hooks[index].provider].append((at - due) / 1000)
    expected = expected_deliveries(hooks, accepted, clients)
    delivered = sum(1 for index, _ in first if index in accepted)
    return {
        "clients": dict(Counter(c.kind for c in clients)),
        "deliveries_expected": expected,
        "deliveries_missing": expected - delivered,
        "duplicates": duplicates,
        "not_theirs": strangers,
        "due_to_event_ms": summary([v for values in due_ms.values() for v in values]),
        "accepted_to_event_ms": summary([v for values in accepted_ms.values() for v in values]),
        "per_client_kind": {
            kind: {
                "due_to_event_ms": summary(due_ms[kind]),
                "accepted_to_event_ms": summary(accepted_ms[kind]),
            }
            for kind in sorted(due_ms)
        },
        "per_gateway_due_to_event_ms": {p: summary(v) for p, v in sorted(per_gateway.items())},
    }
