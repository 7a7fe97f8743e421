"""Case and task lifecycle (DESIGN §4): states, and every event on `cases.events.v1`.

Every event is keyed by case id and carries the case, the actor, and when it happened;
events where a person decides carry their reason too. The timeline of a case is these
events in order. PII never appears in clear: reporters are references with masked contact.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from pydantic import ConfigDict, Field, model_validator

from onegrid_contracts.base import Payload
from onegrid_contracts.primitives import (
    EX_CASE_ID,
    EX_CASE_NO,
    EX_GRID,
    EX_GRID_PATH,
    EX_LOCATION,
    EX_OPERATOR,
    EX_PHOTO,
    EX_REPORT_ID,
    EX_SYSTEM,
    EX_TASK_ID,
    EX_UNIT,
    Actor,
    Applicant,
    Attachments,
    CaseNo,
    CategoryCode,
    GridCode,
    Location,
    LongText,
    Reason,
    ReporterRef,
    StaffCode,
    Strict,
    Timestamp,
    UnitCode,
)


class CaseState(StrEnum):
    REPORTED = "reported"
    REGISTERED = "registered"
    DISPATCHED = "dispatched"
    IN_PROGRESS = "in_progress"
    HANDLED = "handled"
    VERIFIED = "verified"
    CLOSED = "closed"
    EVALUATED = "evaluated"
    REJECTED = "rejected"  # 不予立案: invalid or duplicate
    REWORK = "rework"  # verification failed or reopened: back to the units
    SUSPENDED = "suspended"


class TaskState(StrEnum):
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    REFUSED = "refused"  # wrong jurisdiction: the case goes back to routing
    CANCELLED = "cancelled"  # withdrawn by dispatch: re-routed, relocated or closed otherwise


class Tier(StrEnum):
    """Who handles a case: small things stay in the grid, big things in the street."""

    GRID = "grid"
    COMMUNITY = "community"
    STREET = "street"
    DEPARTMENT = "department"


class CaseOutcome(StrEnum):
    """How a closed case ended. Nothing tells a reporter "fixed" unless it was."""

    FIXED = "fixed"
    NOT_FIXABLE = "not_fixable"
    DUPLICATE = "duplicate"
    WITHDRAWN = "withdrawn"
    REFERRED_ELSEWHERE = "referred_elsewhere"


class DeadlineKind(StrEnum):
    RESPONSE = "response"  # the unit must accept (respond) within this limit
    RESOLUTION = "resolution"  # the matter must be handled within this limit


class CalendarBasis(StrEnum):
    """Which calendar counted a deadline's working time."""

    OFFICIAL = "official"  # the city's working-day calendar, holidays and adjusted days included
    WEEKENDS_ONLY = "weekends_only"  # no calendar data for that year: weekends only, said so


class Channel(StrEnum):
    GRID_WORKER_APP = "grid_worker_app"
    HOTLINE_12345 = "hotline_12345"
    WECHAT = "wechat"
    RESIDENT_APP = "resident_app"
    VIDEO_ALERT = "video_alert"
    IOT_SENSOR = "iot_sensor"
    DEPARTMENT_REFERRAL = "department_referral"


class ReviewReason(StrEnum):
    """Why intake could not decide alone and an operator should look."""

    OUTSIDE_GRID = "outside_grid"
    NO_LOCATION = "no_location"
    NO_CATEGORY = "no_category"
    LOW_CATEGORY_CONFIDENCE = "low_category_confidence"


class TaskRole(StrEnum):
    LEAD = "lead"  # 主办: answers for the result
    ASSIST = "assist"  # 协办
    VERIFY = "verify"  # on-site check by a grid worker of the case's grid


class RejectReason(StrEnum):
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    OUT_OF_SCOPE = "out_of_scope"
    INSUFFICIENT_INFO = "insufficient_info"


class RefusalReason(StrEnum):
    WRONG_JURISDICTION = "wrong_jurisdiction"
    NOT_OUR_MATTER = "not_our_matter"
    INSUFFICIENT_INFO = "insufficient_info"
    OTHER = "other"


class EscalationTrigger(StrEnum):
    DEADLINE_BREACHED = "deadline_breached"
    REFUSALS_EXCEEDED = "refusals_exceeded"
    OPERATOR = "operator"


class ReworkCause(StrEnum):
    VERIFICATION_FAILED = "verification_failed"
    REOPENED_BY_REPORTER = "reopened_by_reporter"
    OPERATOR = "operator"


class OperatorQueueReason(StrEnum):
    """Why a case waits for an operator."""

    NEEDS_REVIEW = "needs_review"  # intake could not locate or categorise it with confidence
    JURISDICTION_DISPUTE = "jurisdiction_dispute"  # refused by too many units
    DELIVERY_FAILED = "delivery_failed"  # a department system could not be reached
    NO_ROUTE = "no_route"  # no routing rule matched


class Satisfaction(StrEnum):
    VERY_SATISFIED = "very_satisfied"
    SATISFIED = "satisfied"
    NEUTRAL = "neutral"
    DISSATISFIED = "dissatisfied"
    VERY_DISSATISFIED = "very_dissatisfied"


class Deadline(Strict):
    kind: DeadlineKind
    due_at: Timestamp = Field(description="When the limit runs out.")
    limit_minutes: int = Field(
        ge=1, le=525_600, description="The limit in working minutes, as the category sets it."
    )
    basis: CalendarBasis = Field(
        default=CalendarBasis.OFFICIAL, description="Calendar that counted the working time."
    )
    limit_amount: int | None = Field(
        default=None, ge=1, le=100_000, description="The category's limit as it is written."
    )
    limit_unit: Literal["working_hours", "working_days", "minutes"] | None = Field(
        default=None, description="The unit of `limit_amount` (registry LimitUnit)."
    )


class CaseEvent(Payload):
    """Every case event: which case, who acted, when. Keyed and ce_subject'ed by case_id."""

    case_id: UUID = Field(description="Stable case id; the Kafka key and ce_subject.")
    case_no: CaseNo
    actor: Actor = Field(description="Who caused this transition.")
    at: Timestamp = Field(description="When the transition happened.")


class TaskEvent(CaseEvent):
    task_id: UUID = Field(description="The task within the case.")
    unit_code: UnitCode = Field(description="The unit holding the task.")


def _example(actor: dict[str, Any], at: str, **fields: Any) -> dict[str, Any]:
    return {"case_id": EX_CASE_ID, "case_no": EX_CASE_NO, "actor": actor, "at": at, **fields}


def _task_example(actor: dict[str, Any], at: str, **fields: Any) -> dict[str, Any]:
    return _example(actor, at, task_id=EX_TASK_ID, unit_code="urban", **fields)


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


_REPORTER = {
    "reporter_id": "rp-7c2e91",
    "anonymous": False,
    "masked_name": "张*",
    "masked_phone": "138****5678",
    "phone_encrypted": {
        "alg": "AES-256-GCM",
        "key_id": "pii-2026-11",
        "nonce": "q83vEjRWeJCrze8S",
        "ciphertext": "3q2+7wAAAAAbH1u0k9Vv8hY5t3XK1mB2cQ==",
    },
}


# --- 上报 report -------------------------------------------------------------------------


class CaseReported(CaseEvent):
    """Intake accepted a report: a new case, or another reporter of an open one (一事一档)."""

    ce_type = "onegrid.case.reported.v1"
    model_config = _examples(
        _example(
            {"kind": "grid_worker", "id": "S0000123", "name": "王*"},
            "2026-11-23T09:31:05+08:00",
            report_id=EX_REPORT_ID,
            channel="grid_worker_app",
            category_code="environment.exposed_garbage",
            category_confidence=None,
            location=EX_LOCATION,
            grid_code=EX_GRID,
            grid_path=EX_GRID_PATH,
            description="小区门口垃圾堆积多日无人清理",
            occurred_at="2026-11-23T09:30:00+08:00",
            reporter=_REPORTER,
            attachments=[EX_PHOTO],
            resolved_on_site=False,
            duplicate_of=None,
            review_reasons=[],
        ),
        _example(
            {"kind": "reporter", "id": "rp-51aa03", "name": None},
            "2026-11-23T20:12:44+08:00",
            report_id="5e0c9a8b-7d6f-4e3a-9b2c-1d0e9f8a7b6c",
            channel="hotline_12345",
            category_code=None,
            category_confidence=None,
            location={
                "lon": 111.3501,
                "lat": 30.7455,
                "address": "伍家岗区城东大道与东山大道交叉口",
            },
            grid_code=None,
            grid_path=[],
            description="路口井盖破损，晚上有行人差点踩空，请尽快处理",
            occurred_at="2026-11-23T20:05:00+08:00",
            reporter={"reporter_id": "rp-51aa03", "anonymous": True},
            attachments=[],
            resolved_on_site=False,
            duplicate_of=None,
            review_reasons=["outside_grid", "no_category"],
        ),
    )

    report_id: UUID = Field(description="Intake's id of this report (one case may have several).")
    channel: Channel = Field(description="Where the report came in.")
    category_code: CategoryCode | None = Field(
        default=None, description="Category given by the reporter or proposed by intake."
    )
    category_confidence: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Confidence of intake's proposal; null when the reporter chose the category.",
    )
    location: Location | None = Field(default=None, description="Where the matter is.")
    grid_code: GridCode | None = Field(
        default=None, description="The grid containing the location; null outside every grid."
    )
    grid_path: tuple[GridCode, ...] = Field(
        default=(), max_length=8, description="Grid codes from the city down to grid_code."
    )
    description: LongText = Field(description="What the reporter described.")
    occurred_at: Timestamp = Field(description="When the matter was seen, per the reporter.")
    reporter: ReporterRef
    attachments: Attachments = ()
    resolved_on_site: bool = Field(
        default=False, description="A grid worker fixed it on the spot (self-handled, recorded)."
    )
    duplicate_of: UUID | None = Field(
        default=None,
        description="Set when this report joined an open case as another reporter; equals "
        "case_id then, and the case is not registered again.",
    )
    review_reasons: tuple[ReviewReason, ...] = Field(
        default=(), max_length=8, description="Why an operator should look before registration."
    )
    applicant: Applicant | None = Field(
        default=None,
        description="For a service request whose category needs the applicant's ID number "
        "(民政): the reporter as applicant, sealed for the lead unit's adapter only.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> CaseReported:
        if self.duplicate_of is not None and self.duplicate_of != self.case_id:
            raise ValueError("duplicate_of must equal case_id: a duplicate joins that case")
        if self.grid_path and self.grid_path[-1] != self.grid_code:
            raise ValueError("grid_path must end with grid_code")
        if self.grid_code is None and self.grid_path:
            raise ValueError("grid_path must be empty when grid_code is null")
        return self


# --- 立案 register -----------------------------------------------------------------------


class CaseRegistered(CaseEvent):
    """The case was registered (立案), automatically or by an operator."""

    ce_type = "onegrid.case.registered.v1"
    model_config = _examples(
        _example(
            EX_SYSTEM,
            "2026-11-23T09:31:06+08:00",
            category_code="environment.exposed_garbage",
            grid_code=EX_GRID,
            automatic=True,
            note=None,
        )
    )

    category_code: CategoryCode
    grid_code: GridCode | None = Field(description="Grid of the case; null only if none applies.")
    automatic: bool = Field(description="Registered by rule (true) or by an operator (false).")
    note: str | None = Field(default=None, max_length=1000, description="Operator's note.")


class CaseRejected(CaseEvent):
    """The case was not registered (不予立案)."""

    ce_type = "onegrid.case.rejected.v1"
    model_config = _examples(
        _example(
            EX_OPERATOR,
            "2026-11-23T10:02:00+08:00",
            reject_reason="out_of_scope",
            reason="反映的是商品房合同纠纷，属于民事诉讼范围，已告知来电人向法院起诉",
            duplicate_of=None,
        )
    )

    reject_reason: RejectReason
    reason: Reason
    duplicate_of: UUID | None = Field(default=None, description="The case it duplicates.")


class CaseRecategorised(CaseEvent):
    """An operator changed the case's category."""

    ce_type = "onegrid.case.recategorised.v1"
    model_config = _examples(
        _example(
            EX_OPERATOR,
            "2026-11-23T10:05:00+08:00",
            old_category_code="environment.exposed_garbage",
            new_category_code="street_order.occupied_road_business",
            reason="现场照片显示为占道经营，非垃圾堆放",
        )
    )

    old_category_code: CategoryCode | None
    new_category_code: CategoryCode
    reason: Reason


class CaseRelocated(CaseEvent):
    """An operator moved the case to another place or grid (e.g. near a boundary)."""

    ce_type = "onegrid.case.relocated.v1"
    model_config = _examples(
        _example(
            EX_OPERATOR,
            "2026-11-23T10:06:00+08:00",
            old_grid_code="420502003001001",
            new_grid_code="420502003001002",
            location=EX_LOCATION,
            grid_path=["420500", "420502", "420502003", "420502003001", "420502003001002"],
            reason="事发地点在道路北侧，属于相邻网格",
        )
    )

    old_grid_code: GridCode | None
    new_grid_code: GridCode
    location: Location | None = Field(default=None, description="Corrected point, if any.")
    grid_path: tuple[GridCode, ...] = Field(
        default=(), max_length=8, description="Grid codes from the city down to new_grid_code."
    )
    reason: Reason


# --- 派遣 dispatch -----------------------------------------------------------------------


class CaseDispatched(CaseEvent):
    """Routing decided the tier and units; tasks follow as TaskAssigned."""

    ce_type = "onegrid.case.dispatched.v1"
    model_config = _examples(
        _example(
            EX_SYSTEM,
            "2026-11-23T09:31:07+08:00",
            tier="department",
            lead_unit_code="urban",
            assisting_unit_codes=["street-420502003"],
            excluded_unit_codes=[],
            route_code="route.environment.exposed_garbage",
            near_boundary=False,
            deadlines=[
                {
                    "kind": "response",
                    "due_at": "2026-11-23T11:31:07+08:00",
                    "limit_minutes": 120,
                    "basis": "official",
                },
                {
                    "kind": "resolution",
                    "due_at": "2026-11-24T17:31:07+08:00",
                    "limit_minutes": 960,
                    "basis": "official",
                },
            ],
            attempt=1,
        )
    )

    tier: Tier
    lead_unit_code: UnitCode
    assisting_unit_codes: tuple[UnitCode, ...] = Field(default=(), max_length=16)
    excluded_unit_codes: tuple[UnitCode, ...] = Field(
        default=(), max_length=32, description="Units that refused earlier and are left out."
    )
    route_code: str | None = Field(
        default=None, max_length=120, description="Code of the registry routing rule that decided."
    )
    near_boundary: bool = Field(
        default=False, description="Within the configured distance of another grid's boundary."
    )
    deadlines: tuple[Deadline, ...] = Field(max_length=4, description="Response and resolution.")
    attempt: int = Field(default=1, ge=1, le=100, description="1, then +1 per re-route.")


class TaskAssigned(TaskEvent):
    """A task was created for a unit (or, for verification, a grid worker)."""

    ce_type = "onegrid.case.task.assigned.v1"
    model_config = _examples(
        _task_example(
            EX_SYSTEM,
            "2026-11-23T09:31:07+08:00",
            role="lead",
            assignee_staff_id=None,
            deadlines=[
                {
                    "kind": "resolution",
                    "due_at": "2026-11-24T17:31:07+08:00",
                    "limit_minutes": 960,
                    "basis": "official",
                }
            ],
        )
    )

    role: TaskRole
    assignee_staff_id: StaffCode | None = Field(
        default=None, description="A named person, e.g. the grid worker who verifies."
    )
    deadlines: tuple[Deadline, ...] = Field(default=(), max_length=4)


class TaskAccepted(TaskEvent):
    """The unit accepted the task (this is its response)."""

    ce_type = "onegrid.case.task.accepted.v1"
    model_config = _examples(
        _task_example(
            EX_UNIT, "2026-11-23T09:48:12+08:00", external_ref="CG-2026-1123-0815", note=None
        )
    )

    external_ref: str | None = Field(
        default=None, max_length=64, description="The department's own reference number."
    )
    note: str | None = Field(default=None, max_length=1000)


class TaskRefused(TaskEvent):
    """The unit refused the task; the case goes back to routing without it."""

    ce_type = "onegrid.case.task.refused.v1"
    model_config = _examples(
        _task_example(
            {"kind": "unit", "id": "police"},
            "2026-11-23T09:52:40+08:00",
            refusal_reason="not_our_matter",
            reason="该事项属于市容环境问题，不属于公安机关职责范围",
        )
    )

    refusal_reason: RefusalReason
    reason: Reason


class TaskProgressed(TaskEvent):
    """The unit reported progress."""

    ce_type = "onegrid.case.task.progressed.v1"
    model_config = _examples(
        _task_example(
            EX_UNIT,
            "2026-11-23T14:20:00+08:00",
            note="已安排环卫车辆，预计今日16时前清运完毕",
            attachments=[],
        )
    )

    note: LongText
    attachments: Attachments = ()


class TaskCompleted(TaskEvent):
    """The unit finished its task, with the result and photos."""

    ce_type = "onegrid.case.task.completed.v1"
    model_config = _examples(
        _task_example(
            EX_UNIT,
            "2026-11-23T15:55:00+08:00",
            result="垃圾已全部清运，周边地面已冲洗，已通知物业加强日常保洁",
            attachments=[EX_PHOTO],
            fixed=True,
        )
    )

    result: LongText = Field(description="What was done, in the unit's words.")
    attachments: Attachments = ()
    fixed: bool = Field(default=True, description="False when the matter cannot be fixed.")


class TaskDeliveryFailed(TaskEvent):
    """The task could not be delivered to the department system after the retry budget."""

    ce_type = "onegrid.case.task.delivery_failed.v1"
    model_config = _examples(
        _task_example(
            {"kind": "system", "id": "adapter-urban"},
            "2026-11-23T09:45:07+08:00",
            error="HTTP 503 from department system after 8 attempts",
            attempts=8,
        )
    )

    error: str = Field(min_length=1, max_length=2000)
    attempts: int = Field(ge=1, le=1000)


class TaskCancelled(TaskEvent):
    """Dispatch withdrew a task (re-route, escalation, case closed or rejected)."""

    ce_type = "onegrid.case.task.cancelled.v1"
    model_config = _examples(
        _task_example(EX_OPERATOR, "2026-11-23T10:06:30+08:00", reason="案件已改派相邻网格")
    )

    reason: Reason


class CaseFlaggedForOperator(CaseEvent):
    """The case waits in the operator queue."""

    ce_type = "onegrid.case.flagged_for_operator.v1"
    model_config = _examples(
        _example(
            EX_SYSTEM,
            "2026-11-23T10:40:00+08:00",
            queue_reason="jurisdiction_dispute",
            detail="3 个单位以不属于职责范围为由退回",
        )
    )

    queue_reason: OperatorQueueReason
    detail: str | None = Field(default=None, max_length=1000)


# --- 处置反馈 handle and report back -------------------------------------------------------


class CaseFollowUpAdded(CaseEvent):
    """A reporter added detail; forwarded to every unit with an open task."""

    ce_type = "onegrid.case.followup_added.v1"
    model_config = _examples(
        _example(
            {"kind": "reporter", "id": "rp-7c2e91", "name": "张*"},
            "2026-11-23T13:10:00+08:00",
            followup_id="a4c1e7f0-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
            text="垃圾堆旁边还有一个破沙发，一起处理一下",
            attachments=[EX_PHOTO],
            forwarded_to=["urban"],
        )
    )

    followup_id: UUID
    text: LongText
    attachments: Attachments = ()
    forwarded_to: tuple[UnitCode, ...] = Field(default=(), max_length=16)


class CaseHandled(CaseEvent):
    """Every task of the case is complete; verification follows."""

    ce_type = "onegrid.case.handled.v1"
    model_config = _examples(
        _example(
            EX_SYSTEM,
            "2026-11-23T15:55:01+08:00",
            task_ids=[EX_TASK_ID],
            summary="垃圾已全部清运，周边地面已冲洗，已通知物业加强日常保洁",
        )
    )

    task_ids: tuple[UUID, ...] = Field(min_length=1, max_length=32)
    summary: str | None = Field(default=None, max_length=4000)


# --- 核查结案 verify and close --------------------------------------------------------------


class CaseVerified(CaseEvent):
    """The on-site check passed."""

    ce_type = "onegrid.case.verified.v1"
    model_config = _examples(
        _example(
            {"kind": "grid_worker", "id": "S0000123", "name": "王*"},
            "2026-11-23T16:40:00+08:00",
            verification_task_id="e1d2c3b4-a5f6-4e7d-8c9b-0a1b2c3d4e5f",
            note="现场核查，垃圾已清理干净",
            attachments=[EX_PHOTO],
        )
    )

    verification_task_id: UUID | None = None
    note: str | None = Field(default=None, max_length=1000)
    attachments: Attachments = ()


class CaseReworkRequested(CaseEvent):
    """Back to the units: verification failed, the reporter reopened, or an operator said so."""

    ce_type = "onegrid.case.rework_requested.v1"
    model_config = _examples(
        _example(
            {"kind": "grid_worker", "id": "S0000123", "name": "王*"},
            "2026-11-23T16:40:00+08:00",
            cause="verification_failed",
            reason="南门东侧仍有两袋建筑垃圾未清运",
            rework_count=1,
        )
    )

    cause: ReworkCause
    reason: Reason
    rework_count: int = Field(
        ge=1, le=100, description="Reworks of this case so far, this one included."
    )


class CaseReopened(CaseEvent):
    """A reporter reopened a closed case within 7 days; rework follows."""

    ce_type = "onegrid.case.reopened.v1"
    model_config = _examples(
        _example(
            {"kind": "reporter", "id": "rp-7c2e91", "name": "张*"},
            "2026-11-25T08:15:00+08:00",
            reason="今天早上门口又堆满了垃圾，问题没有解决",
            reopen_count=1,
        )
    )

    reason: Reason
    reopen_count: int = Field(ge=1, le=100)


class CaseClosed(CaseEvent):
    """The case is closed and says how it ended."""

    ce_type = "onegrid.case.closed.v1"
    model_config = _examples(
        _example(
            EX_SYSTEM,
            "2026-11-23T16:40:01+08:00",
            outcome="fixed",
            reason=None,
            self_handled=False,
            on_time=True,
            resolution_due_at="2026-11-24T17:31:07+08:00",
        )
    )

    outcome: CaseOutcome
    reason: Reason | None = Field(default=None, description="Required unless outcome is fixed.")
    self_handled: bool = Field(default=False, description="Closed in the grid on the spot.")
    on_time: bool | None = Field(
        default=None, description="Resolved before the resolution deadline; null if none."
    )
    resolution_due_at: Timestamp | None = None

    @model_validator(mode="after")
    def _reason_unless_fixed(self) -> CaseClosed:
        if self.outcome != CaseOutcome.FIXED and self.reason is None:
            raise ValueError(f"a case closed as {self.outcome.value} needs a reason")
        return self


# --- 综合评价 evaluate ---------------------------------------------------------------------


class CaseEvaluated(CaseEvent):
    """A reporter rated the handling (or the default applied after 7 days)."""

    ce_type = "onegrid.case.evaluated.v1"
    model_config = _examples(
        _example(
            {"kind": "reporter", "id": "rp-7c2e91", "name": "张*"},
            "2026-11-24T09:00:00+08:00",
            reporter_id="rp-7c2e91",
            rating=5,
            satisfaction="very_satisfied",
            comment="处理很及时，谢谢网格员",
            is_default=False,
        ),
        _example(
            EX_SYSTEM,
            "2026-11-30T16:40:01+08:00",
            reporter_id="rp-51aa03",
            rating=4,
            satisfaction="satisfied",
            comment=None,
            is_default=True,
        ),
    )

    reporter_id: str = Field(min_length=1, max_length=64)
    rating: int = Field(ge=1, le=5, description="1 (very dissatisfied) to 5 (very satisfied).")
    satisfaction: Satisfaction
    comment: str | None = Field(default=None, max_length=1000)
    is_default: bool = Field(default=False, description="No answer in 7 days: default applied.")


# --- deadlines and escalation -------------------------------------------------------------


class DeadlineWarning(CaseEvent):
    """80% of a limit has elapsed; the unit head is told."""

    ce_type = "onegrid.case.deadline.warning.v1"
    model_config = _examples(
        _example(
            EX_SYSTEM,
            "2026-11-24T14:19:07+08:00",
            kind="resolution",
            due_at="2026-11-24T17:31:07+08:00",
            elapsed_ratio=0.8,
            unit_code="urban",
            task_id=EX_TASK_ID,
            unit_head_staff_id="S0000901",
        )
    )

    kind: DeadlineKind
    due_at: Timestamp
    elapsed_ratio: float = Field(ge=0, le=1)
    unit_code: UnitCode
    task_id: UUID | None = None
    unit_head_staff_id: StaffCode | None = None


class DeadlineBreached(CaseEvent):
    """A limit ran out; escalation follows."""

    ce_type = "onegrid.case.deadline.breached.v1"
    model_config = _examples(
        _example(
            EX_SYSTEM,
            "2026-11-24T17:31:07+08:00",
            kind="resolution",
            due_at="2026-11-24T17:31:07+08:00",
            unit_code="urban",
            task_id=EX_TASK_ID,
        )
    )

    kind: DeadlineKind
    due_at: Timestamp
    unit_code: UnitCode
    task_id: UUID | None = None


class DeadlineExtensionRequested(CaseEvent):
    """A unit asked for more time."""

    ce_type = "onegrid.case.deadline.extension_requested.v1"
    model_config = _examples(
        _example(
            EX_UNIT,
            "2026-11-24T10:00:00+08:00",
            request_id="c0ffee00-1234-4abc-8def-0123456789ab",
            task_id=EX_TASK_ID,
            kind="resolution",
            requested_due_at="2026-11-26T17:30:00+08:00",
            reason="需协调产权单位共同处理，需延期两个工作日",
        )
    )

    request_id: UUID
    task_id: UUID | None = None
    kind: DeadlineKind
    requested_due_at: Timestamp
    reason: Reason


class DeadlineExtended(CaseEvent):
    """An operator approved an extension; the deadline moved."""

    ce_type = "onegrid.case.deadline.extended.v1"
    model_config = _examples(
        _example(
            EX_OPERATOR,
            "2026-11-24T10:30:00+08:00",
            request_id="c0ffee00-1234-4abc-8def-0123456789ab",
            task_id=EX_TASK_ID,
            kind="resolution",
            old_due_at="2026-11-24T17:31:07+08:00",
            new_due_at="2026-11-26T17:30:00+08:00",
            reason="情况属实，同意延期",
        )
    )

    request_id: UUID | None = Field(default=None, description="The request approved, if any.")
    task_id: UUID | None = None
    kind: DeadlineKind
    old_due_at: Timestamp
    new_due_at: Timestamp
    reason: Reason

    @model_validator(mode="after")
    def _later(self) -> DeadlineExtended:
        if self.new_due_at <= self.old_due_at:
            raise ValueError("new_due_at must be later than old_due_at")
        return self


class DeadlineExtensionRefused(CaseEvent):
    """An operator refused an extension."""

    ce_type = "onegrid.case.deadline.extension_refused.v1"
    model_config = _examples(
        _example(
            EX_OPERATOR,
            "2026-11-24T10:30:00+08:00",
            request_id="c0ffee00-1234-4abc-8def-0123456789ab",
            reason="清运工作量不大，应在时限内完成",
        )
    )

    request_id: UUID
    reason: Reason


class CaseEscalated(CaseEvent):
    """The case went up one tier and, on a breach, is supervised (督办)."""

    ce_type = "onegrid.case.escalated.v1"
    model_config = _examples(
        _example(
            EX_SYSTEM,
            "2026-11-24T17:31:08+08:00",
            trigger="deadline_breached",
            from_tier="street",
            to_tier="department",
            supervised=True,
            reason="处置时限已到期未办结，升级督办",
        )
    )

    trigger: EscalationTrigger
    from_tier: Tier
    to_tier: Tier
    supervised: bool = Field(description="Marked 督办 (supervised) from now on.")
    reason: Reason


class CaseSuspended(CaseEvent):
    """Paused (e.g. waiting for weather or a court); deadlines stop."""

    ce_type = "onegrid.case.suspended.v1"
    model_config = _examples(
        _example(
            EX_OPERATOR,
            "2026-11-24T11:00:00+08:00",
            reason="暴雨预警期间暂停户外施工类处置",
            until="2026-11-26T09:00:00+08:00",
        )
    )

    reason: Reason
    until: Timestamp | None = Field(default=None, description="Planned resume time, if known.")


class CaseResumed(CaseEvent):
    """A suspended case goes on; deadlines run again."""

    ce_type = "onegrid.case.resumed.v1"
    model_config = _examples(
        _example(
            EX_OPERATOR,
            "2026-11-26T09:00:00+08:00",
            reason="预警解除，恢复处置",
            resumed_state="in_progress",
        )
    )

    reason: Reason
    resumed_state: CaseState = Field(description="The state the case returns to.")
