"""Tracing across a traceparent string: producer → Kafka headers → consumer."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from onegrid_common.settings import TelemetrySettings
from onegrid_common.telemetry import (
    CASE_ID,
    MESSAGING_DESTINATION,
    MESSAGING_KAFKA_KEY,
    MESSAGING_SYSTEM,
    context_from_traceparent,
    get_tracer,
    inject_traceparent,
    setup_telemetry,
    start_consumer_span,
    start_producer_span,
)


def provider_with_memory() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = setup_telemetry(
        "dispatch",
        TelemetrySettings(),
        span_processors=[SimpleSpanProcessor(exporter)],
        set_global=False,
    )
    return provider, exporter


def test_consumer_span_is_a_child_of_the_producer_span_across_a_string() -> None:
    provider, exporter = provider_with_memory()
    with start_producer_span(
        "send cases.events.v1",
        topic="cases.events.v1",
        key="case-1",
        case_id="case-1",
        tracer_provider=provider,
    ) as producer:
        header = inject_traceparent()
    assert header is not None
    # The string is all that crosses Kafka.
    with start_consumer_span(
        "process cases.events.v1",
        header,
        {"onegrid.handler": "on_case_reported"},
        topic="cases.events.v1",
        key="case-1",
        case_id="case-1",
        tracer_provider=provider,
    ):
        pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    sent, processed = spans["send cases.events.v1"], spans["process cases.events.v1"]
    assert sent.context.span_id == producer.get_span_context().span_id
    assert processed.context.trace_id == sent.context.trace_id
    assert processed.parent is not None
    assert processed.parent.span_id == sent.context.span_id
    assert sent.kind is SpanKind.PRODUCER
    assert processed.kind is SpanKind.CONSUMER
    assert processed.attributes is not None
    assert processed.attributes[MESSAGING_SYSTEM] == "kafka"
    assert processed.attributes[MESSAGING_DESTINATION] == "cases.events.v1"
    assert processed.attributes[MESSAGING_KAFKA_KEY] == "case-1"
    assert processed.attributes[CASE_ID] == "case-1"
    assert processed.attributes["onegrid.handler"] == "on_case_reported"
    assert processed.resource.attributes["service.name"] == "dispatch"


def test_producer_span_continues_a_stored_traceparent() -> None:
    provider, exporter = provider_with_memory()
    stored = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with start_producer_span("send x", topic="x", traceparent=stored, tracer_provider=provider):
        pass
    (span,) = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "00f067aa0ba902b7"


def test_missing_or_broken_traceparent_starts_a_new_trace() -> None:
    provider, exporter = provider_with_memory()
    for header in (None, "", "00-not-a-trace-01"):
        with start_consumer_span("process t", header, topic="t", tracer_provider=provider):
            pass
    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    assert all(s.parent is None for s in spans)
    assert len({s.context.trace_id for s in spans}) == 3


def test_consumer_span_links_to_an_earlier_trace() -> None:
    provider, exporter = provider_with_memory()
    first = "00-11111111111111111111111111111111-2222222222222222-01"
    with start_consumer_span("callback", None, links=[first], tracer_provider=provider):
        pass
    (span,) = exporter.get_finished_spans()
    assert [format(link.context.trace_id, "032x") for link in span.links] == ["1" * 32]


def test_no_traceparent_outside_a_span() -> None:
    assert inject_traceparent() is None
    assert inject_traceparent(context_from_traceparent(None)) is None


def test_spans_go_to_the_json_lines_file_when_configured(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "spans.jsonl"
    provider = setup_telemetry("intake", TelemetrySettings(traces_file=str(path)), set_global=False)
    with (
        start_producer_span("send a", topic="a", tracer_provider=provider),
        start_producer_span("send b", topic="b", tracer_provider=provider),
    ):
        pass
    provider.force_flush()
    provider.shutdown()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    by_name = {r["name"]: r for r in records}
    assert set(by_name) == {"send a", "send b"}
    assert by_name["send b"]["parent_span_id"] == by_name["send a"]["span_id"]
    assert by_name["send b"]["trace_id"] == by_name["send a"]["trace_id"]
    assert by_name["send a"]["service"] == "intake"
    assert by_name["send a"]["attributes"]["messaging.destination.name"] == "a"
    assert by_name["send a"]["kind"] == "PRODUCER"
    # Times are RFC 3339 in UTC to the microsecond, and agree with the duration.
    start = datetime.fromisoformat(by_name["send a"]["start"])
    end = datetime.fromisoformat(by_name["send a"]["end"])
    assert start.utcoffset() == timedelta(0)
    assert by_name["send a"]["start"].endswith("+00:00")
    assert abs((end - start).total_seconds() * 1000 - by_name["send a"]["duration_ms"]) < 0.002


def test_otlp_endpoint_gets_the_traces_path() -> None:
    provider = setup_telemetry(
        "intake",
        TelemetrySettings(otlp_endpoint="http://127.0.0.1:4318"),
        set_global=False,
    )
    processors = provider._active_span_processor._span_processors
    exporter = processors[0].span_exporter  # type: ignore[attr-defined]
    assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
    provider.shutdown()


def test_the_tracer_of_a_provider_sends_spans_to_that_provider_only() -> None:
    # get_tracer caches a tracer per provider: a cache that ignored the provider would
    # send these spans to the first one asked for.
    (one, one_spans), (other, other_spans) = provider_with_memory(), provider_with_memory()
    with get_tracer(one).start_as_current_span("first"):
        pass
    with get_tracer(other).start_as_current_span("second"):
        pass
    assert [s.name for s in one_spans.get_finished_spans()] == ["first"]
    assert [s.name for s in other_spans.get_finished_spans()] == ["second"]
