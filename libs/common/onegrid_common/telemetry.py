"""OpenTelemetry tracing: one trace per case across every hop (DESIGN §8).

`setup_telemetry` installs a TracerProvider exporting by OTLP/HTTP when an endpoint is
configured, else as JSON lines to `traces_file`, else nowhere. Messages carry the W3C
`traceparent` string: a producer span injects it (`inject_traceparent()` inside
`start_producer_span`), a consumer span continues it (`start_consumer_span`).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from onegrid_common.settings import TelemetrySettings

TRACER_NAME: Final = "onegrid"
_propagator: Final = TraceContextTextMapPropagator()

# Messaging semantic-convention attribute names, plus onegrid's own case id.
MESSAGING_SYSTEM: Final = "messaging.system"
MESSAGING_DESTINATION: Final = "messaging.destination.name"
MESSAGING_OPERATION: Final = "messaging.operation.type"
MESSAGING_KAFKA_KEY: Final = "messaging.kafka.message.key"
MESSAGING_MESSAGE_ID: Final = "messaging.message.id"
CASE_ID: Final = "onegrid.case_id"
# The service that made a span: a span attribute as well as the resource, because tests
# (and `onegrid dev`'s in-process runs) share one TracerProvider among several services.
SERVICE: Final = "onegrid.service"


def _iso_ns(ns: int | None) -> str | None:
    """RFC 3339 in UTC to the microsecond, from nanoseconds since the epoch."""
    if ns is None:
        return None
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"{_utc_second(seconds)}.{rest // 1000:06d}+00:00"


@functools.lru_cache(maxsize=8)
def _utc_second(seconds: int) -> str:
    # Spans finish in bursts within the same second: format each second once.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def span_to_dict(span: ReadableSpan) -> dict[str, object]:
    """A finished span as plain JSON-able data (what the file exporter writes)."""
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "name": span.name,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "kind": span.kind.name,
        "service": (span.attributes or {}).get(SERVICE)
        or span.resource.attributes.get(SERVICE_NAME),
        "start": _iso_ns(span.start_time),
        "end": _iso_ns(span.end_time),
        "duration_ms": (
            (span.end_time - span.start_time) / 1e6
            if span.end_time is not None and span.start_time is not None
            else None
        ),
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "attributes": dict(span.attributes or {}),
        "events": [
            {"name": e.name, "ts": _iso_ns(e.timestamp), "attributes": dict(e.attributes or {})}
            for e in span.events
        ],
        "links": [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
            }
            for link in span.links
        ],
    }


class JsonLinesSpanExporter(SpanExporter):
    """Appends finished spans to a file, one JSON object per line (`onegrid trace` reads it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        # orjson: the exporter thread of a busy service spent most of its time in json.
        lines = b"".join(orjson.dumps(span_to_dict(s), default=str) + b"\n" for s in spans)
        try:
            with self._lock, self.path.open("ab") as out:
                out.write(lines)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _otlp_traces_url(endpoint: str) -> str:
    # The collector's base URL is the common setting; the HTTP exporter wants the path.
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def setup_telemetry(
    service: str,
    settings: TelemetrySettings,
    *,
    span_processors: Sequence[SpanProcessor] = (),
    set_global: bool = True,
) -> TracerProvider:
    """A TracerProvider for `service` exporting as configured.

    `span_processors` are added as well (tests pass a SimpleSpanProcessor with an
    InMemorySpanExporter). OpenTelemetry allows one global provider per process, so tests
    that build several pass `set_global=False` and hand the provider around.
    """
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter: SpanExporter = OTLPSpanExporter(endpoint=_otlp_traces_url(settings.otlp_endpoint))
        provider.add_span_processor(BatchSpanProcessor(exporter))
    elif settings.traces_file:
        provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(settings.traces_file)))
    for processor in span_processors:
        provider.add_span_processor(processor)
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def get_tracer(tracer_provider: trace.TracerProvider | None = None) -> Tracer:
    """onegrid's tracer of the given (or the global) provider; one per provider, since the
    outbox relay asks for it for every event it publishes."""
    return _tracer_of(tracer_provider or trace.get_tracer_provider())


@functools.lru_cache(maxsize=16)
def _tracer_of(provider: trace.TracerProvider) -> Tracer:
    return provider.get_tracer(TRACER_NAME)


def inject_traceparent(ctx: Context | None = None) -> str | None:
    """The W3C traceparent of the current (or given) context; None without a valid span."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=ctx)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> Context:
    """A context whose parent is the span named by `traceparent`; an empty one (a new
    root) when it is missing or malformed."""
    if not traceparent:
        return Context()
    return _propagator.extract({"traceparent": traceparent}, context=Context())


def traceparent_of(span: Span) -> str | None:
    """The traceparent naming `span` itself."""
    return inject_traceparent(trace.set_span_in_context(span, Context()))


def messaging_attributes(
    *,
    topic: str | None = None,
    key: str | None = None,
    case_id: str | None = None,
    operation: str | None = None,
    message_id: str | None = None,
    service: str | None = None,
) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {MESSAGING_SYSTEM: "kafka"}
    for name, value in (
        (SERVICE, service),
        (MESSAGING_DESTINATION, topic),
        (MESSAGING_KAFKA_KEY, key),
        (CASE_ID, case_id),
        (MESSAGING_OPERATION, operation),
        (MESSAGING_MESSAGE_ID, message_id),
    ):
        if value is not None:
            attributes[name] = value
    return attributes


@contextmanager
def start_consumer_span(
    name: str,
    traceparent: str | None,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    topic: str | None = None,
    key: str | None = None,
    case_id: str | None = None,
    message_id: str | None = None,
    links: Sequence[str] = (),
    service: str | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[Span]:
    """A CONSUMER span, child of the producer span named by `traceparent`, made current.

    `links` are traceparents of related spans (e.g. a case's first trace when a callback
    arrives hours later in a new trace).
    """
    attrs = messaging_attributes(
        topic=topic,
        key=key,
        case_id=case_id,
        operation="process",
        message_id=message_id,
        service=service,
    )
    attrs.update(attributes or {})
    parent = context_from_traceparent(traceparent)
    span_links = [
        Link(trace.get_current_span(context_from_traceparent(tp)).get_span_context())
        for tp in links
        if tp
    ]
    tracer = get_tracer(tracer_provider)
    with tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.CONSUMER, attributes=attrs, links=span_links
    ) as span:
        yield span


@contextmanager
def start_producer_span(
    name: str,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    topic: str | None = None,
    key: str | None = None,
    case_id: str | None = None,
    message_id: str | None = None,
    traceparent: str | None = None,
    service: str | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[Span]:
    """A PRODUCER span made current; inside it `inject_traceparent()` names this span.

    Without `traceparent` the span is a child of the current span (e.g. the HTTP request);
    with it (an outbox row's stored traceparent), a child of that one.
    """
    attrs = messaging_attributes(
        topic=topic,
        key=key,
        case_id=case_id,
        operation="send",
        message_id=message_id,
        service=service,
    )
    attrs.update(attributes or {})
    parent = context_from_traceparent(traceparent) if traceparent else otel_context.get_current()
    tracer = get_tracer(tracer_provider)
    with tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.PRODUCER, attributes=attrs
    ) as span:
        yield span


@contextmanager
def continue_case_trace(
    name: str,
    case_traceparent: str | None,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    case_id: str | None = None,
    service: str | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[Span | None]:
    """Bring work on a case back into the case's own trace.

    Work that arrives in another trace (an operator's HTTP request, a department callback
    hours later, a timer tick with no trace at all) runs inside an INTERNAL span whose
    parent is `case_traceparent` (stored when the case began) and which LINKS to the span
    that triggered it. Everything it emits then travels in the case's trace, so one case is
    one trace, and the triggering request keeps its own trace, reachable by the link.
    Yields None (and does nothing) when the current span is already in the case's trace
    or no case trace is known.
    """
    case_parent = context_from_traceparent(case_traceparent)
    case_ctx = trace.get_current_span(case_parent).get_span_context()
    current = trace.get_current_span().get_span_context()
    if not case_ctx.is_valid or (current.is_valid and current.trace_id == case_ctx.trace_id):
        yield None
        return
    attrs: dict[str, AttributeValue] = {}
    if case_id is not None:
        attrs[CASE_ID] = case_id
    if service is not None:
        attrs[SERVICE] = service
    attrs.update(attributes or {})
    tracer = get_tracer(tracer_provider)
    with tracer.start_as_current_span(
        name,
        context=case_parent,
        kind=SpanKind.INTERNAL,
        attributes=attrs,
        links=[Link(current)] if current.is_valid else [],
    ) as span:
        yield span
