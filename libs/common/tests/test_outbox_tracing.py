"""The outbox relay continues each event's trace: a PRODUCER span per published record,
child of the span that wrote the event, named by the record's traceparent header."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from onegrid_common import metrics, outbox
from onegrid_common.telemetry import CASE_ID, SERVICE, get_tracer, start_consumer_span
from onegrid_common.testing.helpers import (
    Counted,
    create_topic,
    migrate_schema,
    pool_for,
    read_topic,
    unique,
)
from onegrid_contracts.envelope import parse_headers

from .test_outbox import running_relay

pytestmark = pytest.mark.integration


def _memory_exporter() -> InMemorySpanExporter:
    """An exporter on the process's global provider (installed if none is yet): the relay
    and the runtime trace through the global provider."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def _span_id(traceparent: str) -> int:
    return int(traceparent.split("-")[2], 16)


async def test_relay_publishes_each_record_in_a_producer_span_child_of_its_writer(
    pg_dsn: str, kafka_bootstrap: str
) -> None:
    exporter = _memory_exporter()
    schema, topic = unique("obt"), unique("test.outbox.trace")
    await create_topic(kafka_bootstrap, topic, partitions=1)
    await migrate_schema(pg_dsn, schema)
    pool = await pool_for(pg_dsn, schema)
    try:
        with get_tracer().start_as_current_span("POST /v1/reports") as request:
            async with pool.acquire() as conn, conn.transaction():
                await outbox.enqueue(
                    conn, source="test", topic=topic, key="case-7", payload=Counted(key="k", seq=1)
                )
        async with pool.acquire() as conn, conn.transaction():  # outside any trace
            await outbox.enqueue(
                conn, source="test", topic=topic, key="case-8", payload=Counted(key="k", seq=2)
            )
        before = metrics.MESSAGES_PRODUCED.labels("relay-svc", topic)._value.get()
        async with running_relay(pg_dsn, schema, kafka_bootstrap, service="relay-svc"):
            records = await read_topic(kafka_bootstrap, topic, expected=2)
    finally:
        await pool.close()
    traced, untraced = records
    env = parse_headers(traced.headers)
    assert env.traceparent is not None
    publish = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert len(publish) == 1  # the untraced row got no span
    span = publish[0]
    assert span.context.span_id == _span_id(env.traceparent)
    assert span.context.trace_id == request.get_span_context().trace_id
    assert span.parent is not None
    assert span.parent.span_id == request.get_span_context().span_id
    assert span.attributes is not None
    assert span.attributes["messaging.destination.name"] == topic
    assert span.attributes[CASE_ID] == "case-7"
    assert span.attributes[SERVICE] == "relay-svc"
    assert parse_headers(untraced.headers).traceparent is None
    assert metrics.MESSAGES_PRODUCED.labels("relay-svc", topic)._value.get() == before + 2

    # A consumer continuing the header is a child of the publish span.
    with start_consumer_span("consume", env.traceparent) as consumer:
        pass
    assert consumer.parent is not None  # type: ignore[attr-defined]
    assert consumer.parent.span_id == span.context.span_id  # type: ignore[attr-defined]
