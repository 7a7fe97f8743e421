import re
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from pydantic import ValidationError

from onegrid_contracts.cases import CaseRegistered
from onegrid_contracts.envelope import (
    Envelope,
    EnvelopeError,
    announced_type,
    build_headers,
    decode,
    decode_payload,
    encode_payload,
    new_envelope,
    parse_headers,
)
from onegrid_contracts.primitives import Actor, ActorKind

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CASE_ID = UUID("6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b")


def registered() -> CaseRegistered:
    return CaseRegistered(
        case_id=CASE_ID,
        case_no="420500-20261123-000042",
        actor=Actor(kind=ActorKind.SYSTEM, id="dispatch"),
        at=datetime(2026, 11, 23, 9, 31, 6, tzinfo=timezone(timedelta(hours=8))),
        category_code="environment.exposed_garbage",
        grid_code="420502003001001",
        automatic=True,
    )


def test_headers_round_trip_keeps_every_attribute() -> None:
    payload = registered()
    env = new_envelope(payload, source="dispatch", subject=str(CASE_ID), traceparent=TRACEPARENT)
    env = Envelope(**{**env.__dict__, "tracestate": "onegrid=case"})

    parsed = parse_headers(build_headers(env))

    assert parsed == env
    assert parsed.type == "onegrid.case.registered.v1"


def test_headers_are_the_cloudevents_kafka_names() -> None:
    env = new_envelope(registered(), source="dispatch", subject=str(CASE_ID))
    names = [name for name, _ in build_headers(env)]
    assert names == [
        "ce_specversion",
        "ce_id",
        "ce_type",
        "ce_source",
        "ce_time",
        "ce_subject",
        "content-type",
    ]


def test_ce_time_is_rfc3339_with_z_for_utc() -> None:
    env = new_envelope(
        registered(),
        source="dispatch",
        subject=None,
        time=datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC),
    )
    assert dict(build_headers(env))["ce_time"] == b"2026-11-23T01:02:03Z"


def test_new_envelope_defaults_to_uuid_and_utc_now() -> None:
    before = datetime.now(UTC)
    env = new_envelope(registered(), source="dispatch", subject=str(CASE_ID))
    assert UUID(env.id).version == 4
    assert before <= env.time <= datetime.now(UTC)


def test_payload_round_trip_through_json() -> None:
    payload = registered()
    body = encode_payload(payload)
    assert b", " not in body
    assert b'": ' not in body
    assert decode_payload(payload.ce_type, body) == payload


def test_decode_reads_headers_and_body_together() -> None:
    payload = registered()
    env = new_envelope(payload, source="dispatch", subject=str(CASE_ID))
    got_env, got_payload = decode(build_headers(env), encode_payload(payload))
    assert got_env == env
    assert got_payload == payload


def test_parse_accepts_str_header_values_and_ignores_foreign_headers() -> None:
    env = new_envelope(registered(), source="dispatch", subject=None)
    headers = [(k, v.decode()) for k, v in build_headers(env)] + [("x-retry", b"3")]
    assert parse_headers(headers) == env


@pytest.mark.parametrize("missing", ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time"])
def test_missing_required_header_is_named(missing: str) -> None:
    env = new_envelope(registered(), source="dispatch", subject=None)
    headers = [(k, v) for k, v in build_headers(env) if k != missing]
    with pytest.raises(EnvelopeError, match=f"missing header {missing}"):
        parse_headers(headers)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "not a W3C traceparent"),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "not a W3C traceparent"),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "all-zero trace id"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "all-zero parent id"),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "forbidden version"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", "trailing data"),
    ],
)
def test_bad_traceparent_is_refused(value: str, message: str) -> None:
    env = new_envelope(registered(), source="dispatch", subject=None)
    headers = [*build_headers(env), ("traceparent", value.encode())]
    with pytest.raises(EnvelopeError, match=message):
        parse_headers(headers)
    with pytest.raises(EnvelopeError, match=message):
        new_envelope(registered(), source="dispatch", subject=None, traceparent=value)


def test_unknown_type_is_refused() -> None:
    with pytest.raises(
        EnvelopeError, match=re.escape("unknown ce_type 'onegrid.case.teleported.v1'")
    ):
        decode_payload("onegrid.case.teleported.v1", b"{}")


def test_bad_body_raises_validation_error() -> None:
    with pytest.raises(ValidationError, match="case_id"):
        decode_payload("onegrid.case.registered.v1", b'{"case_no": "x"}')
    with pytest.raises(ValidationError):
        decode_payload("onegrid.case.registered.v1", b"not json")


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        ("ce_specversion", b"0.3", "not supported"),
        ("ce_time", b"yesterday", "not an RFC 3339 time"),
        ("ce_time", b"2026-11-23T09:00:00", "no UTC offset"),
        ("ce_id", b"", "must not be empty"),
        ("ce_source", b"\xff\xfe", "not valid UTF-8"),
        ("ce_source", b"dispatch\n", "control characters"),
        ("ce_id", b"id\x7f", "control characters"),
        ("ce_id", b"id\x00", "control characters"),
    ],
)
def test_malformed_header_is_named(header: str, value: bytes, message: str) -> None:
    env = new_envelope(registered(), source="dispatch", subject=None)
    headers = [(k, value if k == header else v) for k, v in build_headers(env)]
    with pytest.raises(EnvelopeError, match=message):
        parse_headers(headers)


def test_duplicate_cloudevents_header_is_refused() -> None:
    env = new_envelope(registered(), source="dispatch", subject=None)
    with pytest.raises(EnvelopeError, match="ce_type appears more than once"):
        parse_headers([*build_headers(env), ("ce_type", b"onegrid.case.closed.v1")])


def test_naive_time_is_refused() -> None:
    with pytest.raises(EnvelopeError, match="timezone-aware"):
        new_envelope(registered(), source="dispatch", subject=None, time=datetime(2026, 1, 1))


def test_non_json_content_type_is_refused_on_decode() -> None:
    payload = registered()
    env = Envelope(
        **{
            **new_envelope(payload, source="d", subject=None).__dict__,
            "datacontenttype": "application/avro",
        }
    )
    with pytest.raises(EnvelopeError, match="content-type"):
        decode(build_headers(env), encode_payload(payload))


def test_announced_type_reads_only_ce_type_as_sent() -> None:
    assert announced_type([("CE_TYPE", b"onegrid.case.closed.v1"), ("ce_time", b"bad")]) == (
        "onegrid.case.closed.v1"
    )
    assert announced_type([("ce_id", b"1"), ("ce_type", "onegrid.x.v1")]) == "onegrid.x.v1"
    assert announced_type([("ce_id", b"1")]) is None
