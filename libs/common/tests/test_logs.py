"""Structured JSON logs: fields, case context, trace ids, and PII redaction."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider

from onegrid_common.logs import (
    JsonFormatter,
    RedactionFilter,
    log_context,
    redact,
    setup_logging,
)
from onegrid_common.settings import TelemetrySettings


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter("intake"))
    logger = logging.getLogger("onegrid.test.logs")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.handlers = []


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line_with_the_standard_fields(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    logger.info("case %s registered", "420500-20261123-000001", extra={"category": "A01"})
    (entry,) = lines(stream)
    assert entry["level"] == "INFO"
    assert entry["service"] == "intake"
    assert entry["logger"] == "onegrid.test.logs"
    assert entry["message"] == "case 420500-20261123-000001 registered"
    assert entry["category"] == "A01"
    assert entry["case_id"] is None
    assert datetime.fromisoformat(entry["ts"]).utcoffset() is not None


def test_case_id_is_bound_for_a_block_and_nested_blocks(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    with log_context(case_id="c-1", unit="URBAN"):
        logger.info("outer")
        with log_context(case_id="c-2"):
            logger.info("inner")
        logger.info("outer again")
    logger.info("outside")
    got = [(e["message"], e["case_id"], e.get("unit")) for e in lines(stream)]
    assert got == [
        ("outer", "c-1", "URBAN"),
        ("inner", "c-2", "URBAN"),
        ("outer again", "c-1", "URBAN"),
        ("outside", None, None),
    ]


def test_trace_and_span_ids_come_from_the_current_span(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("handle") as span:
        logger.info("inside")
    (entry,) = lines(stream)
    assert entry["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert entry["span_id"] == format(span.get_span_context().span_id, "016x")


def test_pii_is_masked_in_message_args_extra_context_and_traceback(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    with log_context(case_id="c-1", reporter_phone="13912345678"):
        logger.info(
            "report from 13812345678 id 42050219900307123X",
            extra={
                "reporter": {"phone": "+86 137-1234-5678", "ids": ["110105194912310021"]},
                "mobile": 15012345678,
            },
        )
        try:
            raise ValueError("bad phone 18612345678")
        except ValueError:
            logger.exception("failed for %s", "18812345678")
    text = stream.getvalue()
    for secret in (
        "13812345678",
        "42050219900307123X",
        "1371234",
        "110105194912310021",
        "15012345678",
        "13912345678",
        "18612345678",
        "18812345678",
    ):
        assert secret not in text, secret
    first, second = lines(stream)
    assert first["message"] == "report from 138****5678 id 420502********123X"
    assert first["reporter"]["phone"].endswith("137****5678")
    assert first["mobile"] == "150****5678"
    assert first["reporter_phone"] == "139****5678"
    assert "186****5678" in second["exc"]


def test_other_numbers_are_left_alone() -> None:
    text = "case 420500-20261123-000123 at 1764900000123 ms, trace 4bf92f3577b34da6a3ce929d0e0e4736"
    assert redact(text) == text
    assert redact("20-digit 12345678901234567890") == "20-digit 12345678901234567890"


def test_setup_logging_routes_the_root_logger_through_the_redacting_json_handler() -> None:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    # A uvicorn server started by an earlier test (testkit.serve_app) sets its loggers' levels.
    access = logging.getLogger("uvicorn.access")
    access_level = access.level
    access.setLevel(logging.NOTSET)
    stream = io.StringIO()
    try:
        setup_logging("dispatch", TelemetrySettings(log_level="DEBUG"), stream=stream)
        setup_logging("dispatch", TelemetrySettings(log_level="DEBUG"), stream=stream)
        access.info("GET /v1/reports?phone=13812345678 200")
        logging.getLogger("some.library").debug("debug line")
    finally:
        root.handlers, root.level = before, level
        access.setLevel(access_level)
    entries = lines(stream)
    assert [e["logger"] for e in entries] == ["uvicorn.access", "some.library"]
    assert entries[0]["service"] == "dispatch"
    assert "138****5678" in entries[0]["message"]
