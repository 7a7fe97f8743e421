"""Gateways' reports on intake.reports.v1 and case lifecycle on cases.events.v1."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from onegrid_common.producer import OutgoingRecord, Producer
from onegrid_common.testing.helpers import eventually, read_topic
from onegrid_contracts.base import Payload
from onegrid_contracts.cases import (
    CaseClosed,
    CaseEvaluated,
    CaseEvent,
    CaseOutcome,
    CaseReopened,
    Satisfaction,
)
from onegrid_contracts.catalogue import CASES_EVENTS, INTAKE_REPORTS, dlq_topic
from onegrid_contracts.envelope import build_headers, encode_payload, new_envelope
from onegrid_contracts.primitives import Actor, ActorKind
from onegrid_contracts.reports import ChannelReport
from onegrid_intake.testing import GARBAGE, body, grid_points, key

from .conftest import IntakeUnderTest

pytestmark = pytest.mark.integration


async def publish(intake: IntakeUnderTest, topic: str, msg_key: str, payload: Payload) -> str:
    return await publish_raw(intake, topic, msg_key, payload, encode_payload(payload))


async def publish_raw(
    intake: IntakeUnderTest, topic: str, msg_key: str, payload: Payload, value: bytes
) -> str:
    """Publish `value` with `payload`'s envelope; the envelope's id."""
    env = new_envelope(payload, source="test-gateway", subject=msg_key)
    await publish_records(intake, [OutgoingRecord(topic, msg_key, value, build_headers(env))])
    return env.id


async def publish_records(intake: IntakeUnderTest, records: list[OutgoingRecord]) -> None:
    """Send `records` together (one key's land in one batch of its partition)."""
    producer = Producer(intake.settings.kafka, client_id=f"intake-test-{uuid.uuid4().hex[:6]}")
    await producer.start()
    try:
        await producer.send_many(records)
    finally:
        await producer.stop()


def channel_report(report_id: str, lon: float, lat: float, **overrides: Any) -> ChannelReport:
    fields = body(lon, lat, channel="hotline_12345", category_code=None,
                  description="路口井盖破损，晚上有行人差点踩空，请尽快处理")  # fmt: skip
    fields.update(overrides)
    return ChannelReport.model_validate(
        {**fields, "channel_report_id": report_id, "gateway": "hotline-12345",
         "received_at": datetime.now(UTC).isoformat()}
    )  # fmt: skip


async def report_row(intake: IntakeUnderTest, report_key: str) -> Any:
    async with intake.runtime.db.acquire() as conn:
        return await conn.fetchrow(
            "SELECT * FROM report WHERE idempotency_scope = 'gateway:hotline-12345'"
            " AND idempotency_key = $1",
            report_key,
        )


async def test_channel_report_becomes_a_case_once_even_when_resent(
    intake: IntakeUnderTest,
) -> None:
    code, lon, lat = grid_points(intake.city)[500]
    rid = f"hotline-{uuid.uuid4().hex[:12]}"
    report = channel_report(rid, lon, lat)
    inbox_sql = "SELECT count(*) FROM inbox WHERE consumer = 'intake.reports'"
    async with intake.runtime.db.acquire() as conn:
        before = await conn.fetchval(inbox_sql)
    await publish(intake, INTAKE_REPORTS, rid, report)
    await publish(intake, INTAKE_REPORTS, rid, report)  # a gateway resend: new message id
    row = await eventually(lambda: report_row(intake, rid))
    assert row["grid_code"] == code
    assert row["category_code"] == "facilities.manhole_cover"
    assert row["gateway"] == "hotline-12345"
    async with intake.runtime.db.acquire() as conn:
        # Both messages were consumed (the resend too), yet one report exists.
        await eventually(lambda: conn.fetchval(inbox_sql + " HAVING count(*) >= $1", before + 2))
        reports = await conn.fetchval("SELECT count(*) FROM report WHERE idempotency_key = $1", rid)
    assert reports == 1


async def test_invalid_channel_reports_go_to_the_dead_letter_topic_with_the_reason(
    intake: IntakeUnderTest,
) -> None:
    _, lon, lat = grid_points(intake.city)[510]
    unknown = f"hotline-{uuid.uuid4().hex[:12]}"
    unknown_category = channel_report(unknown, lon, lat, category_code="nothing.such_thing")
    await publish(intake, INTAKE_REPORTS, unknown, unknown_category)
    broken = f"hotline-{uuid.uuid4().hex[:12]}"
    valid = channel_report(broken, lon, lat)
    bad_body = orjson.loads(encode_payload(valid))
    bad_body["location"] = {"lon": 500, "lat": 30.7}
    await publish_raw(intake, INTAKE_REPORTS, broken, valid, orjson.dumps(bad_body))

    async def dead_letters() -> dict[str, str]:
        records = await read_topic(
            intake.settings.kafka.bootstrap_servers, dlq_topic("intake"), 10**9, 2
        )
        found = {}
        for r in records:
            k = r.key.decode() if r.key else ""
            if k in (unknown, broken):
                found[k] = dict(r.headers)["onegrid_error"].decode()
        return found if len(found) == 2 else {}

    errors = await eventually(dead_letters, timeout_s=40)
    assert "category_code" in errors[unknown]
    assert "location.lon" in errors[broken] or "lon" in errors[broken]
    assert await report_row(intake, unknown) is None


async def test_a_closed_case_takes_no_more_duplicates(intake: IntakeUnderTest) -> None:
    _, lon, lat = grid_points(intake.city)[520]
    auth = intake.token("closer", "grid_worker")
    first = (await intake.client.post("/v1/reports", json=body(lon, lat),
                                      headers={**auth, **key()})).json()  # fmt: skip
    closed = CaseClosed(
        case_id=first["case_id"], case_no=first["case_no"],
        actor=Actor(kind=ActorKind.SYSTEM, id="dispatch"), at=datetime.now(UTC),
        outcome=CaseOutcome.FIXED,
    )  # fmt: skip
    await publish(intake, CASES_EVENTS, first["case_id"], closed)

    async def is_closed() -> bool:
        async with intake.runtime.db.acquire() as conn:
            return not await conn.fetchval(
                "SELECT open FROM case_ WHERE case_id = $1", uuid.UUID(first["case_id"])
            )

    await eventually(is_closed, timeout_s=40)
    again = (await intake.client.post("/v1/reports", json=body(lon, lat),
                                      headers={**auth, **key()})).json()  # fmt: skip
    assert again["duplicate_of"] is None
    assert again["case_id"] != first["case_id"]

    # The reporter's rating after the close changes nothing: no new row version.
    case_id = uuid.UUID(first["case_id"])
    async with intake.runtime.db.acquire() as conn:
        version = await conn.fetchval("SELECT xmin::text FROM case_ WHERE case_id = $1", case_id)
    evaluated = CaseEvaluated(
        case_id=case_id, case_no=first["case_no"],
        actor=Actor(kind=ActorKind.REPORTER, id="rp-closer"), at=datetime.now(UTC),
        reporter_id="rp-closer", rating=5, satisfaction=Satisfaction.VERY_SATISFIED,
    )  # fmt: skip
    message_id = await publish(intake, CASES_EVENTS, first["case_id"], evaluated)

    async def consumed() -> bool:
        async with intake.runtime.db.acquire() as conn:
            return bool(
                await conn.fetchval("SELECT count(*) FROM inbox WHERE message_id = $1", message_id)
            )

    await eventually(consumed, timeout_s=40)
    async with intake.runtime.db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT xmin::text AS version, open FROM case_ WHERE case_id = $1", case_id
        )
    assert (row["version"], row["open"]) == (version, False)
    assert GARBAGE


async def test_a_batch_of_case_events_is_applied_in_order_each_case_ended_once(
    intake: IntakeUnderTest,
) -> None:
    """One send, so one batch: a case closed and reopened in it is open again (the close
    must not be applied after the reopen), a case closed and rated keeps its close time."""
    auth = intake.token("batcher", "grid_worker")
    points = [grid_points(intake.city)[n][1:] for n in (530, 540)]
    reopened, rated = [
        (await intake.client.post("/v1/reports", json=body(lon, lat),
                                  headers={**auth, **key()})).json()
        for lon, lat in points
    ]  # fmt: skip
    system = Actor(kind=ActorKind.SYSTEM, id="dispatch")
    reporter = Actor(kind=ActorKind.REPORTER, id="rp-batcher")

    def closed(case: dict[str, Any]) -> CaseClosed:
        return CaseClosed(case_id=case["case_id"], case_no=case["case_no"], actor=system,
                          at=datetime.now(UTC), outcome=CaseOutcome.FIXED)  # fmt: skip

    events: list[tuple[dict[str, Any], CaseEvent]] = [
        (reopened, closed(reopened)),
        (rated, closed(rated)),
        (reopened, CaseReopened(case_id=reopened["case_id"], case_no=reopened["case_no"],
                                actor=reporter, at=datetime.now(UTC), reason="垃圾又堆起来了",
                                reopen_count=1)),
        (rated, CaseEvaluated(case_id=rated["case_id"], case_no=rated["case_no"],
                              actor=reporter, at=datetime.now(UTC), reporter_id="rp-batcher",
                              rating=4, satisfaction=Satisfaction.SATISFIED)),
    ]  # fmt: skip
    records, ids, times = [], [], []
    for case, event in events:
        env = new_envelope(event, source="test-dispatch", subject=case["case_id"])
        ids.append(env.id)
        times.append(env.time)
        records.append(OutgoingRecord(CASES_EVENTS, case["case_id"], encode_payload(event),
                                      build_headers(env)))  # fmt: skip
    await publish_records(intake, records)

    async def consumed() -> bool:
        async with intake.runtime.db.acquire() as conn:
            n = await conn.fetchval("SELECT count(*) FROM inbox WHERE message_id = ANY($1)", ids)
        return bool(n == len(ids))

    await eventually(consumed, timeout_s=40)
    async with intake.runtime.db.acquire() as conn:
        rows = {
            str(r["case_id"]): (r["open"], r["closed_at"])
            for r in await conn.fetch(
                "SELECT case_id, open, closed_at FROM case_ WHERE case_id = ANY($1::uuid[])",
                [reopened["case_id"], rated["case_id"]],
            )
        }
    assert rows[reopened["case_id"]] == (True, None)
    assert rows[rated["case_id"]] == (False, times[1])  # its close's, not its rating's
    # The reopened case takes the next report at its point; the rated one does not.
    again = [
        (await intake.client.post("/v1/reports", json=body(lon, lat),
                                  headers={**auth, **key()})).json()
        for lon, lat in points
    ]  # fmt: skip
    assert again[0]["duplicate_of"] == reopened["case_id"]
    assert again[1]["duplicate_of"] is None
