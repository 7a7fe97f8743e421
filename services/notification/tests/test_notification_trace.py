"""A notification is sent in the trace of the message that asked for it: the row keeps that
span's traceparent, the send is a CLIENT span under it (however late), and the API names
the trace, the requesting span and each attempt's send span."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from onegrid_common.telemetry import CASE_ID, SERVICE
from onegrid_common.testing.helpers import eventually
from onegrid_contracts.envelope import new_envelope
from onegrid_contracts.notify import (
    NotificationRequested,
    NotifyChannel,
    Recipient,
    RecipientKind,
)
from onegrid_notification.testing import Stack

pytestmark = pytest.mark.integration


def span_exporter() -> InMemorySpanExporter:
    """An in-memory exporter on the process's TracerProvider (the runtime traces there)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def _hex(n: int, width: int) -> str:
    return format(n, f"0{width}x")


async def test_a_send_is_a_child_of_the_span_that_asked_for_it(stack: Stack) -> None:
    spans = span_exporter()
    trace_id, asking_span = secrets.token_hex(16), secrets.token_hex(8)
    case_id = uuid.uuid4()
    request = NotificationRequested(
        request_id=uuid.uuid4(),
        dedup_key=f"trace-test:{uuid.uuid4()}",
        recipient=Recipient(kind=RecipientKind.STAFF, id=f"S9{secrets.randbelow(10**6):06d}"),
        channels=[NotifyChannel.APP_PUSH],
        template_id="case_accepted",
        variables={"case_no": "4205-20261123-000042", "merged": False},
        requested_by="test",
        requested_at=datetime.now(UTC),
        case_id=case_id,
        case_no="4205-20261123-000042",
    )
    env = new_envelope(
        request,
        source="test",
        subject=str(case_id),
        traceparent=f"00-{trace_id}-{asking_span}-01",
    )
    await stack.send(stack.config.requests_topic, request.recipient.key, request, env)

    async def delivered() -> dict[str, Any] | None:
        items = await stack.notifications(case_id=str(case_id))
        return items[0] if items and items[0]["status"] == "delivered" else None

    item = await eventually(delivered, what="the notification delivered")

    def sent() -> list[ReadableSpan]:
        return [
            s
            for s in spans.get_finished_spans()
            if s.name.startswith("notification send") and _attr(s, CASE_ID) == str(case_id)
        ]

    (send,) = await eventually(sent, what="the send span")
    by_id = {_hex(s.context.span_id, 16): s for s in spans.get_finished_spans()}
    assert send.kind is SpanKind.CLIENT
    assert _attr(send, SERVICE) == "notification"
    assert _hex(send.context.trace_id, 32) == trace_id
    assert send.parent is not None
    consumed = by_id[_hex(send.parent.span_id, 16)]  # the stored traceparent names it
    assert consumed.kind is SpanKind.CONSUMER
    assert consumed.parent is not None
    assert _hex(consumed.parent.span_id, 16) == asking_span

    assert item["trace_id"] == trace_id
    assert item["span_id"] == _hex(consumed.context.span_id, 16)
    assert item["attempt_log"][-1]["span_id"] == _hex(send.context.span_id, 16)


def _attr(span: ReadableSpan, name: str) -> Any:
    return (span.attributes or {}).get(name)
