"""POST/GET /v1/reports against a real intake runtime (PostgreSQL, Redis, broker, registry)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from onegrid_common.pii import EncryptedValue, PiiCipher
from onegrid_common.testing.helpers import eventually, read_topic
from onegrid_common.testing.registry import publish_entities
from onegrid_contracts.cases import CaseReported
from onegrid_contracts.catalogue import CASES_EVENTS
from onegrid_contracts.reports import ReportBody
from onegrid_intake.domain.case_no import SequenceExhaustedError
from onegrid_intake.intake import (
    IdempotencyConflictError,
    InvalidReportError,
    Submission,
    phone_aad,
)
from onegrid_intake.testing import GARBAGE, MANHOLE, body, grid_points, key

from .conftest import CALLER_LIMIT, IntakeUnderTest

pytestmark = pytest.mark.integration

CASE_NO = re.compile(r"^420500-\d{8}-\d{6}$")
_next_point = 0


def point(intake: IntakeUnderTest) -> tuple[str, float, float]:
    """A point in a grid no other test of this module uses (no accidental duplicates)."""
    global _next_point
    _next_point += 1
    return grid_points(intake.city)[_next_point * 7]


async def post(
    intake: IntakeUnderTest, report: Any, *, subject: str | None = None, role: str = "grid_worker",
    headers: dict[str, str] | None = None,
) -> Any:  # fmt: skip
    auth = intake.token(subject or f"u-{uuid.uuid4().hex[:8]}", role)
    return await intake.client.post(
        "/v1/reports", json=report, headers={**auth, **(headers if headers is not None else key())}
    )


async def reported_event(intake: IntakeUnderTest, report_id: str) -> tuple[bytes, CaseReported]:
    records = await read_topic(intake.settings.kafka.bootstrap_servers, CASES_EVENTS, 10**9, 3)
    for r in records:
        if r.value and report_id.encode() in r.value:
            return r.value, CaseReported.model_validate_json(r.value)
    raise AssertionError(f"no CaseReported for report {report_id}")


async def test_report_is_accepted_located_and_published_with_pii_sealed(
    intake: IntakeUnderTest,
) -> None:
    code, lon, lat = point(intake)
    resp = await post(intake, body(lon, lat))
    assert resp.status_code == 202, resp.text
    receipt = resp.json()
    assert CASE_NO.match(receipt["case_no"])
    assert receipt["duplicate_of"] is None

    async with intake.runtime.db.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM report WHERE report_id = $1",
                                  uuid.UUID(receipt["report_id"]))  # fmt: skip
    assert row["grid_code"] == code
    assert row["grid_path"][-1] == code
    assert "13800138000" not in str(dict(row))  # encrypted at rest, masked in the stored report
    cipher = PiiCipher.from_settings(intake.settings.security)
    aad = f"intake.report.phone:{receipt['report_id']}".encode()
    assert cipher.decrypt(row["phone_encrypted"], associated_data=aad) == "13800138000"
    assert row["pii_key_id"] == cipher.primary_key_id

    raw, event = await asyncio.wait_for(reported_event(intake, receipt["report_id"]), 30)
    assert b"13800138000" not in raw
    assert str(event.case_id) == receipt["case_id"]
    assert event.case_no == receipt["case_no"]  # numbered in the same statement as the case
    assert event.grid_code == code
    assert event.reporter.masked_phone == "138****8000"
    assert event.reporter.masked_name == "张*"
    sealed = event.reporter.phone_encrypted
    assert sealed is not None
    value = EncryptedValue(sealed.key_id, base64.b64decode(sealed.nonce),
                           base64.b64decode(sealed.ciphertext))  # fmt: skip
    phone = cipher.decrypt(value, associated_data=phone_aad(event.reporter.reporter_id))
    assert phone == "13800138000"


async def test_same_key_same_body_gets_the_same_answer_other_body_409(
    intake: IntakeUnderTest,
) -> None:
    _, lon, lat = point(intake)
    headers = key()
    first = await post(intake, body(lon, lat), subject="same-key", headers=headers)
    again = await post(intake, body(lon, lat), subject="same-key", headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await post(intake, body(lon, lat, description="另一件事：路灯不亮"),
                       subject="same-key", headers=headers)  # fmt: skip
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"] == "urn:onegrid:problem:idempotency-conflict"


async def test_case_numbers_have_no_gaps_even_when_transactions_roll_back(
    intake: IntakeUnderTest,
) -> None:
    # Ten racing resends of one key: nine roll back after taking a number, and give it back.
    _, lon, lat = point(intake)
    headers = key()
    racing = [post(intake, body(lon, lat), subject="racer", headers=headers) for _ in range(10)]
    distinct = [post(intake, body(*point(intake)[1:])) for _ in range(10)]
    answers = await asyncio.gather(*racing, *distinct)
    assert all(a.status_code == 202 for a in answers), [a.text for a in answers]
    assert len({a.json()["case_id"] for a in answers[:10]}) == 1
    async with intake.runtime.db.acquire() as conn:
        numbers = await conn.fetch("SELECT case_no FROM case_")
        counters = await conn.fetch("SELECT day, last_sequence FROM case_no_counter")
    by_day: dict[str, list[int]] = {}
    for r in numbers:
        _, day, seq = r["case_no"].split("-")
        by_day.setdefault(day, []).append(int(seq))
    for c in counters:
        seqs = sorted(by_day[f"{c['day']:%Y%m%d}"])
        assert seqs == list(range(1, c["last_sequence"] + 1))


async def test_point_outside_every_grid_is_accepted_and_flagged(intake: IntakeUnderTest) -> None:
    resp = await post(intake, body(100.0, 20.0))
    assert resp.status_code == 202
    got = await intake.client.get(f"/v1/reports/{resp.json()['report_id']}",
                                  headers=intake.token("op", "operator"))  # fmt: skip
    assert got.status_code == 200
    view = got.json()
    assert view["grid_code"] is None
    assert view["review_reasons"] == ["outside_grid"]


async def test_missing_category_is_proposed_from_the_description(intake: IntakeUnderTest) -> None:
    _, lon, lat = point(intake)
    report = body(lon, lat, channel="wechat", category_code=None,
                  description="路口井盖破损，晚上有行人差点踩空")  # fmt: skip
    resp = await post(intake, report, role="reporter")
    assert resp.status_code == 202
    async with intake.runtime.db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT category_code, category_confidence, review_reasons FROM report"
            " WHERE report_id = $1", uuid.UUID(resp.json()["report_id"]))  # fmt: skip
    assert row["category_code"] == MANHOLE
    assert row["category_confidence"] >= 0.5
    assert row["review_reasons"] == []

    vague = body(lon, lat, channel="wechat", category_code=None, description="请来看一下这里")
    resp = await post(intake, vague, role="reporter")
    assert resp.status_code == 202
    async with intake.runtime.db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT category_code, review_reasons FROM report WHERE report_id = $1",
            uuid.UUID(resp.json()["report_id"]))  # fmt: skip
    assert row["category_code"] is None
    assert row["review_reasons"] == ["no_category"]


async def test_duplicate_joins_the_open_case_and_survives_losing_redis(
    intake: IntakeUnderTest,
) -> None:
    _, lon, lat = point(intake)
    first = (await post(intake, body(lon, lat))).json()
    near = body(lon + 0.0001, lat, reporter={"name": "李四", "phone": "13900139000"})  # ~10 m
    second = (await post(intake, near)).json()
    assert second["duplicate_of"] == first["case_id"]
    assert second["case_id"] == first["case_id"]
    assert second["case_no"] == first["case_no"]

    # Redis loses everything intake put there: the index is rebuilt from PostgreSQL.
    redis = intake.runtime.redis
    assert redis is not None
    keys = [k async for k in redis.scan_iter(match="intake:*")]
    await redis.delete(*keys)
    index = intake.runtime.state["index"]
    rebuilds = index.rebuilds
    third = (await post(intake, body(lon, lat + 0.0001, reporter=None))).json()
    assert third["duplicate_of"] == first["case_id"]
    assert index.rebuilds == rebuilds + 1

    async with intake.runtime.db.acquire() as conn:
        reporters = await conn.fetch(
            "SELECT reporter_id, anonymous FROM case_reporter WHERE case_id = $1",
            uuid.UUID(first["case_id"]))  # fmt: skip
    assert len(reporters) == 3
    assert sum(r["anonymous"] for r in reporters) == 1

    # Another category at the same spot is another matter.
    other = (await post(intake, body(lon, lat, category_code=MANHOLE))).json()
    assert other["duplicate_of"] is None


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        (orjson.dumps(body(111.3, 30.7, resolved_on_site="maybe", attachments=5)),
         {"resolved_on_site", "attachments"}),
        (orjson.dumps(body(181.0, -91.0)), {"location.lon", "location.lat"}),
        (orjson.dumps(body(111.3, 30.7, description="脏" * 4001)), {"description"}),
        (orjson.dumps(body(111.3, 30.7, description="垃圾\x00\x1b堆")), {"body"}),
        (orjson.dumps(body(111.3, 30.7, reporter={"phone": "12345", "id_number": "1" * 18})),
         {"reporter.phone", "reporter.id_number"}),
        (orjson.dumps(body(111.3, 30.7, colour="red")), {"colour"}),
        (orjson.dumps(body(111.3, 30.7, category_code="nothing.such_thing",
                           grid_code="420599999999999")),
         {"category_code", "grid_code"}),
    ],
    ids=["wrong-types", "out-of-range", "huge-string", "control-chars",
         "bad-pii", "unknown-field", "unknown-codes"],
)  # fmt: skip
async def test_bad_input_is_a_422_naming_every_bad_field(
    intake: IntakeUnderTest, raw: bytes, fields: set[str]
) -> None:
    auth = intake.token("bad-input", "operator")
    resp = await intake.client.post(
        "/v1/reports", content=raw,
        headers={**auth, **key(), "content-type": "application/json"},
    )  # fmt: skip
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    named = {e["field"] for e in resp.json()["errors"]}
    assert fields <= named, named


async def test_malformed_json_is_a_400_problem(intake: IntakeUnderTest) -> None:
    resp = await intake.client.post(
        "/v1/reports", content=b'{"channel": "wechat", ',
        headers={**intake.token("bad-json", "operator"), **key(),
                 "content-type": "application/json"},
    )  # fmt: skip
    assert resp.status_code == 400
    assert resp.json()["type"] == "urn:onegrid:problem:malformed-json"


async def test_missing_idempotency_key_is_a_422(intake: IntakeUnderTest) -> None:
    resp = await post(intake, body(111.3, 30.7), headers={})
    assert resp.status_code == 422
    assert any("Idempotency-Key" in e["field"] for e in resp.json()["errors"])


async def test_oversize_body_is_a_413(intake: IntakeUnderTest) -> None:
    raw = b'{"description": "' + b"x" * 200_000 + b'"}'
    resp = await intake.client.post(
        "/v1/reports", content=raw,
        headers={**intake.token("big", "operator"), **key(), "content-type": "application/json"},
    )  # fmt: skip
    assert resp.status_code == 413


async def test_roles_401_without_token_403_for_wrong_role_or_channel(
    intake: IntakeUnderTest,
) -> None:
    anonymous = await intake.client.post("/v1/reports", json=body(111.3, 30.7), headers=key())
    assert anonymous.status_code == 401
    auditor = await post(intake, body(111.3, 30.7), role="auditor")
    assert auditor.status_code == 403
    resident_as_worker = await post(intake, body(111.3, 30.7), role="reporter")
    assert resident_as_worker.status_code == 403
    assert resident_as_worker.json()["type"] == "urn:onegrid:problem:channel-forbidden"


async def test_caller_rate_limit_answers_429_with_retry_after(intake: IntakeUnderTest) -> None:
    statuses = []
    for _ in range(CALLER_LIMIT + 1):
        # Unknown codes are refused after the limit check: no cases are created here.
        resp = await post(intake, body(111.3, 30.7, category_code="nothing.such_thing"),
                          subject="too-busy")  # fmt: skip
        statuses.append(resp.status_code)
    assert statuses[:CALLER_LIMIT] == [422] * CALLER_LIMIT
    assert statuses[-1] == 429
    assert int(resp.headers["Retry-After"]) >= 1


async def test_reporters_read_their_own_reports_operators_read_any(
    intake: IntakeUnderTest,
) -> None:
    _, lon, lat = point(intake)
    resp = await post(intake, body(lon, lat, channel="resident_app"), subject="alice",
                      role="reporter")  # fmt: skip
    report_id = resp.json()["report_id"]
    url = f"/v1/reports/{report_id}"
    own = await intake.client.get(url, headers=intake.token("alice", "reporter"))
    assert own.status_code == 200
    assert own.json()["reporter"]["masked_phone"] == "138****8000"
    assert "13800138000" not in own.text
    other = await intake.client.get(url, headers=intake.token("bob", "reporter"))
    assert other.status_code == 404
    operator = await intake.client.get(url, headers=intake.token("op", "operator"))
    assert operator.status_code == 200
    missing = await intake.client.get(f"/v1/reports/{uuid.uuid4()}",
                                      headers=intake.token("op", "operator"))  # fmt: skip
    assert missing.status_code == 404
    unauth = await intake.client.get(url)
    assert unauth.status_code == 401


async def test_same_category_merges_only_within_its_radius(intake: IntakeUnderTest) -> None:
    _, lon, lat = point(intake)
    first = (await post(intake, body(lon, lat))).json()
    far = (await post(intake, body(lon, lat + 0.001))).json()  # ~111 m > 50 m radius
    assert far["duplicate_of"] is None
    assert far["case_id"] != first["case_id"]
    assert GARBAGE  # the category of both


async def test_a_replay_gets_its_first_answer_after_the_registry_retired_the_category(
    intake: IntakeUnderTest,
) -> None:
    _, lon, lat = point(intake)
    report, headers = body(lon, lat, category_code=MANHOLE), key()
    first = await post(intake, report, subject="retired", headers=headers)
    assert first.status_code == 202
    # The registry retires the category on its topic; intake's read model follows.
    category = next(c for c in intake.city.categories if c.code == MANHOLE)
    view = intake.runtime.state["intake"].registry

    def manhole_active_is(active: bool) -> bool:
        rule = view.category(MANHOLE)
        return rule is not None and rule.active is active

    await publish_entities(intake.settings.kafka, [category.model_copy(update={"active": False})])
    try:
        await eventually(lambda: manhole_active_is(False))
        again = await post(intake, report, subject="retired", headers=headers)
        fresh = await post(intake, report, subject="retired")
    finally:  # the other tests' category back
        await publish_entities(intake.settings.kafka, [category])
        await eventually(lambda: manhole_active_is(True))
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert fresh.status_code == 422
    assert "retired" in fresh.text


async def test_a_replay_takes_no_case_number(intake: IntakeUnderTest) -> None:
    # No point: the report cannot join a case, so its replay runs the new-case write.
    grid, _, _ = point(intake)
    report = {**body(0, 0), "location": {"address": "西陵区学院街道某小区东门"}, "grid_code": grid}
    headers = key()
    first = await post(intake, report, subject="replay-no", headers=headers)
    again = await post(intake, report, subject="replay-no", headers=headers)
    nxt = await post(intake, report, subject="replay-no")
    assert first.status_code == again.status_code == nxt.status_code == 202, nxt.text
    assert again.json() == first.json()
    number = int(first.json()["case_no"].rsplit("-", 1)[1])
    assert int(nxt.json()["case_no"].rsplit("-", 1)[1]) == number + 1


COUNTER = "SELECT last_sequence FROM case_no_counter WHERE day = $1"


@contextlib.asynccontextmanager
async def days_counter_at(conn: Any, day: date, last: int) -> AsyncIterator[None]:
    """The day's last case number set to `last`, and given back to the other tests after."""
    before = await conn.fetchval(COUNTER, day)
    await conn.execute(
        "INSERT INTO case_no_counter (day, last_sequence) VALUES ($1, $2)"
        " ON CONFLICT (day) DO UPDATE SET last_sequence = $2",
        day,
        last,
    )
    try:
        yield
    finally:
        if before is None:
            await conn.execute("DELETE FROM case_no_counter WHERE day = $1", day)
        else:
            await conn.execute(
                "UPDATE case_no_counter SET last_sequence = $2 WHERE day = $1", day, before
            )


async def test_a_day_past_999999_cases_is_refused_and_nothing_of_the_report_is_kept(
    intake: IntakeUnderTest,
) -> None:
    day = datetime.now(ZoneInfo(intake.settings.city_timezone)).date()
    accept = intake.runtime.state["intake"]
    _, lon, lat = point(intake)
    sub = Submission(
        report=ReportBody.model_validate(body(lon, lat)),
        scope="http:daily-limit",
        key=uuid.uuid4().hex,
        submitted_by="daily-limit",
    )
    async with intake.runtime.db.acquire() as conn, days_counter_at(conn, day, 999999):
        with pytest.raises(SequenceExhaustedError):
            await accept.accept(conn, sub)
        after = await conn.fetchval(COUNTER, day)
        kept = await conn.fetchval(
            "SELECT count(*) FROM report WHERE idempotency_key = $1", sub.key
        )
    assert after == 999999
    assert kept == 0

    async with intake.runtime.db.acquire() as conn, days_counter_at(conn, day, 999999):
        over_http = await post(intake, body(lon, lat))
    assert over_http.status_code == 503
    assert over_http.json()["type"] == "urn:onegrid:problem:case-numbers-exhausted"


def submission(report: dict[str, Any], key_: str | None = None) -> Submission:
    return Submission(
        report=ReportBody.model_validate(report),
        scope="http:batch",
        key=key_ or uuid.uuid4().hex,
        submitted_by="batch",
    )


async def test_reports_written_together_each_get_their_own_answer(
    intake: IntakeUnderTest,
) -> None:
    _, lon, lat = point(intake)
    _, lon2, lat2 = point(intake)
    opening = submission(body(lon, lat))
    joining = submission(body(lon + 0.0001, lat, reporter={"name": "李四", "phone": "13900139000"}))
    elsewhere = submission(body(lon2, lat2))
    unknown = submission(body(lon2, lat2, category_code="nothing.such_thing"))
    resend = submission(body(lon, lat), opening.key)
    reused = submission(body(lon2, lat2, description="另一件事：路灯不亮"), elsewhere.key)
    batch = [opening, joining, elsewhere, unknown, resend, reused]

    answers = await intake.runtime.state["intake"].accept_many(intake.runtime.db, batch)

    first, joined, other, bad, again, conflict = answers
    # One matter, one file, also within one batch: the second report joins the first's case.
    assert joined.receipt.case_id == first.receipt.case_id == joined.receipt.duplicate_of
    assert joined.receipt.case_no == first.receipt.case_no
    assert other.receipt.duplicate_of is None
    first_seq, other_seq = (int(a.receipt.case_no.rsplit("-", 1)[1]) for a in (first, other))
    assert other_seq == first_seq + 1
    assert isinstance(bad, InvalidReportError)
    assert [e.field for e in bad.errors] == ["category_code"]
    assert again.replayed
    assert again.receipt == first.receipt
    assert isinstance(conflict, IdempotencyConflictError)

    _, event = await reported_event(intake, str(joined.receipt.report_id))
    assert event.case_no == first.receipt.case_no
    assert event.duplicate_of == first.receipt.case_id
    async with intake.runtime.db.acquire() as conn:
        kept = await conn.fetch(
            "SELECT case_no FROM report WHERE idempotency_scope = 'http:batch'"
            " AND idempotency_key = ANY($1::text[])", [s.key for s in batch])  # fmt: skip
    assert len(kept) == 3


async def test_a_batch_past_the_days_last_number_is_answered_report_by_report(
    intake: IntakeUnderTest,
) -> None:
    day = datetime.now(ZoneInfo(intake.settings.city_timezone)).date()
    batch = [submission(body(*point(intake)[1:])) for _ in range(3)]
    async with intake.runtime.db.acquire() as conn, days_counter_at(conn, day, 999998):
        answers = await intake.runtime.state["intake"].accept_many(intake.runtime.db, batch)
        after = await conn.fetchval(COUNTER, day)
    # The batch as a whole rolled back; alone, the first report took the last number.
    assert answers[0].receipt.case_no.endswith("-999999")
    assert all(isinstance(a, SequenceExhaustedError) for a in answers[1:])
    assert after == 999999


async def test_an_index_entry_of_a_case_never_committed_is_dropped(intake: IntakeUnderTest) -> None:
    # What a write that failed after adding its case to the index leaves behind.
    _, lon, lat = point(intake)
    ghost = uuid.uuid4()
    await intake.runtime.state["index"].add(ghost, GARBAGE, lon, lat)
    redis = intake.runtime.redis
    assert redis is not None
    answer = await post(intake, body(lon, lat))
    assert answer.status_code == 202
    assert answer.json()["duplicate_of"] is None
    assert await redis.zscore(f"intake:geo:cat:{GARBAGE}", str(ghost)) is None
