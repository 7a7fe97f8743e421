"""Structured JSON logs: one object per line, with service, case id and trace id.

    setup_logging("intake", settings.telemetry)
    log = logging.getLogger("onegrid.intake")
    with log_context(case_id=case.id):
        log.info("case registered", extra={"category": code})

prints {"ts": "...+00:00", "level": "INFO", "service": "intake", "logger": "onegrid.intake",
"message": "case registered", "case_id": "...", "trace_id": "...", "span_id": "...",
"category": "..."}. Anything shaped like a Chinese mobile number or a resident ID number
is masked before a record leaves the process: PII never reaches the logs.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO, Any, Final

import orjson
from opentelemetry import trace

from onegrid_common.pii import mask_id_number, mask_phone
from onegrid_common.settings import TelemetrySettings

_context: ContextVar[Mapping[str, Any]] = ContextVar(
    "onegrid_log_context", default=MappingProxyType({})
)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

# Digit-only boundaries: a longer number is not a phone, but "tel:13812345678" is.
_ID_NUMBER = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?!\d)")


def redact(text: str) -> str:
    """`text` with resident ID numbers and mobile numbers masked."""
    text = _ID_NUMBER.sub(lambda m: mask_id_number(m.group(0)), text)
    return _PHONE.sub(lambda m: mask_phone(m.group(1) + m.group(2) + m.group(3)), text)


def redact_value(value: Any) -> Any:
    """`value` with every string inside it (dicts, lists, tuples) redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return redact(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, int) and not isinstance(value, bool):
        # An int can be a phone number too.
        masked = redact(str(value))
        return value if masked == str(value) else masked
    if value is None or isinstance(value, bool | float):
        return value
    return redact(str(value))


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Adds `fields` (e.g. case_id) to every record logged inside the block."""
    token = bind_log_context(**fields)
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**fields: Any) -> Token[Mapping[str, Any]]:
    """Like `log_context`, for code that cannot use a with block; undo with `.reset`."""
    return _context.set({**_context.get(), **fields})


def reset_log_context(token: Token[Mapping[str, Any]]) -> None:
    _context.reset(token)


def current_log_context() -> Mapping[str, Any]:
    return _context.get()


class RedactionFilter(logging.Filter):
    """Masks phone and ID numbers in the message, the extra fields and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_onegrid_redacted", False):
            return True
        record.msg = redact(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRS:
                record.__dict__[key] = redact_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._onegrid_redacted = True
        return True


def _trace_ids() -> tuple[str | None, str | None]:
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def _json_default(value: Any) -> str:
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; context and extra fields become members."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = _trace_ids()
        # Context is bound by application code, so it is redacted like extra fields.
        context = redact_value(_context.get())
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            "case_id": context.get("case_id"),
            "trace_id": trace_id,
            "span_id": span_id,
        }
        for key, value in context.items():
            entry.setdefault(key, value)
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry, default=_json_default).decode("utf-8")


class TextFormatter(logging.Formatter):
    """Human-readable lines for a developer's terminal (`log_json=false`)."""

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = dict(_context.get())
        trace_id, _ = _trace_ids()
        if trace_id:
            context["trace_id"] = trace_id
        if context:
            line += " " + " ".join(f"{k}={v}" for k, v in context.items())
        return line


_HANDLER_NAME: Final = "onegrid"


def setup_logging(
    service: str, settings: TelemetrySettings, *, stream: IO[str] | None = None
) -> logging.Handler:
    """Routes every logger (uvicorn's too) to one redacting handler on the root logger.

    Run uvicorn with `log_config=None` so it does not install its own handlers.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter(service) if settings.log_json else TextFormatter(service))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler
