"""Pure domain of notification: templates and SMS length, quiet hours, backoff, channel
choice, and who is told what."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from onegrid_contracts.cases import (
    CaseDispatched,
    CaseReported,
    Channel,
    DeadlineKind,
    DeadlineWarning,
    TaskAssigned,
    TaskCompleted,
    TaskRole,
    Tier,
)
from onegrid_contracts.notify import NotifyChannel, RecipientKind, Urgency
from onegrid_contracts.primitives import Actor, ActorKind, EncryptedValue, ReporterRef
from onegrid_notification.domain.parties import CaseRecord, HeldTask, apply, changes
from onegrid_notification.domain.planning import CaseParties, PlanContext, plan
from onegrid_notification.domain.policy import QuietHours, backoff_s, choose_channels, retry_in_s
from onegrid_notification.domain.templates import (
    TemplateCatalogue,
    TemplateError,
    check_sms,
    sms_length,
)
from onegrid_notification.main import load_catalogue
from onegrid_notification.testing import DIRECTORY

TZ = ZoneInfo("Asia/Shanghai")
SEALED = EncryptedValue(
    key_id="k1", nonce="q83vEjRWeJCrze8S", ciphertext="3q2+7wAAAAAbH1u0k9Vv8hY5t3XK1mB2cQ=="
)
CTX = PlanContext(DIRECTORY, TZ, "https://12345.example/s", "command-centre")
SYSTEM = Actor(kind=ActorKind.SYSTEM, id="dispatch")


def test_ucs2_sms_takes_70_characters_in_one_part_and_67_per_part_after() -> None:
    assert sms_length("字" * 70).parts == 1
    assert sms_length("字" * 71).parts == 2
    assert sms_length("字" * 134).parts == 2
    assert sms_length("字" * 135).parts == 3
    assert sms_length("a" * 160).parts == 1
    assert sms_length("a" * 161).parts == 2
    assert sms_length("😀").units == 2  # outside the BMP: two UTF-16 units


def test_a_text_longer_than_four_parts_is_refused_with_its_length() -> None:
    assert check_sms("宜昌12345", "字" * 200).parts == 4
    with pytest.raises(TemplateError, match="5 parts"):
        check_sms("宜昌12345", "字" * 270)


def test_templates_render_with_version_and_refuse_missing_variables() -> None:
    catalogue = load_catalogue()
    r = catalogue.render("case_dispatched", None, {"case_no": "X-1", "unit_name": "市城管局"})
    assert (r.template_version, r.title) == (1, "您反映的问题已派遣")
    assert "市城管局" in r.body
    with pytest.raises(TemplateError, match="unit_name"):
        catalogue.render("case_dispatched", 1, {"case_no": "X-1"})
    with pytest.raises(TemplateError, match="no version 9"):
        catalogue.render("case_dispatched", 9, {})
    with pytest.raises(TemplateError, match="unknown template"):
        catalogue.render("nope", None, {})


def test_a_new_version_becomes_current_and_the_old_one_stays_renderable() -> None:
    catalogue = TemplateCatalogue({("t", 1): "旧{{ x }}", ("t", 2): "新{{ x }}"})
    assert catalogue.render("t", None, {"x": 1}).body == "新1"
    assert catalogue.render("t", 1, {"x": 1}).body == "旧1"


def test_every_case_template_fits_two_sms_parts_with_long_free_text() -> None:
    catalogue = load_catalogue()
    long = "很长的说明" * 100
    variables: dict[str, str | int | float | bool] = {
        "case_no": "4205-20261123-000042",
        "merged": True,
        "unit_name": "宜昌市城市管理执法局",
        "summary": long,
        "outcome_label": "已解决",
        "survey_url": "https://12345.example/s/" + "a" * 60,
        "reason": long,
        "grid_name": "学院街社区第1网格",
        "role_label": "主办",
        "due_at": "11月24日17:31",
        "kind_label": "处置",
        "percent": 80,
        "from_tier": "街道",
        "to_tier": "职能部门",
        "supervised": True,
        "reason_label": "管辖争议",
        "detail": long,
    }
    for template_id in catalogue.ids():
        body = catalogue.render(template_id, None, variables).body
        assert check_sms("宜昌12345", body).parts <= 3, template_id


def test_quiet_hours_across_midnight_defer_normal_until_the_morning() -> None:
    quiet = QuietHours(time(22), time(7), TZ)
    night = datetime(2026, 11, 23, 23, 30, tzinfo=TZ)
    assert quiet.defer_until(night, Urgency.NORMAL) == datetime(2026, 11, 24, 7, tzinfo=TZ)
    early = datetime(2026, 11, 24, 6, 59, tzinfo=TZ).astimezone(UTC)
    assert quiet.defer_until(early, Urgency.NORMAL) == datetime(2026, 11, 24, 7, tzinfo=TZ)
    assert quiet.defer_until(night, Urgency.URGENT) is None
    assert quiet.defer_until(datetime(2026, 11, 24, 7, tzinfo=TZ), Urgency.NORMAL) is None


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_s(n, 2, 10) for n in (1, 2, 3, 4)] == [2, 4, 8, 10]


def test_a_failed_send_waits_its_backoff_or_the_providers_wait_until_its_budget_is_spent() -> None:
    def after(attempt: int, *, permanent: bool = False, retry_after_s: float = 0.0) -> float | None:
        return retry_in_s(attempt, max_attempts=3, base_s=2, max_s=10, permanent=permanent,
                          retry_after_s=retry_after_s)  # fmt: skip

    assert [after(1), after(2)] == [2, 4]
    assert after(1, retry_after_s=30) == 30  # a 429's Retry-After outlasts the backoff
    assert after(3) is None  # the budget is spent
    assert after(1, permanent=True) is None


def test_channels_come_from_the_request_then_the_preference_then_the_kind() -> None:
    sms, push = NotifyChannel.SMS, NotifyChannel.APP_PUSH
    assert choose_channels(RecipientKind.STAFF, (sms,), (push,), has_webhook=False) == (sms,)
    assert choose_channels(RecipientKind.STAFF, (), (sms,), has_webhook=False) == (sms,)
    assert choose_channels(RecipientKind.STAFF, (), None, has_webhook=False) == (push, sms)


def test_a_unit_without_a_webhook_is_not_defaulted_to_one() -> None:
    hook, sms, push = NotifyChannel.WEBHOOK, NotifyChannel.SMS, NotifyChannel.APP_PUSH
    assert choose_channels(RecipientKind.UNIT, (), None, has_webhook=True) == (hook, push, sms)
    assert choose_channels(RecipientKind.UNIT, (), None, has_webhook=False) == (push, sms)
    # Named by the request or the preference it is still tried (and fails visibly).
    assert choose_channels(RecipientKind.UNIT, (hook,), None, has_webhook=False) == (hook,)
    assert choose_channels(RecipientKind.UNIT, (), (hook, sms), has_webhook=False) == (hook, sms)


def _reporter(rid: str, anonymous: bool = False) -> ReporterRef:
    if anonymous:
        return ReporterRef(reporter_id=rid, anonymous=True)
    return ReporterRef(reporter_id=rid, masked_phone="138****0001", phone_encrypted=SEALED)


def test_dispatch_tells_every_reporter_with_a_phone_and_not_the_anonymous() -> None:
    case_id = uuid.uuid4()
    parties = CaseParties(
        case_id, "X-1", reporters=(_reporter("a"), _reporter("b"), _reporter("c", True))
    )
    event = CaseDispatched(
        case_id=case_id,
        case_no="4205-20261123-000001",
        actor=SYSTEM,
        at=datetime.now(UTC),
        tier=Tier.DEPARTMENT,
        lead_unit_code="urban",
        deadlines=(),
    )
    planned = plan(event, parties, CTX)
    assert [p.recipient.key for p in planned] == ["reporter:a", "reporter:b"]
    assert planned[0].variables["unit_name"] == "宜昌市城市管理执法局"


def test_a_joining_reporter_alone_hears_of_the_merge() -> None:
    case_id = uuid.uuid4()
    event = CaseReported(
        case_id=case_id,
        case_no="4205-20261123-000001",
        actor=SYSTEM,
        at=datetime.now(UTC),
        report_id=uuid.uuid4(),
        channel=Channel.WECHAT,
        description="垃圾",
        occurred_at=datetime.now(UTC),
        reporter=_reporter("b"),
        duplicate_of=case_id,
    )
    parties = CaseParties(case_id, "X-1", reporters=(_reporter("a"), _reporter("b")))
    [only] = plan(event, parties, CTX)
    assert only.recipient.key == "reporter:b"
    assert only.variables["merged"] is True


def test_unit_heads_get_tasks_and_warnings_urgently_and_grid_workers_verifications() -> None:
    case_id, task = uuid.uuid4(), uuid.uuid4()
    parties = CaseParties(case_id, "X-1", grid_code="420502003001001")
    common = {
        "case_id": case_id,
        "case_no": "4205-20261123-000001",
        "actor": SYSTEM,
        "at": datetime.now(UTC),
        "task_id": task,
        "unit_code": "urban",
    }
    [lead] = plan(TaskAssigned(**common, role=TaskRole.LEAD), parties, CTX)
    assert (lead.recipient.key, lead.urgency) == ("unit:urban", Urgency.URGENT)
    [check] = plan(TaskAssigned(**common, role=TaskRole.VERIFY), parties, CTX)
    assert check.recipient.key == "staff:S0000123"
    assert check.template_id == "verification_assigned"
    warning = DeadlineWarning(
        **{k: v for k, v in common.items() if k != "unit_code"},
        kind=DeadlineKind.RESOLUTION,
        due_at=datetime.now(UTC),
        elapsed_ratio=0.8,
        unit_code="urban",
    )
    [warned] = plan(warning, parties, CTX)
    assert warned.recipient.kind is RecipientKind.UNIT
    assert warned.variables["percent"] == 80


def test_an_empty_quiet_start_setting_turns_quiet_hours_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from onegrid_notification.config import NotificationSettings

    monkeypatch.setenv("ONEGRID_NOTIFICATION_QUIET_START", "")
    assert NotificationSettings().quiet_start is None
    monkeypatch.setenv("ONEGRID_NOTIFICATION_QUIET_START", "23:30")
    assert NotificationSettings().quiet_start == time(23, 30)


def _assigned(case: CaseRecord, task_id: uuid.UUID, unit: str, role: TaskRole) -> TaskAssigned:
    return TaskAssigned(
        case_id=case.case_id,
        case_no=case.case_no,
        actor=SYSTEM,
        at=datetime.now(UTC),
        task_id=task_id,
        unit_code=unit,
        role=role,
    )


def test_a_unit_holds_a_case_from_its_task_until_the_task_ends_and_never_again() -> None:
    case = CaseRecord(uuid.uuid4(), "4205-20261123-000001")
    lead = _assigned(case, uuid.uuid4(), "urban", TaskRole.LEAD)
    held = apply(case, lead)
    verifying = apply(held, _assigned(case, uuid.uuid4(), "grid", TaskRole.VERIFY))
    completed = TaskCompleted(
        **lead.model_dump(include={"case_id", "case_no", "actor", "at", "task_id", "unit_code"}),
        result="垃圾已全部清运",
    )
    done = apply(verifying, completed)
    again = apply(done, lead)  # a late repeat of the assignment
    assert [c.parties().open_units for c in (held, verifying, done, again)] == [
        ("urban",),
        ("urban",),
        (),
        (),
    ]


def test_only_what_a_batch_changed_is_written() -> None:
    seen = CaseRecord(uuid.uuid4(), "4205-20261123-000001", grid_code="420502003001001")
    new, task = uuid.uuid4(), uuid.uuid4()
    held = apply(seen, _assigned(seen, task, "urban", TaskRole.LEAD))
    unchanged = CaseRecord(uuid.uuid4(), "4205-20261123-000003")
    started = CaseRecord(new, "4205-20261123-000002")
    after = {seen.case_id: held, new: started, unchanged.case_id: unchanged}
    changed = changes({seen.case_id: seen, unchanged.case_id: unchanged}, after)
    assert changed.cases == [(new, "4205-20261123-000002", None)]
    assert changed.tasks == [(seen.case_id, task, HeldTask("urban", open=True))]
    assert changed.reporters == []
    assert not changes(after, after)
