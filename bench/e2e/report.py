"""The end-to-end bench's results as Markdown tables (the JSON in bench/results/ has every figure)."""

from __future__ import annotations

#: The main table's columns; the smoke test checks they are all printed.
COLUMNS = (
    "phase",
    "clients",
    "sent / accepted",
    "achieved/s",
    "due→200 p50 / p99 ms",
    "sustained",
    "due→readable p50 / p95 / p99 / max ms (polled)",
    "due→event p50 / p95 / p99 / max ms",
    "accepted→event p50 / p95 / p99 ms",
    "deliveries (missing)",
    "not applied",
    "load avg",
)
PROCESSES = (
    "webhook-ingest",
    "status-projector",
    "notifier",
    "api-gateway",
    "reconciler",
    "simulator",
    "broker",
    "postgres",
    "loadgen",
    "stream clients",
    "poller",
)


def _ms(s: dict | None, keys: tuple[str, ...] = ("p50", "p95", "p99", "max")) -> str:
    if not s or not s.get("n"):
        return "–"
    return " / ".join("–" if s[k] is None else f"{s[k]:,}" for k in keys)


def _clients(stream: dict) -> str:
    kinds = stream["clients"]
    labels = {"console": "tenant-wide", "entity": "one-entity"}
    return " + ".join(f"{n} {labels[kind]}" for kind, n in sorted(kinds.items())) or "0"


def _sustained(value: bool | None) -> str:
    return "closed loop" if value is None else ("yes" if value else "**no**")


def main_table(results: list[dict]) -> list[str]:
    """One row per phase: the sender's answers, readable, stream, completeness."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        a, s, rd = r["answers"], r["stream"], r["readable"]
        readable = f"{_ms(rd['ms'])} ({rd['polled']}, {rd['missing']} missing)" if rd else "–"
        cells = [
            r["phase"],
            _clients(s),
            f"{a['sent']:,} / {a['accepted']:,}",
            f"{a['achieved_per_s']:,}" if a["achieved_per_s"] else "–",
            _ms(a["due_to_200_ms"], ("p50", "p99")),
            _sustained(r["sustained"]),
            readable,
            _ms(s["due_to_event_ms"]),
            _ms(s["accepted_to_event_ms"], ("p50", "p95", "p99")),
            f"{s['deliveries_expected']:,} ({s['deliveries_missing']:,})",
            str(r["not_applied"]),
            " → ".join(f"{v:.1f}" for v in r["load_average"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def cpu_table(results: list[dict]) -> list[str]:
    """CPU ms per accepted webhook of each process, and the services' peak memory, per phase."""
    lines = [
        "| phase | CPU ms per webhook: " + ", ".join(PROCESSES) + " | peak RSS MiB: ingest, projector, "
        "notifier, api-gateway, reconciler, simulator |",
        "|---|---|---|",
    ]
    for r in results:
        cpu, rss = r["cpu_ms_per_webhook"], r["peak_rss_mib"]
        cells = ", ".join(f"{cpu[p]:.3f}" if p in cpu else "–" for p in PROCESSES)
        peaks = ", ".join(str(rss.get(p, "–")) for p in PROCESSES[:6])  # the services, the simulator
        lines.append(f"| {r['phase']} | {cells} | {peaks} |")
    return lines


def gateway_table(results: list[dict]) -> list[str]:
    """Due → event and due → readable p50 / p99 per gateway (M-Pesa's include the STK Push Query)."""
    lines = ["| phase | gateway | due→event p50 / p99 ms | due→readable p50 / p99 ms |", "|---|---|---|---|"]
    for r in results:
        readable = (r["readable"] or {}).get("per_gateway_ms", {})
        for gateway, s in r["stream"]["per_gateway_due_to_event_ms"].items():
            lines.append(
                f"| {r['phase']} | {gateway} | {_ms(s, ('p50', 'p99'))} "
                f"| {_ms(readable.get(gateway), ('p50', 'p99'))} |"
            )
    return lines


def kinds_table(results: list[dict]) -> list[str]:
    """Accepted → event per kind of stream client (tenant consoles, entity pages)."""
    lines = [
        "| phase | client kind | accepted→event p50 / p95 / p99 / max ms | due→event p99 ms |",
        "|---|---|---|---|",
    ]
    for r in results:
        for kind, s in r["stream"]["per_client_kind"].items():
            lines.append(
                f"| {r['phase']} | {kind} | {_ms(s['accepted_to_event_ms'])} "
                f"| {_ms(s['due_to_event_ms'], ('p99',))} |"
            )
    return lines


def render(results: list[dict]) -> str:
    """Every table, blank lines between."""
    parts = [main_table(results), cpu_table(results), gateway_table(results), kinds_table(results)]
    return "\n\n".join("\n".join(p) for p in parts)
