"""CloudEvents 1.0 over Kafka, binary content mode (DESIGN §3).

The event attributes travel as record headers (`ce_specversion`, `ce_id`, `ce_type`,
`ce_source`, `ce_time`, `ce_subject`, `content-type`) next to the W3C trace context
(`traceparent`, `tracestate`); the record value is the JSON of the payload alone.

Body encoding: compact JSON of the model by field name, with every declared field present
(optional fields that are unset are written as `null`). Consumers in other languages see
the same keys every time, and the committed JSON Schema documents each of them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from onegrid_contracts.base import PAYLOAD_TYPES, Payload

SPECVERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"

H_SPECVERSION = "ce_specversion"
H_ID = "ce_id"
H_TYPE = "ce_type"
H_SOURCE = "ce_source"
H_TIME = "ce_time"
H_SUBJECT = "ce_subject"
H_CONTENT_TYPE = "content-type"
H_TRACEPARENT = "traceparent"
H_TRACESTATE = "tracestate"

_KNOWN_HEADERS = frozenset(
    {
        H_SPECVERSION,
        H_ID,
        H_TYPE,
        H_SOURCE,
        H_TIME,
        H_SUBJECT,
        H_CONTENT_TYPE,
        H_TRACEPARENT,
        H_TRACESTATE,
    }
)

# W3C Trace Context level 1: version-traceid-parentid-flags, lower-case hex.
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<parent_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?$"
)
_MAX_ATTRIBUTE_LEN = 1024
# One regex scan instead of a Python loop per character: every message's headers pass here.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
_MAX_TRACESTATE_LEN = 512


class EnvelopeError(ValueError):
    """A CloudEvents header is missing or malformed, or the event type is unknown."""


def validate_traceparent(value: str) -> str:
    """Return `value` if it is a valid W3C traceparent, else raise EnvelopeError."""
    m = _TRACEPARENT.match(value)
    if m is None:
        raise EnvelopeError(
            f"traceparent {value!r} is not a W3C traceparent "
            "(expected '00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>')"
        )
    if m["version"] == "ff":
        raise EnvelopeError(f"traceparent {value!r} has the forbidden version 'ff'")
    if m["version"] == "00" and m["rest"] is not None:
        raise EnvelopeError(f"traceparent {value!r} has trailing data after the flags")
    if set(m["trace_id"]) == {"0"}:
        raise EnvelopeError(f"traceparent {value!r} has an all-zero trace id")
    if set(m["parent_id"]) == {"0"}:
        raise EnvelopeError(f"traceparent {value!r} has an all-zero parent id")
    return value


def _check_text(name: str, value: str | None, *, required: bool) -> None:
    if value is None:
        if required:
            raise EnvelopeError(f"CloudEvents attribute {name} is required")
        return
    if not value.strip():
        raise EnvelopeError(f"CloudEvents attribute {name} must not be empty")
    if len(value) > _MAX_ATTRIBUTE_LEN:
        raise EnvelopeError(f"CloudEvents attribute {name} is longer than {_MAX_ATTRIBUTE_LEN}")
    if _CONTROL_CHARACTER.search(value) is not None:
        raise EnvelopeError(f"CloudEvents attribute {name} contains control characters")


@dataclass(frozen=True)
class Envelope:
    """The CloudEvents attributes of one message (everything but the body)."""

    id: str
    type: str
    source: str
    time: datetime
    subject: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    specversion: str = SPECVERSION
    datacontenttype: str = JSON_CONTENT_TYPE

    def __post_init__(self) -> None:
        if self.specversion != SPECVERSION:
            raise EnvelopeError(
                f"ce_specversion {self.specversion!r} is not supported (expected {SPECVERSION!r})"
            )
        _check_text(H_ID, self.id, required=True)
        _check_text(H_TYPE, self.type, required=True)
        _check_text(H_SOURCE, self.source, required=True)
        _check_text(H_SUBJECT, self.subject, required=False)
        _check_text(H_CONTENT_TYPE, self.datacontenttype, required=True)
        if not isinstance(self.time, datetime):
            raise EnvelopeError(f"ce_time must be a datetime, got {type(self.time).__name__}")
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise EnvelopeError("ce_time must be timezone-aware")
        if self.traceparent is not None:
            validate_traceparent(self.traceparent)
        if self.tracestate is not None:
            if self.traceparent is None:
                raise EnvelopeError("tracestate is present without traceparent")
            if len(self.tracestate) > _MAX_TRACESTATE_LEN:
                raise EnvelopeError(f"tracestate is longer than {_MAX_TRACESTATE_LEN}")


def format_time(value: datetime) -> str:
    """RFC 3339 with the offset kept as given; UTC is written with 'Z'."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def build_headers(env: Envelope) -> list[tuple[str, bytes]]:
    """Kafka record headers for `env`, optional attributes only when set."""
    headers: list[tuple[str, bytes]] = [
        (H_SPECVERSION, env.specversion.encode()),
        (H_ID, env.id.encode()),
        (H_TYPE, env.type.encode()),
        (H_SOURCE, env.source.encode()),
        (H_TIME, format_time(env.time).encode()),
    ]
    if env.subject is not None:
        headers.append((H_SUBJECT, env.subject.encode()))
    headers.append((H_CONTENT_TYPE, env.datacontenttype.encode()))
    if env.traceparent is not None:
        headers.append((H_TRACEPARENT, env.traceparent.encode()))
    if env.tracestate is not None:
        headers.append((H_TRACESTATE, env.tracestate.encode()))
    return headers


def parse_headers(headers: Sequence[tuple[str, bytes | str]]) -> Envelope:
    """Read the envelope from Kafka record headers; other headers are ignored.

    Header names are matched case-insensitively (some clients lower-case them); a
    CloudEvents header given twice is refused, as is any missing required one.
    """
    values: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        if name not in _KNOWN_HEADERS:
            continue
        if name in values:
            raise EnvelopeError(f"header {name} appears more than once")
        if isinstance(raw_value, bytes | bytearray):
            try:
                values[name] = bytes(raw_value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise EnvelopeError(f"header {name} is not valid UTF-8") from exc
        elif isinstance(raw_value, str):
            values[name] = raw_value
        else:
            raise EnvelopeError(f"header {name} has a {type(raw_value).__name__} value")

    for required in (H_SPECVERSION, H_ID, H_TYPE, H_SOURCE, H_TIME):
        if required not in values:
            raise EnvelopeError(f"missing header {required}")

    raw_time = values[H_TIME]
    try:
        time = datetime.fromisoformat(raw_time)
    except ValueError as exc:
        raise EnvelopeError(f"header {H_TIME} {raw_time!r} is not an RFC 3339 time") from exc
    if time.tzinfo is None:
        raise EnvelopeError(f"header {H_TIME} {raw_time!r} has no UTC offset")

    return Envelope(
        id=values[H_ID],
        type=values[H_TYPE],
        source=values[H_SOURCE],
        time=time,
        subject=values.get(H_SUBJECT),
        traceparent=values.get(H_TRACEPARENT),
        tracestate=values.get(H_TRACESTATE),
        specversion=values[H_SPECVERSION],
        datacontenttype=values.get(H_CONTENT_TYPE, JSON_CONTENT_TYPE),
    )


def encode_payload(payload: Payload) -> bytes:
    """Compact UTF-8 JSON of the payload; unset optional fields are written as null."""
    return payload.model_dump_json(by_alias=True).encode("utf-8")


def payload_class(ce_type: str) -> type[Payload]:
    """The payload model registered for `ce_type`, or EnvelopeError."""
    try:
        return PAYLOAD_TYPES[ce_type]
    except KeyError:
        raise EnvelopeError(f"unknown ce_type {ce_type!r}: no payload model declares it") from None


def decode_payload(ce_type: str, body: bytes) -> Payload:
    """Validate `body` against the model of `ce_type`.

    Raises EnvelopeError for an unknown type and pydantic.ValidationError for a bad body
    (invalid JSON included).
    """
    return payload_class(ce_type).model_validate_json(body)


def announced_type(headers: Sequence[tuple[str, bytes | str]]) -> str | None:
    """The `ce_type` header's value as sent, unchecked; None when there is none. What a
    consumer needs to skip a record it has no handler for without reading the rest."""
    for raw_name, raw_value in headers:
        if raw_name == H_TYPE or raw_name.lower() == H_TYPE:
            if isinstance(raw_value, str):
                return raw_value
            return bytes(raw_value).decode("utf-8", errors="replace")
    return None


def decode_envelope(headers: Sequence[tuple[str, bytes | str]]) -> Envelope:
    """The envelope of one Kafka record, checked to announce a JSON body. Cheap: a consumer
    reads it first and validates the body only of the types it handles."""
    env = parse_headers(headers)
    if env.datacontenttype.split(";")[0].strip() != JSON_CONTENT_TYPE:
        raise EnvelopeError(f"content-type {env.datacontenttype!r} is not {JSON_CONTENT_TYPE}")
    return env


def decode(headers: Sequence[tuple[str, bytes | str]], body: bytes) -> tuple[Envelope, Payload]:
    """Envelope and payload of one Kafka record."""
    env = decode_envelope(headers)
    return env, decode_payload(env.type, body)


def new_envelope(
    payload: Payload,
    *,
    source: str,
    subject: str | None,
    traceparent: str | None = None,
    time: datetime | None = None,
    id: str | None = None,
) -> Envelope:
    """An envelope for `payload`: a fresh UUID id and the current UTC time by default."""
    if not payload.ce_type:
        raise EnvelopeError(f"{type(payload).__name__} declares no ce_type")
    return Envelope(
        id=id if id is not None else str(uuid.uuid4()),
        type=payload.ce_type,
        source=source,
        time=time if time is not None else datetime.now(UTC),
        subject=subject,
        traceparent=traceparent,
    )
