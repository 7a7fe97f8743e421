"""A notification runtime with the SMS and push simulators, a real SMTP server and a
webhook receiver: every party of a case is told once; outages delay but lose nothing;
quiet hours defer; a spent budget dead-letters and tells the operators."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from onegrid_common.testing.helpers import eventually, read_topic
from onegrid_contracts.cases import (
    CaseClosed,
    CaseDispatched,
    CaseEscalated,
    CaseFlaggedForOperator,
    CaseHandled,
    CaseOutcome,
    CaseRegistered,
    CaseReported,
    CaseVerified,
    Channel,
    Deadline,
    DeadlineBreached,
    DeadlineKind,
    DeadlineWarning,
    EscalationTrigger,
    OperatorQueueReason,
    TaskAssigned,
    TaskCompleted,
    TaskRole,
    Tier,
)
from onegrid_contracts.catalogue import NOTIFY_OUTCOMES, dlq_topic
from onegrid_contracts.notify import (
    NotificationOutcome,
    NotificationRequested,
    NotifyChannel,
    Recipient,
    RecipientKind,
    Urgency,
)
from onegrid_contracts.primitives import Actor, ActorKind, ReporterRef
from onegrid_notification.sender import notifier_of
from onegrid_notification.testing import DIRECTORY, Stack, reporter

pytestmark = pytest.mark.integration

GRID = "420502003001001"
SYSTEM = Actor(kind=ActorKind.SYSTEM, id="dispatch")
PHONE_A, PHONE_B = "13800000001", "13800000002"


def case_events(case_id: uuid.UUID, case_no: str, a: ReporterRef, b: ReporterRef) -> list[Any]:
    t0 = datetime.now(UTC)
    task, verify_task = uuid.uuid4(), uuid.uuid4()
    common: dict[str, Any] = {"case_id": case_id, "case_no": case_no, "actor": SYSTEM}
    due = t0 + timedelta(hours=8)
    resolution = Deadline(kind=DeadlineKind.RESOLUTION, due_at=due, limit_minutes=480)

    def reported(who: ReporterRef, duplicate: bool) -> CaseReported:
        return CaseReported(
            **common,
            at=t0,
            report_id=uuid.uuid4(),
            channel=Channel.HOTLINE_12345,
            category_code="environment.exposed_garbage",
            grid_code=GRID,
            grid_path=(GRID,),
            description="小区门口垃圾堆积多日无人清理",
            occurred_at=t0,
            reporter=who,
            duplicate_of=case_id if duplicate else None,
        )

    task_fields = {**common, "task_id": task, "unit_code": "urban"}
    return [
        reported(a, False),
        reported(b, True),
        CaseRegistered(
            **common,
            at=t0,
            category_code="environment.exposed_garbage",
            grid_code=GRID,
            automatic=True,
        ),
        CaseDispatched(
            **common, at=t0, tier=Tier.DEPARTMENT, lead_unit_code="urban", deadlines=(resolution,)
        ),
        TaskAssigned(**task_fields, at=t0, role=TaskRole.LEAD, deadlines=(resolution,)),
        CaseFlaggedForOperator(
            **common,
            at=t0,
            queue_reason=OperatorQueueReason.JURISDICTION_DISPUTE,
            detail="3 个单位以不属于职责范围为由退回",
        ),
        DeadlineWarning(
            **common,
            at=t0,
            kind=DeadlineKind.RESOLUTION,
            due_at=due,
            elapsed_ratio=0.8,
            unit_code="urban",
            task_id=task,
            unit_head_staff_id="S0000901",
        ),
        DeadlineBreached(
            **common,
            at=t0,
            kind=DeadlineKind.RESOLUTION,
            due_at=due,
            unit_code="urban",
            task_id=task,
        ),
        CaseEscalated(
            **common,
            at=t0,
            trigger=EscalationTrigger.DEADLINE_BREACHED,
            from_tier=Tier.STREET,
            to_tier=Tier.DEPARTMENT,
            supervised=True,
            reason="处置时限已到期未办结，升级督办",
        ),
        TaskCompleted(**task_fields, at=t0, result="垃圾已全部清运，周边地面已冲洗"),
        CaseHandled(**common, at=t0, task_ids=(task,), summary="垃圾已全部清运，周边地面已冲洗"),
        TaskAssigned(
            **{**task_fields, "task_id": verify_task},
            at=t0,
            role=TaskRole.VERIFY,
            assignee_staff_id="S0000123",
        ),
        CaseVerified(**common, at=t0, verification_task_id=verify_task, note="现场核查通过"),
        CaseClosed(**common, at=t0, outcome=CaseOutcome.FIXED, on_time=True),
    ]


async def test_a_full_case_notifies_every_party_once_on_their_channel(stack: Stack) -> None:
    case_id, case_no = uuid.uuid4(), f"4205-20261123-{uuid.uuid4().int % 1_000_000:06d}"
    a, b = reporter(stack.cipher, PHONE_A), reporter(stack.cipher, PHONE_B)
    for event in case_events(case_id, case_no, a, b):
        env = await stack.publish(stack.config.cases_topic, str(case_id), event)
        if isinstance(event, CaseHandled):  # a redelivery of the same event tells no one again
            await stack.send(stack.config.cases_topic, str(case_id), event, env)

    async def all_delivered() -> list[dict[str, Any]] | None:
        items = await stack.notifications(case_id=str(case_id), limit="100")
        done = len(items) == 14 and all(i["status"] == "delivered" for i in items)
        return items if done else None

    items = await eventually(all_delivered, timeout_s=45)
    sent = Counter((i["recipient"], i["template_id"], i["channel"]) for i in items)
    assert set(sent.values()) == {1}
    by_recipient = Counter(i["recipient"] for i in items)
    assert by_recipient == {
        f"reporter:{a.reporter_id}": 4,
        f"reporter:{b.reporter_id}": 4,
        "unit:urban": 3,
        "staff:S0000901": 1,
        "staff:S0000123": 1,
        "operators:command-centre": 1,
    }
    assert all(i["attempts"] == 1 and i["template_version"] == 1 for i in items)
    ids = {i["id"] for i in items}

    texts: dict[str, list[str]] = {m["phone"]: [] for m in stack.sms.messages}
    for m in stack.sms.messages:
        if m["out_id"] in ids:
            texts[m["phone"]].append(m["text"])
    assert sorted(len(v) for v in texts.values() if v) == [4, 4]
    assert all(t.startswith("【宜昌12345】") and case_no in t for v in texts.values() for t in v)
    assert any("合并" in t for t in texts[PHONE_B])
    assert not any("合并" in t for t in texts[PHONE_A])
    survey = [t for t in texts[PHONE_A] if "评价" in t]
    assert len(survey) == 1
    assert f"/s/{case_id}?r={a.reporter_id}" in survey[0]

    hooks = [h for h in stack.webhook.received if h["case_id"] == str(case_id)]
    assert sorted(h["template_id"] for h in hooks) == [
        "case_escalated",
        "deadline_breached",
        "task_assigned",
    ]
    pushes = [p for p in stack.push.pushes if p["idempotency_key"] in ids]
    assert sorted(p["target"] for p in pushes) == ["S0000123", "S0000901"]
    mails = [m for m in stack.mail.messages if case_no in m["text"]]
    assert len(mails) == 1
    assert "管辖争议" in mails[0]["text"]

    mine = await stack.notifications(recipient=f"reporter:{a.reporter_id}")
    assert [i["template_id"] for i in mine] == [
        "case_accepted",
        "case_dispatched",
        "case_handled",
        "case_closed_survey",
    ]
    assert mine[0]["masked_phone"] == "138****0001"
    assert PHONE_A not in str(mine)


async def test_a_case_placed_in_a_grid_after_its_report_tells_that_grids_workers(
    stack: Stack,
) -> None:
    # Reported outside every grid; the operator registers it in GRID; the verification
    # task names no one, so the grid's workers are told.
    case_id, case_no = uuid.uuid4(), f"4205-20261123-{uuid.uuid4().int % 1_000_000:06d}"
    common: dict[str, Any] = {"case_id": case_id, "case_no": case_no, "actor": SYSTEM}
    t0 = datetime.now(UTC)
    verify_task = uuid.uuid4()
    events = [
        CaseReported(
            **common,
            at=t0,
            report_id=uuid.uuid4(),
            channel=Channel.HOTLINE_12345,
            category_code="environment.exposed_garbage",
            grid_code=None,
            grid_path=(),
            description="江边步道垃圾堆积",
            occurred_at=t0,
            reporter=ReporterRef(reporter_id=f"rp-{uuid.uuid4().hex[:8]}", anonymous=True),
        ),
        CaseRegistered(
            **common,
            at=t0,
            category_code="environment.exposed_garbage",
            grid_code=GRID,
            automatic=False,
        ),
        TaskAssigned(**common, at=t0, task_id=verify_task, unit_code="urban", role=TaskRole.VERIFY),
    ]
    for event in events:
        await stack.publish(stack.config.cases_topic, str(case_id), event)

    async def told() -> list[dict[str, Any]] | None:
        items = await stack.notifications(case_id=str(case_id))
        verify = [i for i in items if i["template_id"] == "verification_assigned"]
        return verify if verify and verify[0]["status"] == "delivered" else None

    (item,) = await eventually(told)
    assert item["recipient"] == "staff:S0000123"
    (push,) = [p for p in stack.push.pushes if p["idempotency_key"] == item["id"]]
    assert DIRECTORY.grid_name(GRID) in push["body"]


def request(
    recipient: Recipient, urgency: Urgency = Urgency.NORMAL, **kw: Any
) -> NotificationRequested:
    return NotificationRequested(
        request_id=uuid.uuid4(),
        dedup_key=f"test:{uuid.uuid4()}",
        recipient=recipient,
        template_id="case_accepted",
        variables={"case_no": "4205-20261123-000042", "merged": False},
        urgency=urgency,
        requested_by="test",
        requested_at=datetime.now(UTC),
        **kw,
    )


def reporter_recipient(stack: Stack, phone: str) -> Recipient:
    ref = reporter(stack.cipher, phone)
    from onegrid_notification.domain.planning import reporter_recipient as to_recipient

    recipient = to_recipient(ref)
    assert recipient is not None
    return recipient


async def one(stack: Stack, req: NotificationRequested) -> dict[str, Any] | None:
    items = await stack.notifications(recipient=req.recipient.key)
    return items[0] if items else None


async def test_a_gateway_outage_delays_but_loses_nothing(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.sms_url) as admin:
        await admin.post("/_sim/down")
        req = request(reporter_recipient(stack, "13800000003"))
        await stack.publish(stack.config.requests_topic, req.recipient.key, req)

        async def retried() -> dict[str, Any] | None:
            n = await one(stack, req)
            return n if n and n["attempts"] >= 3 else None

        during = await retried_or_fail(retried)
        assert during["status"] in ("pending", "sending")
        assert "503" in (during["last_error"] or "")
        await admin.post("/_sim/up")

    async def delivered() -> dict[str, Any] | None:
        n = await one(stack, req)
        return n if n and n["status"] == "delivered" else None

    done = await eventually(delivered)
    assert [m["out_id"] for m in stack.sms.messages].count(done["id"]) == 1
    results = [a["result"] for a in done["attempt_log"]]
    assert results[-1] == "delivered"
    assert results.count("retry") == len(results) - 1 >= 2
    # Each retry is on record with its error and its end, in order.
    retries = done["attempt_log"][:-1]
    assert [a["n"] for a in done["attempt_log"]] == list(range(1, len(results) + 1))
    assert all("503" in a["error"] and a["finished_at"] for a in retries), retries
    assert done["last_error"] is None


async def test_a_request_for_an_unknown_template_is_dead_lettered_and_those_beside_it_queued(
    stack: Stack,
) -> None:
    # One key: one partition, so the four are most likely one batch, queued in one write
    # that the bad one fails; applied again one by one, only the bad one is dead-lettered.
    key = f"test:batch:{uuid.uuid4()}"
    good = [request(Recipient(kind=RecipientKind.STAFF, id=f"S09{i:05d}")) for i in range(3)]
    bad = request(Recipient(kind=RecipientKind.STAFF, id="S0900099")).model_copy(
        update={"template_id": "no_such_template"}
    )
    for req in (good[0], bad, *good[1:]):
        await stack.publish(stack.config.requests_topic, key, req)

    async def all_queued() -> bool:
        return all([await one(stack, req) is not None for req in good])

    await eventually(all_queued)

    async def dead_lettered() -> list[str]:
        records = await read_topic(
            stack.settings.kafka.bootstrap_servers, dlq_topic("notification"), 10**9, 2
        )
        return [
            dict(r.headers)["onegrid_error"].decode()
            for r in records
            if r.key and r.key.decode() == key
        ]

    errors = await eventually(dead_lettered, timeout_s=40)
    assert len(errors) == 1
    assert "no_such_template" in errors[0]
    assert await one(stack, bad) is None


async def retried_or_fail(check: Any) -> dict[str, Any]:
    result: dict[str, Any] = await eventually(check)
    return result


async def test_quiet_hours_defer_normal_messages_and_send_urgent_ones(stack: Stack) -> None:
    stack.clock.set_local(23, 0)
    try:
        normal = request(reporter_recipient(stack, "13800000004"))
        urgent = request(reporter_recipient(stack, "13800000005"), Urgency.URGENT)
        for req in (normal, urgent):
            await stack.publish(stack.config.requests_topic, req.recipient.key, req)

        async def sent_urgent() -> dict[str, Any] | None:
            n = await one(stack, urgent)
            return n if n and n["status"] == "delivered" else None

        await eventually(sent_urgent)
        deferred = await eventually(lambda: one(stack, normal))
        assert deferred["status"] == "deferred"
        assert deferred["attempts"] == 0
        until = datetime.fromisoformat(deferred["deferred_until"]).astimezone(
            ZoneInfo("Asia/Shanghai")
        )
        assert (until.hour, until.minute) == (7, 0)
        assert until > stack.clock()
        assert deferred["id"] not in {m["out_id"] for m in stack.sms.messages}

        stack.clock.set_local(7, 0, days=1)  # the night is over

        async def sent_normal() -> dict[str, Any] | None:
            n = await one(stack, normal)
            return n if n and n["status"] == "delivered" else None

        morning = await eventually(sent_normal)
        assert morning["attempts"] == 1
        assert [(a["n"], a["result"]) for a in morning["attempt_log"]] == [(1, "delivered")]
    finally:
        stack.clock.set_local(10)


async def test_a_recipient_past_the_hourly_limit_waits_for_the_next_hour(stack: Stack) -> None:
    # App push: the SMS gateway has its own, lower limit per number (10 a minute).
    recipient = Recipient(kind=RecipientKind.STAFF, id=f"S8{secrets.randbelow(10**6):06d}")
    limit = stack.config.rate_limit_per_hour
    requests = [request(recipient, channels=[NotifyChannel.APP_PUSH]) for _ in range(limit + 1)]
    for req in requests:
        await stack.publish(stack.config.requests_topic, recipient.key, req)

    async def settled() -> list[dict[str, Any]] | None:
        items = await stack.notifications(recipient=recipient.key, limit=str(limit + 10))
        done = [n for n in items if n["status"] in ("delivered", "deferred")]
        return items if len(done) == limit + 1 else None

    items = await eventually(settled)
    assert [n["status"] for n in items].count("delivered") == limit
    (waiting,) = [n for n in items if n["status"] == "deferred"]
    # Claimed, then put back before any send: no attempt counted, none on record.
    assert (waiting["attempts"], waiting["attempt_log"]) == (0, [])
    until = datetime.fromisoformat(waiting["deferred_until"])
    assert until > stack.clock()
    assert (until.minute, until.second) == (0, 0)  # the next hour's window


async def test_a_unit_without_a_webhook_is_told_by_push_without_a_failed_attempt(
    stack: Stack,
) -> None:
    req = request(Recipient(kind=RecipientKind.UNIT, id="police"))
    await stack.publish(stack.config.requests_topic, req.recipient.key, req)

    async def delivered() -> dict[str, Any] | None:
        n = await one(stack, req)
        return n if n and n["status"] == "delivered" else None

    n = await eventually(delivered)
    assert (n["channel"], n["attempts"]) == ("app_push", 1)
    assert [p["target"] for p in stack.push.pushes if p["idempotency_key"] == n["id"]] == [
        "S0000902"
    ]
    async with stack.rt.db.acquire() as conn:
        tried = await conn.fetch(
            "SELECT channel, status FROM notification WHERE recipient_key = $1", "unit:police"
        )
        dead = await conn.fetchval(
            "SELECT count(*) FROM dead_letter WHERE recipient_key = $1", "unit:police"
        )
    assert [tuple(r) for r in tried] == [("app_push", "delivered")]
    assert dead == 0

    async def outcome() -> NotificationOutcome | None:
        records = await read_topic(
            stack.settings.kafka.bootstrap_servers, NOTIFY_OUTCOMES, 10**9, 2
        )
        for record in records:
            if record.key == req.recipient.key.encode() and record.value is not None:
                told = NotificationOutcome.model_validate_json(record.value)
                if told.request_id == req.request_id:
                    return told
        return None

    told = await eventually(outcome)
    assert (told.status, told.channel, told.attempts) == ("delivered", "app_push", 1)
    assert told.provider_message_id == n["provider_message_id"]


async def test_a_spent_budget_dead_letters_and_tells_the_operators(stack: Stack) -> None:
    req = request(reporter_recipient(stack, "10000000000"), channels=(NotifyChannel.SMS,))
    await stack.publish(stack.config.requests_topic, req.recipient.key, req)

    async def failed() -> dict[str, Any] | None:
        n = await one(stack, req)
        return n if n and n["status"] == "failed" else None

    n = await eventually(failed)
    assert "MOBILE_NUMBER_ILLEGAL" in n["last_error"]
    async with stack.rt.db.acquire() as conn:
        dead = await conn.fetchval(
            "SELECT count(*) FROM dead_letter WHERE notification_id = $1", uuid.UUID(n["id"])
        )
    assert dead == 1

    async def told() -> list[dict[str, Any]] | None:
        mails = [m for m in stack.mail.messages if req.recipient.key in m["text"]]
        return mails or None

    mails = await eventually(told)
    assert len(mails) == 1
    assert "通知发送失败" in mails[0]["text"]


async def test_listing_needs_a_filter_and_an_operator(stack: Stack) -> None:
    resp = await stack.client.get("/v1/notifications", headers=stack.headers)
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith("application/problem+json")
    resp = await stack.client.get(
        "/v1/notifications", params={"recipient": "nobody"}, headers=stack.headers
    )
    assert resp.status_code == 422
    resp = await stack.client.get("/v1/notifications", params={"recipient": "staff:S1"})
    assert resp.status_code == 401
    assert DIRECTORY.unit_name("urban") == "宜昌市城市管理执法局"


async def test_the_sender_is_woken_once_the_handlers_rows_are_committed(stack: Stack) -> None:
    # Woken inside the transaction, the sender would look before the rows are there.
    probe = dataclasses.replace(notifier_of(stack.rt), wake=asyncio.Event())
    async with stack.rt.db.acquire() as conn:
        async with conn.transaction():
            probe.wake_after_commit(conn)
            probe.wake_after_commit(conn)  # several handlers of one batch: one wake
            await conn.execute("SELECT 1")
            assert not probe.wake.is_set()
        assert probe.wake.is_set()
