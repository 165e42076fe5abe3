"""Tracing, each case in a process of its own (a tracer provider is set once per process): off unless the
`OTEL_*` variables switch it on, no secret in a span, log lines carrying the trace id, context in headers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from paysync_core.logging import token_fingerprint

TOKEN = "cb_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
STREAM_TOKEN = "pst_0123456789abcdef"

#: A service's app with a route like webhook-ingest's M-Pesa callback, called over ASGI; then the
#: Kafka headers of the active span read back. Prints one JSON line of what it saw on stdout's last line.
PROGRAM = f"""
import asyncio, json, httpx, structlog
from fastapi import Request
from paysync_core import tracing
from paysync_core.logging import configure_logging
from paysync_core.web import service_app
from opentelemetry import trace

configure_logging("demo")
app = service_app("demo")
seen = {{}}

@app.post("/webhooks/{{tenant}}/mpesa/{{token}}")
async def callback(tenant: str, token: str, request: Request) -> dict:
    structlog.get_logger().info("callback.accepted", tenant=tenant)
    headers = tracing.current_headers()
    parent = trace.get_current_span(tracing.context_of(headers)).get_span_context()
    seen["headers"] = [k for k, _ in headers or []]
    seen["header_trace_id"] = format(parent.trace_id, "032x") if parent.is_valid else None
    return {{}}

async def main():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        await client.post("/webhooks/t-1/mpesa/{TOKEN}?token={STREAM_TOKEN}")
        await client.get("/healthz")

asyncio.run(main())
tracing.shutdown()
print(json.dumps({{"enabled": tracing.enabled(), **seen}}))
"""


def run_with(**otel: str) -> tuple[list[dict], list[dict], dict]:
    """Run PROGRAM with only `otel` as OTEL_* variables: (spans exported to the console, log lines, what
    the program saw)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | otel
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=True, env=env
    )
    *spans, seen = _json_documents(run.stdout)
    logs = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    return spans, logs, seen


def _json_documents(text: str) -> list[dict]:
    """The JSON documents printed one after another (the console exporter indents its spans)."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while (at := _next_brace(text, at)) < len(text):
        value, at = decoder.raw_decode(text, at)
        documents.append(value)
    return documents


def _next_brace(text: str, at: int) -> int:
    found = text.find("{", at)
    return len(text) if found < 0 else found


def test_with_no_otel_variable_nothing_is_traced_and_logs_carry_no_trace_id() -> None:
    spans, logs, seen = run_with()
    assert seen == {"enabled": False, "headers": [], "header_trace_id": None}
    assert spans == []
    [line] = [line for line in logs if line["event"] == "callback.accepted"]
    assert "trace_id" not in line and "span_id" not in line


@pytest.mark.parametrize(
    "otel",
    [
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},  # not installed: refused
    ],
    ids=["exporter-none", "sdk-disabled", "grpc"],
)
def test_variables_that_keep_tracing_off(otel: dict[str, str]) -> None:
    spans, _, seen = run_with(**otel)
    assert seen["enabled"] is False and spans == []


def test_an_otlp_endpoint_alone_switches_tracing_on() -> None:
    # The exporter's default under the specification; the endpoint answers nothing, which costs no request.
    _, _, seen = run_with(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_BSP_SCHEDULE_DELAY="60000")
    assert seen["enabled"] is True


def test_spans_hold_no_callback_or_stream_token_and_logs_carry_their_trace_id() -> None:
    spans, logs, seen = run_with(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="paysync-demo")
    [request] = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    trace_id = request["context"]["trace_id"].removeprefix("0x")
    shown = f"/webhooks/t-1/mpesa/[{token_fingerprint(TOKEN)}]"
    assert request["attributes"]["url.path"] == shown
    assert request["attributes"]["url.query"] == "token=REDACTED"
    assert request["resource"]["attributes"]["service.name"] == "paysync-demo"
    exported = json.dumps(spans)
    assert TOKEN not in exported and STREAM_TOKEN not in exported
    assert not [s for s in spans if s["attributes"].get("url.path") == "/healthz"]  # probes are not traced
    [line] = [line for line in logs if line["event"] == "callback.accepted"]
    assert line["trace_id"] == trace_id and len(line["span_id"]) == 16
    # What a Kafka record published there carries: the request's trace, as W3C `traceparent`.
    assert seen == {"enabled": True, "headers": ["traceparent"], "header_trace_id": trace_id}


#: A service's app in a process where something installed an OpenTelemetry meter provider; prints the
#: names of the metrics it holds after a request.
METRICS_PROGRAM = """
import asyncio, json, httpx
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from paysync_core.logging import configure_logging
from paysync_core.web import service_app

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
configure_logging("demo")
app = service_app("demo")

@app.get("/v1/things/{thing}")
async def thing(thing: str) -> dict:
    return {"id": thing}

async def main():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        (await client.get("/v1/things/t-1")).raise_for_status()

asyncio.run(main())
data = reader.get_metrics_data()
scopes = [sm for rm in (data.resource_metrics if data else []) for sm in rm.scope_metrics]
names = [m.name for sm in scopes for m in sm.metrics]
print(json.dumps(names))
"""


def test_fastapi_records_no_opentelemetry_metrics_of_its_own() -> None:
    """The services' metrics are Prometheus' (`/metrics`); FastAPI's own OpenTelemetry metrics stay off
    even where a meter provider is installed, so no request pays for asking whether one is."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    run = subprocess.run(
        [sys.executable, "-c", METRICS_PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    assert json.loads(run.stdout.splitlines()[-1]) == []
