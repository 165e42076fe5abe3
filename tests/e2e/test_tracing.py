"""One webhook is one trace, process to process: webhook-ingest's request → the raw topic → the normalizer →
the observations topic → the projector's transaction → the outbox relay → the notifier's stream event.

The services export over OTLP/HTTP, as they would to a collector, to a receiver this test runs (the
cross-process form of an in-memory exporter: each process's spans leave it the way production's do).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from paysync_core.providers.stripe import sign_stripe
from paysync_core.testing.builders.stripe import checkout_session, stripe_event, to_body
from paysync_dev.fixtures import TestTenant
from paysync_dev.http_receiver import HttpReceiver, ReceivedRequest
from paysync_dev.live_stream import SseListener
from paysync_dev.service_fixtures import (
    consumer_env,
    reconciler_groups,
    service_env,
    start_groups_at_end,
    unique,
    wait_for_groups,
    wait_until,
)
from paysync_dev.stack import ServiceProcess, start_stack, stop_stack
from paysync_gateway_sim import SimulatorClient

from .test_stripe_payment_end_to_end import register

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_shared_stack")]  # stacks of its own

#: The services one webhook passes through on its way to a browser's live stream.
ON_THE_WAY = ("webhook-ingest", "status-projector", "notifier", "api-gateway")

#: Spans the webhook's trace passes through, in order, from its request to the stream event (each publish
#: puts its span's context in the record, so that span is the consumer's parent).
PATH = (
    "paysync.webhooks.raw.v1 publish",
    "paysync.webhooks.raw.v1 process",
    "paysync.payment-observations.v1 publish",
    "paysync.payment-observations.v1 process",
    "paysync.payment-status.v1 publish",
    "paysync.payment-status.v1 process",
    "payment.status send",
)

#: OTLP span kinds.
SERVER, CLIENT = 2, 3

#: Where the OTLP exporter sends with no endpoint configured (the specification's default).
OTLP_DEFAULT_PORT = 4318


@dataclass(frozen=True)
class ExportedSpan:
    """One span as a service exported it."""

    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    attributes: dict[str, object]


def exported_spans(requests: list[ReceivedRequest]) -> list[ExportedSpan]:
    """Every span in the OTLP/HTTP export requests the receiver got (protobuf bodies, gzip or not)."""
    spans = []
    for request in requests:
        body = request.body
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        ExportedSpan(
                            service=resource.get("service.name", ""),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
    return spans


def _value(value: object) -> object:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind else None


def webhook_trace(spans: list[ExportedSpan], tenant: str) -> list[ExportedSpan]:
    """The spans of the trace whose root is webhook-ingest's request span for `tenant`'s Stripe webhook."""
    path = f"/webhooks/{tenant}/stripe"
    requests = [
        s for s in spans if s.service == "paysync-webhook-ingest" and s.attributes.get("url.path") == path
    ]
    if len(requests) != 1:
        return []
    return [s for s in spans if s.trace_id == requests[0].trace_id]


def ancestry(trace: list[ExportedSpan], span: ExportedSpan) -> list[ExportedSpan]:
    """`span` and its ancestors up to the root, root first (stops where a parent is missing)."""
    by_id = {s.span_id: s for s in trace}
    chain = [span]
    while chain[-1].parent_id and chain[-1].parent_id in by_id:
        chain.append(by_id[chain[-1].parent_id])
    return chain[::-1]


def stream_send(trace: list[ExportedSpan]) -> ExportedSpan | None:
    """The notifier's span of the event's send to the live stream, once every span up to the root is in."""
    sends = [s for s in trace if s.name == "payment.status send"]
    if not sends:
        return None
    chain = ancestry(trace, sends[0])
    return sends[0] if not chain[0].parent_id else None


def log_lines(process: ServiceProcess, *needles: str) -> list[dict]:
    """The JSON log lines of a service that mention any of `needles`."""
    lines = []
    for line in process.log_path.read_text(errors="replace").splitlines():
        if any(n in line for n in needles) and line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@dataclass(frozen=True)
class Paid:
    """A payment paid by one webhook, and what identifies that webhook."""

    payment: dict
    session_id: str
    ingest_id: str
    signature: str


def pay_and_watch(procs: dict[str, ServiceProcess], tenant: TestTenant) -> Paid:
    """Register a Stripe Checkout payment, open the tenant's live stream, send the gateway's one signed
    webhook that pays it, and wait for its event on the stream."""
    session_id = f"cs_test_{uuid.uuid4().hex}"
    payment = register(procs, tenant, session_id, f"job-{uuid.uuid4().hex[:8]}")
    event = stripe_event(
        "checkout.session.completed",
        checkout_session(id=session_id, payment_status="paid", amount_total=12500, currency="usd"),
    )
    body = to_body(event)
    signature = sign_stripe(body, tenant.stripe_webhook_secret, int(time.time()))

    async def run() -> str:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client:
            stream = SseListener(
                client, f"{procs['api-gateway'].url}/v1/stream", {"Authorization": f"Bearer {tenant.api_key}"}
            ).start()
            await asyncio.wait_for(stream.opened.wait(), 30)
            assert stream.status_code == 200, stream.error
            response = await client.post(
                f"{procs['webhook-ingest'].url}/webhooks/{tenant.id}/stripe",
                content=body,
                headers={
                    "Stripe-Signature": signature,
                    "Content-Type": "application/json",
                },
            )
            assert response.status_code == 200, response.text

            async def on_the_stream() -> bool:
                return payment["id"] in stream.payment_ids()

            await wait_until(on_the_stream, 60, "the payment's status change on the live stream")
            await stream.stop()
            return response.json()["ingest_id"]

    return Paid(payment, session_id, asyncio.run(run()), signature)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No `OTEL_*` variable of the test's own environment reaches the services."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """An OTLP/HTTP receiver: it takes `POST /v1/traces` and keeps the bodies."""
    otlp = HttpReceiver()
    yield otlp
    otlp.close()


def traced_env(kafka: str, database: str, keys: str, otlp_url: str) -> dict[str, str]:
    """The stack's settings, with tracing switched on by the standard variables, and debug logs."""
    return {
        **service_env(kafka, database, keys),
        "PAYSYNC_LOG_LEVEL": "DEBUG",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: spans leave each process promptly
    }


def test_one_webhook_is_one_trace_from_its_request_to_the_stream_event(
    clean_environment, receiver, tenant, kafka_topics, migrated_database, credentials_keys, tmp_path: Path
):
    env = traced_env(kafka_topics, migrated_database, credentials_keys, receiver.url)
    procs = start_stack(env, tmp_path, only=ON_THE_WAY)
    try:
        paid = pay_and_watch(procs, tenant)

        def whole_trace_in(requests: list[ReceivedRequest]) -> bool:
            return stream_send(webhook_trace(exported_spans(requests), tenant.id)) is not None

        asyncio.run(receiver.wait_for(whole_trace_in, timeout=60))
        trace = webhook_trace(exported_spans(receiver.snapshot()), tenant.id)
        send = stream_send(trace)
        assert send is not None
        chain = ancestry(trace, send)

        # One tree: a single root, the webhook's HTTP request, and every other span's parent in the trace.
        by_id = {s.span_id: s for s in trace}
        roots = [s for s in trace if not s.parent_id]
        assert [(r.service, r.kind) for r in roots] == [("paysync-webhook-ingest", SERVER)]
        assert all(s.parent_id in by_id for s in trace if s.parent_id)
        assert chain[0] is roots[0]
        # The path from the request to the stream event crosses the topics, in order, and three processes.
        names = [s.name for s in chain]
        assert [n for n in names if n in PATH] == list(PATH), names
        services = list(dict.fromkeys(s.service for s in chain))
        assert services == ["paysync-webhook-ingest", "paysync-status-projector", "paysync-notifier"]
        assert send.attributes["paysync.tenant"] == tenant.id
        # Nothing secret in what was exported: keys, signing secrets, signatures.
        exported = json.dumps([s.attributes for s in trace], default=str)
        for secret in (tenant.api_key, tenant.stripe_webhook_secret, paid.signature.split("v1=")[1]):
            assert secret not in exported

        # The log lines about this webhook and payment carry its trace id, in each of the three processes.
        trace_id = roots[0].trace_id
        for name, needles in (
            ("webhook-ingest", (paid.ingest_id, paid.session_id)),
            ("status-projector", (paid.payment["id"],)),
            ("notifier", (paid.payment["id"],)),
        ):
            lines = log_lines(procs[name], *needles)
            assert lines, f"{name} logged nothing about the payment"
            assert {line.get("trace_id") for line in lines} == {trace_id}, (name, lines)
    finally:
        stop_stack(procs)


def refresh_trace(spans: list[ExportedSpan]) -> list[ExportedSpan]:
    """The spans of the trace rooted at api-gateway's `POST /v1/payments/refresh` (the test's only one)."""
    roots = [
        s
        for s in spans
        if s.service == "paysync-api-gateway" and s.attributes.get("http.route") == "/v1/payments/refresh"
    ]
    return [s for s in spans if roots and s.trace_id == roots[0].trace_id and not roots[0].parent_id]


def checked_at_the_gateway(trace: list[ExportedSpan]) -> bool:
    """The reconciler took the request on in the API call's trace and asked the gateway in it."""
    took = [
        s
        for s in trace
        if s.service == "paysync-reconciler" and s.name == "paysync.reconcile.requests.v1 process"
    ]
    asked = [s for s in trace if s.service == "paysync-reconciler" and s.kind == CLIENT]
    return bool(took and asked) and all(
        ancestry(trace, s)[0].service == "paysync-api-gateway" for s in took + asked
    )


def tick_traces(spans: list[ExportedSpan], tenant: str) -> list[list[ExportedSpan]]:
    """Traces rooted at the reconciler's publish of one of `tenant`'s ticks, that reached its consumer."""
    roots = [
        s
        for s in spans
        if s.name == "paysync.reconcile.ticks.v1 publish"
        and not s.parent_id
        and str(s.attributes.get("messaging.kafka.message.key", "")).startswith(f"{tenant}:")
    ]
    traces = [[s for s in spans if s.trace_id == root.trace_id] for root in roots]
    return [t for t in traces if any(s.name == "paysync.reconcile.ticks.v1 process" for s in t)]


def test_an_api_call_and_a_reconciler_tick_each_start_a_trace(
    clean_environment,
    receiver,
    tenant,
    gateway_sim: SimulatorClient,
    kafka_topics,
    migrated_database,
    credentials_keys,
    tmp_path: Path,
):
    group = unique("reconciler-traced")
    # The refresh request is published right after the groups are stable: they start at offsets of
    # their own, not at a "latest" looked up once assigned (which could come after the request).
    asyncio.run(start_groups_at_end(kafka_topics, reconciler_groups(group)))
    shared = traced_env(kafka_topics, migrated_database, credentials_keys, receiver.url)
    env = consumer_env("reconciler", group, shared, scheduler_tenants=tenant.id)
    procs = start_stack(env, tmp_path, only=("api-gateway", "reconciler"))
    try:
        asyncio.run(wait_for_groups(kafka_topics, dict.fromkeys(reconciler_groups(group), 1)))
        account = tenant.account("stripe").id  # register() registers 12500 USD
        session = gateway_sim.create_payment(
            account, kind="checkout_session", amount_minor=12500, currency="usd"
        )
        register(procs, tenant, session.ref, f"job-{uuid.uuid4().hex[:8]}")
        response = httpx.post(
            f"{procs['api-gateway'].url}/v1/payments/refresh",
            headers={"Authorization": f"Bearer {tenant.api_key}"},
            timeout=60,
        )
        assert response.status_code in (200, 202), response.text

        def both_traced(requests: list[ReceivedRequest]) -> bool:
            spans = exported_spans(requests)
            return checked_at_the_gateway(refresh_trace(spans)) and bool(tick_traces(spans, tenant.id))

        asyncio.run(receiver.wait_for(both_traced, timeout=90))
        spans = exported_spans(receiver.snapshot())
        api_call = refresh_trace(spans)
        assert {s.service for s in api_call} >= {"paysync-api-gateway", "paysync-reconciler"}
        [tick, *_] = tick_traces(spans, tenant.id)
        assert {s.service for s in tick} == {"paysync-reconciler"}
    finally:
        stop_stack(procs)


def test_with_no_otel_variable_nothing_is_exported_and_the_services_work(
    clean_environment, tenant, kafka_topics, migrated_database, credentials_keys, tmp_path: Path
):
    # Where the specification's default exporter would send (OTLP to localhost:4318): nothing may come.
    default_collector = HttpReceiver(port=OTLP_DEFAULT_PORT)
    env = {**service_env(kafka_topics, migrated_database, credentials_keys), "PAYSYNC_LOG_LEVEL": "DEBUG"}
    procs = start_stack(env, tmp_path, only=ON_THE_WAY)
    try:
        paid = pay_and_watch(procs, tenant)
    finally:
        stop_stack(procs)  # an exporter would send what it still held as its process exits
        default_collector.close()
    assert default_collector.snapshot() == []
    lines = log_lines(procs["status-projector"], paid.payment["id"])
    assert lines and not any("trace_id" in line for line in lines)
