"""OpenTelemetry tracing for every service: off unless the standard `OTEL_*` variables switch it on.

On when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`, or both comma-separated) or,
with that variable unset, when an OTLP endpoint is given (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). Off with none of them, with `OTEL_TRACES_EXPORTER=none`, and
with `OTEL_SDK_DISABLED=true`. One deviation from the specification, on purpose: with no variable
set at all, the spec's default exporter (OTLP to localhost:4318) is not started, so an unconfigured
service never sends its traces anywhere. The SDK reads the rest itself: `OTEL_SERVICE_NAME` and
`OTEL_RESOURCE_ATTRIBUTES` (default name `paysync-<service>`), `OTEL_TRACES_SAMPLER(_ARG)`,
`OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_*` (headers, timeout, compression, certificates), `OTEL_PROPAGATORS`.

Off, each helper returns at its first line: no span, no header, no context lookup.

Across Kafka the W3C trace context (`traceparent`, `tracestate`) travels in each record's headers,
per record: a consumer that takes records in batches still starts one span per record, a child of
the context that record carries (`RecordSpans`), so each webhook stays one trace even when its
observation shares a batch, or a database transaction, with others. A stored record (the outbox)
keeps its `traceparent` beside it and the relay continues from it (`continued`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind

from paysync_core.logging import redact_callback_tokens

log = structlog.get_logger()

#: Kafka record headers as aiokafka takes and gives them.
Headers = list[tuple[str, bytes]]

#: Query parameters whose values never reach a span (stream tokens, signatures, keys).
_SECRET_PARAMETER = re.compile(r"(secret|password|passkey|token|key|signature|sig|auth)", re.I)

#: The tracer of this process, None while tracing is off.
_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None
_configured = False


def enabled() -> bool:
    """Whether this process traces (configured by `configure_tracing` from the `OTEL_*` variables)."""
    return _tracer is not None


def configure_tracing(service: str) -> bool:
    """Install the SDK's tracer provider if the `OTEL_*` variables ask for an exporter; once per process.

    Returns whether tracing is on. A configuration it cannot follow (an OTLP protocol other than
    http/protobuf, an unknown exporter) is logged and leaves tracing off: tracing never stops a service.
    """
    global _tracer, _provider, _configured
    if _configured:
        return _tracer is not None
    _configured = True
    exporters = _exporters_from_environment()
    if not exporters:
        return False
    provider = TracerProvider(resource=_resource(service))  # the sampler from OTEL_TRACES_SAMPLER
    provider.add_span_processor(_RedactingProcessor())
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))  # OTEL_BSP_* from the environment
    trace.set_tracer_provider(provider)
    _instrument_http_clients(provider)
    _provider, _tracer = provider, provider.get_tracer("paysync")
    log.info("tracing.configured", exporters=[type(e).__name__ for e in exporters])
    return True


def _exporters_from_environment() -> list[SpanExporter]:
    """The exporters `OTEL_TRACES_EXPORTER` names (with an endpoint and no name: `otlp`); none: off."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not named:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        named = "otlp" if endpoint else "none"
    exporters: list[SpanExporter] = []
    for name in (n.strip() for n in named.split(",")):
        if name == "otlp":
            exporters += _otlp_exporter()
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name not in ("none", ""):
            log.error("tracing.unknown_exporter", exporter=name, supported=["otlp", "console", "none"])
    return exporters


def _otlp_exporter() -> list[SpanExporter]:
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol != "http/protobuf":
        log.error("tracing.unsupported_protocol", protocol=protocol, supported="http/protobuf")
        return []
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return [OTLPSpanExporter()]  # endpoint, headers, timeout, compression from OTEL_EXPORTER_OTLP_*


def _resource(service: str) -> Resource:
    """The SDK's resource from the environment, named `paysync-<service>` unless the environment names it."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: f"paysync-{service}"}))
    return resource


def _instrument_http_clients(provider: TracerProvider) -> None:
    """Client spans (and `traceparent`) for httpx calls: gateways, the notifier, app webhooks."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)


def shutdown() -> None:
    """Export what is pending (the SDK also does this when the process exits)."""
    if _provider is not None:
        _provider.shutdown()


class _RedactingProcessor(SpanProcessor):
    """Keeps secrets out of HTTP spans' attributes before any exporter sees them.

    An M-Pesa callback path holds the tenant's callback token, a stream URL may hold a stream token,
    and an outgoing URL (a chat webhook, an app's endpoint) may hold a secret in its path: server
    paths are fingerprinted as logs do, secret-looking query values dropped, client URLs cut to
    their origin.
    """

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        """Rewrite the URL attributes the span starts with."""
        attributes = span.attributes or {}
        for name in ("url.path", "http.target"):
            if isinstance(value := attributes.get(name), str):
                span.set_attribute(name, redact_callback_tokens(_without_secret_parameters(value)))
        if isinstance(query := attributes.get("url.query"), str):
            span.set_attribute("url.query", _redacted_query(query))
        for name in ("url.full", "http.url"):
            if isinstance(value := attributes.get(name), str):
                span.set_attribute(name, _origin(value))

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing: attributes set later (route templates, status codes) hold no secrets."""


def _redacted_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "REDACTED" if _SECRET_PARAMETER.search(k) else v) for k, v in pairs])


def _without_secret_parameters(target: str) -> str:
    path, question, query = target.partition("?")
    return f"{path}?{_redacted_query(query)}" if question else path


def _origin(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


def add_trace_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: `trace_id` and `span_id` of the active span, when tracing is on and one is."""
    if _tracer is not None:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            event_dict["trace_id"] = format(span_context.trace_id, "032x")
            event_dict["span_id"] = format(span_context.span_id, "016x")
    return event_dict


def _messaging(topic: str, operation: str, **extra: Any) -> dict[str, Any]:
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": operation,
        **{k: v for k, v in extra.items() if v is not None},
    }


def _record_attributes(topic: str, record: Any, **extra: Any) -> dict[str, Any]:
    partition, offset = str(record.partition), record.offset
    position = {"messaging.destination.partition.id": partition, "messaging.kafka.offset": offset}
    return _messaging(topic, "process", **position, **extra)


def current_headers() -> Headers | None:
    """The active trace context as record headers (`traceparent`, `tracestate`); None when off or untraced."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()] or None


def traceparent() -> str | None:
    """The active span's W3C `traceparent`, to store beside a record published later (the outbox)."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_of(headers: Sequence[tuple[str, bytes | None]] | None) -> Context:
    """The trace context a consumed record carries in its headers (empty if it carries none)."""
    carrier = {k: v.decode("latin-1") for k, v in headers or () if v is not None}
    return propagate.extract(carrier)


@contextmanager
def producing(topic: str, key: bytes | None = None, parent: str | None = None) -> Iterator[Headers | None]:
    """A PRODUCER span around one publish; yields its context as the record's headers (None when off).

    Its parent is the active span, or the stored `traceparent` `parent` (the outbox relay's case).
    """
    if _tracer is None:
        yield None
        return
    context = propagate.extract({"traceparent": parent}) if parent else None
    attributes = _messaging(topic, "send", **{"messaging.kafka.message.key": _text(key)})
    with _tracer.start_as_current_span(
        f"{topic} publish", context=context, kind=SpanKind.PRODUCER, attributes=attributes
    ):
        yield current_headers()


@contextmanager
def consumed(record: Any) -> Iterator[None]:
    """A CONSUMER span for one record (`ConsumerRecord`), a child of the context it carries, current
    while the block runs; no-op when off."""
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(
        f"{record.topic} process",
        context=context_of(record.headers),
        kind=SpanKind.CONSUMER,
        attributes=_record_attributes(record.topic, record),
    ):
        yield


@contextmanager
def continued(
    traceparent: str | None,
    name: str,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """A span, current while the block runs, continuing the trace of a stored `traceparent`.

    No-op when tracing is off or nothing was stored (the record came from an untraced producer).
    """
    if _tracer is None or not traceparent:
        yield
        return
    parent = propagate.extract({"traceparent": traceparent})
    with _tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes):
        yield


@contextmanager
def attached(context: Context | None) -> Iterator[None]:
    """Make `context` the active one while the block runs (None: leave things as they are)."""
    if context is None:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


async def within(context: Context | None, awaitable: Any) -> Any:
    """Await `awaitable` with `context` active: a publish of a batch's record in that record's trace."""
    with attached(context):
        return await awaitable


class RecordSpans:
    """One CONSUMER span per consumed record, each a child of the trace context its record carries.

    For consumers that take records in batches (the normalizer, the projector): a batch mixes many
    webhooks' records, so a span per batch would either join them all into one trace or cut each
    from its own. Each record's span lasts while the batch that holds it is applied, and what the
    record causes (its observations, its status change in the outbox) is published in its context.
    """

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._spans: dict[Hashable, Span] = {}

    def start(self, key: Hashable, record: Any, **attributes: Any) -> None:
        """Start the span of one record (`ConsumerRecord`), found again by `key`."""
        if _tracer is None or key in self._spans:  # a record twice in a batch: its first span stands
            return
        self._spans[key] = _tracer.start_span(
            f"{self._topic} process",
            context=context_of(record.headers),
            kind=SpanKind.CONSUMER,
            attributes=_record_attributes(self._topic, record, **attributes),
        )

    def context(self, key: Hashable) -> Context | None:
        """The context with `key`'s span active (None when off or unknown), for work done on its behalf."""
        span = self._spans.get(key)
        return trace.set_span_in_context(span) if span is not None else None

    def current(self, key: Hashable) -> Any:
        """A block in which `key`'s span is the active one (its log lines carry its trace id)."""
        return attached(self.context(key))

    def traceparents(self) -> dict[Hashable, str]:
        """Each record's span as a W3C `traceparent`, by key: what the outbox stores beside an event."""
        found: dict[Hashable, str] = {}
        for key, span in self._spans.items():
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            if "traceparent" in carrier:
                found[key] = carrier["traceparent"]
        return found

    def end(self, error: BaseException | None = None) -> None:
        """End every span (marked failed with `error`, when the batch failed)."""
        for span in self._spans.values():
            if error is not None:
                span.record_exception(error)
                span.set_status(trace.StatusCode.ERROR)
            span.end()
        self._spans.clear()


def broker_middlewares() -> tuple[Any, ...]:
    """FastStream's Kafka middleware (a span per subscriber call and per publish, `traceparent` in the
    record's headers) when tracing is on; nothing when off."""
    if _provider is None:
        return ()
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    return (KafkaTelemetryMiddleware(tracer_provider=_provider),)


def _text(key: bytes | None) -> str | None:
    return key.decode(errors="replace") if key is not None else None
