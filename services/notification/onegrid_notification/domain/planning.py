"""Who is told what: a case event → the notifications it causes (recipient, template,
variables, urgency). Pure: the case's parties and the registry lookups are passed in.

- Reporters (every reporter of a merged case, each with a phone): accepted with the case
  number (the joining reporter only, on a duplicate), dispatched, handled, closed with a
  satisfaction survey link, and rejected with the reason.
- Grid workers: a verification task in their grid (the named one, else the grid's workers).
- Unit heads (recipient `unit:<code>`, reached by the unit's webhook or its head): a new
  task, a deadline warning, a breach, and an escalation of a case they hold.
- Operators (the command-centre desk): delivery failures and jurisdiction disputes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

from onegrid_contracts.cases import (
    CaseClosed,
    CaseDispatched,
    CaseEscalated,
    CaseEvent,
    CaseFlaggedForOperator,
    CaseHandled,
    CaseOutcome,
    CaseRejected,
    CaseReported,
    DeadlineBreached,
    DeadlineKind,
    DeadlineWarning,
    OperatorQueueReason,
    TaskAssigned,
    TaskRole,
    Tier,
)
from onegrid_contracts.notify import Contact, Recipient, RecipientKind, Urgency
from onegrid_contracts.primitives import ReporterRef

Variables = dict[str, str | int | float | bool]

OUTCOME_LABEL = {
    CaseOutcome.FIXED: "已解决",
    CaseOutcome.NOT_FIXABLE: "暂无法解决，已说明原因",
    CaseOutcome.DUPLICATE: "与其他案件重复，已合并办理",
    CaseOutcome.WITHDRAWN: "已撤回",
    CaseOutcome.REFERRED_ELSEWHERE: "已转其他渠道办理",
}
KIND_LABEL = {DeadlineKind.RESPONSE: "响应", DeadlineKind.RESOLUTION: "处置"}
ROLE_LABEL = {TaskRole.LEAD: "主办", TaskRole.ASSIST: "协办", TaskRole.VERIFY: "核查"}
TIER_LABEL = {
    Tier.GRID: "网格",
    Tier.COMMUNITY: "社区",
    Tier.STREET: "街道",
    Tier.DEPARTMENT: "职能部门",
}
OPERATOR_REASONS = {
    OperatorQueueReason.JURISDICTION_DISPUTE: "管辖争议，多个单位退回",
    OperatorQueueReason.DELIVERY_FAILED: "任务无法送达部门系统",
}


class Directory(Protocol):
    """The registry lookups planning needs (onegrid_common.registry_view.RegistryView
    provides them through `RegistryDirectory`)."""

    def unit_name(self, unit_code: str) -> str: ...

    def grid_name(self, grid_code: str) -> str: ...

    def grid_workers(self, grid_code: str) -> list[str]:
        """Staff codes of the grid's active workers (grid head first when known)."""
        ...


@dataclass(frozen=True)
class CaseParties:
    """What notification remembers of a case: who reported it and who holds it."""

    case_id: UUID
    case_no: str
    grid_code: str | None = None
    reporters: tuple[ReporterRef, ...] = ()
    open_units: tuple[str, ...] = ()


@dataclass(frozen=True)
class Planned:
    recipient: Recipient
    template_id: str
    variables: Variables = field(default_factory=dict)
    urgency: Urgency = Urgency.NORMAL


@dataclass(frozen=True)
class PlanContext:
    directory: Directory
    timezone: ZoneInfo
    survey_base_url: str
    operators_desk: str


def reporter_recipient(reporter: ReporterRef) -> Recipient | None:
    """A reporter who can be told (has a sealed phone); anonymous reporters cannot."""
    if reporter.anonymous or reporter.phone_encrypted is None:
        return None
    contact = Contact(masked_phone=reporter.masked_phone, phone=reporter.phone_encrypted)
    return Recipient(kind=RecipientKind.REPORTER, id=reporter.reporter_id, contact=contact)


def _local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%m月%d日%H:%M")


def _to_reporters(
    reporters: Sequence[ReporterRef], template_id: str, variables: Variables
) -> list[Planned]:
    planned = []
    for reporter in reporters:
        recipient = reporter_recipient(reporter)
        if recipient is not None:
            planned.append(Planned(recipient, template_id, dict(variables)))
    return planned


def _unit(code: str) -> Recipient:
    return Recipient(kind=RecipientKind.UNIT, id=code)


def plan(event: CaseEvent, case: CaseParties, ctx: PlanContext) -> list[Planned]:
    """The notifications `event` causes, given the case's parties after the event."""
    base: Variables = {"case_no": event.case_no}
    d = ctx.directory
    match event:
        case CaseReported():
            recipient = reporter_recipient(event.reporter)
            if recipient is None:
                return []
            merged = event.duplicate_of is not None
            return [Planned(recipient, "case_accepted", {**base, "merged": merged})]
        case CaseRejected():
            return _to_reporters(case.reporters, "case_rejected", {**base, "reason": event.reason})
        case CaseDispatched():
            unit_name = d.unit_name(event.lead_unit_code)
            return _to_reporters(
                case.reporters, "case_dispatched", {**base, "unit_name": unit_name}
            )
        case CaseHandled():
            summary = event.summary or "相关单位已处置完毕"
            return _to_reporters(case.reporters, "case_handled", {**base, "summary": summary})
        case CaseClosed():
            planned = []
            for reporter in case.reporters:
                recipient = reporter_recipient(reporter)
                if recipient is None:
                    continue
                survey = f"{ctx.survey_base_url}/{event.case_id}?r={reporter.reporter_id}"
                variables: Variables = {
                    **base,
                    "outcome_label": OUTCOME_LABEL[event.outcome],
                    "survey_url": survey,
                }
                planned.append(Planned(recipient, "case_closed_survey", variables))
            return planned
        case TaskAssigned() if event.role is TaskRole.VERIFY:
            grid = case.grid_code
            grid_name = d.grid_name(grid) if grid else "事发地"
            if event.assignee_staff_id:
                workers = [event.assignee_staff_id]
            else:
                workers = d.grid_workers(grid) if grid else []
            return [
                Planned(
                    Recipient(kind=RecipientKind.STAFF, id=code),
                    "verification_assigned",
                    {**base, "grid_name": grid_name},
                )
                for code in workers
            ]
        case TaskAssigned():
            resolution = [dl for dl in event.deadlines if dl.kind is DeadlineKind.RESOLUTION]
            due = _local(resolution[0].due_at, ctx.timezone) if resolution else ""
            variables = {
                **base,
                "unit_name": d.unit_name(event.unit_code),
                "role_label": ROLE_LABEL[event.role],
                "due_at": due,
            }
            return [Planned(_unit(event.unit_code), "task_assigned", variables, Urgency.URGENT)]
        case DeadlineWarning():
            recipient = (
                Recipient(kind=RecipientKind.STAFF, id=event.unit_head_staff_id)
                if event.unit_head_staff_id
                else _unit(event.unit_code)
            )
            variables = {
                **base,
                "unit_name": d.unit_name(event.unit_code),
                "kind_label": KIND_LABEL[event.kind],
                "due_at": _local(event.due_at, ctx.timezone),
                "percent": round(event.elapsed_ratio * 100),
            }
            return [Planned(recipient, "deadline_warning", variables, Urgency.URGENT)]
        case DeadlineBreached():
            variables = {
                **base,
                "unit_name": d.unit_name(event.unit_code),
                "kind_label": KIND_LABEL[event.kind],
                "due_at": _local(event.due_at, ctx.timezone),
            }
            return [Planned(_unit(event.unit_code), "deadline_breached", variables, Urgency.URGENT)]
        case CaseEscalated():
            return [
                Planned(
                    _unit(code),
                    "case_escalated",
                    {
                        **base,
                        "unit_name": d.unit_name(code),
                        "from_tier": TIER_LABEL[event.from_tier],
                        "to_tier": TIER_LABEL[event.to_tier],
                        "supervised": event.supervised,
                        "reason": event.reason,
                    },
                    Urgency.URGENT,
                )
                for code in case.open_units
            ]
        case CaseFlaggedForOperator() if event.queue_reason in OPERATOR_REASONS:
            return [
                operator_alert(
                    ctx, event.case_no, OPERATOR_REASONS[event.queue_reason], event.detail or ""
                )
            ]
    return []


def operator_alert(ctx: PlanContext, case_no: str, reason_label: str, detail: str) -> Planned:
    return Planned(
        Recipient(kind=RecipientKind.OPERATORS, id=ctx.operators_desk),
        "operator_alert",
        {"case_no": case_no, "reason_label": reason_label, "detail": detail},
        Urgency.URGENT,
    )
