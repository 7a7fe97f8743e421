"""The department task protocol: how every network joins one case flow (多网融合).

Dispatch sends tasks on `dept.<unit>.tasks.v1` (assigned, follow-up, cancelled); the unit's
adapter answers on `dept.<unit>.replies.v1` (accepted, refused, progressed, completed,
extension requested, delivery failed). Both topics are keyed by case id, so one case's
messages stay in order. Each message names its task and unit; a reply for a task the unit
does not hold is refused by dispatch.

A task carries everything a department needs to act without calling back into onegrid.
Personal data a department needs (a service applicant's ID number) travels sealed
(AES-256-GCM, key id for rotation); only the adapter holding that key opens it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import ConfigDict, Field

from onegrid_contracts.base import Payload
from onegrid_contracts.cases import Deadline, DeadlineKind, RefusalReason, TaskRole
from onegrid_contracts.primitives import (
    EX_CASE_ID,
    EX_CASE_NO,
    EX_GRID,
    EX_LOCATION,
    EX_PHOTO,
    EX_TASK_ID,
    Attachments,
    CaseNo,
    CategoryCode,
    GridCode,
    Location,
    LongText,
    Reason,
    Timestamp,
    UnitCode,
)
from onegrid_contracts.primitives import (
    Applicant as Applicant,  # re-exported: part of the task protocol
)
from onegrid_contracts.registry import Priority


class DeptMessage(Payload):
    """Every task and reply: which task of which case, for which unit, sent when."""

    task_id: UUID = Field(description="The task; the idempotency key for the adapter.")
    unit_code: UnitCode = Field(description="The unit the task belongs to (the topic's unit).")
    case_id: UUID = Field(description="The case; the Kafka key and ce_subject.")
    case_no: CaseNo
    at: Timestamp = Field(description="When this message was produced.")


def _example(unit_code: str, at: str, **fields: Any) -> dict[str, Any]:
    return {
        "task_id": EX_TASK_ID,
        "unit_code": unit_code,
        "case_id": EX_CASE_ID,
        "case_no": EX_CASE_NO,
        "at": at,
        **fields,
    }


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


_DEADLINES = [
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
]


# --- dispatch → department: dept.<unit>.tasks.v1 -----------------------------------------


class DeptTaskAssigned(DeptMessage):
    """A new task for the unit, with everything needed to act on it."""

    ce_type = "onegrid.dept.task.assigned.v1"
    model_config = _examples(
        _example(
            "urban",
            "2026-11-23T09:31:08+08:00",
            role="lead",
            lead_unit_code="urban",
            category_code="environment.exposed_garbage",
            category_name="暴露垃圾",
            priority="normal",
            supervised=False,
            description="小区门口垃圾堆积多日无人清理",
            location=EX_LOCATION,
            address="西陵区夷陵大道 58 号锦绣小区南门",
            grid_code=EX_GRID,
            grid_name="锦绣社区第一网格",
            occurred_at="2026-11-23T09:30:00+08:00",
            reported_at="2026-11-23T09:31:05+08:00",
            deadlines=_DEADLINES,
            attachments=[EX_PHOTO],
            applicant=None,
        ),
        _example(
            "civil",
            "2026-11-23T10:12:00+08:00",
            role="lead",
            lead_unit_code="civil",
            category_code="livelihood.elderly_allowance",
            category_name="高龄补贴",
            priority="normal",
            supervised=False,
            description="辖区居民刘桂英年满 80 周岁，申请高龄津贴，网格员已代办收集材料",
            location={"lon": 111.2875, "lat": 30.6988, "address": None},
            address="西陵区西陵二路 12 号 3 栋 2 单元 501",
            grid_code="420502003001004",
            grid_name="锦绣社区第四网格",
            occurred_at="2026-11-23T10:00:00+08:00",
            reported_at="2026-11-23T10:11:30+08:00",
            deadlines=[
                {
                    "kind": "resolution",
                    "due_at": "2026-12-07T17:30:00+08:00",
                    "limit_minutes": 4800,
                    "basis": "official",
                }
            ],
            attachments=[
                {
                    "url": "https://files.yichang.example/cases/2026/11/23/hukou.pdf",
                    "media_type": "application/pdf",
                    "size_bytes": 210544,
                    "sha256": "0c5d9e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5",
                }
            ],
            applicant={
                "masked_name": "刘*英",
                "masked_phone": "139****0456",
                "name": {
                    "alg": "AES-256-GCM",
                    "key_id": "civil-2026-11",
                    "nonce": "Zm9vYmFyYmF6cXV4",
                    "ciphertext": "k3J9s0pQ1w2E3r4T5y6U7i8O9p==",
                },
                "id_number": {
                    "alg": "AES-256-GCM",
                    "key_id": "civil-2026-11",
                    "nonce": "bm9uY2UxMjM0NTY3",
                    "ciphertext": "xY7zQ2lM9nB4vC1kJ8hG5fD3sA6pO0iU7yT2rE4wQ1==",
                },
                "phone": None,
            },
        ),
    )

    role: TaskRole = Field(description="lead (主办) or assist (协办).")
    lead_unit_code: UnitCode = Field(description="The lead unit (itself when role is lead).")
    category_code: CategoryCode
    category_name: str = Field(min_length=1, max_length=100, description="Chinese category name.")
    priority: Priority
    supervised: bool = Field(default=False, description="Under supervision (督办).")
    description: LongText = Field(description="The matter as reported.")
    location: Location | None = None
    address: str | None = Field(default=None, max_length=200)
    grid_code: GridCode | None = None
    grid_name: str | None = Field(default=None, max_length=100)
    occurred_at: Timestamp
    reported_at: Timestamp
    deadlines: tuple[Deadline, ...] = Field(max_length=4)
    attachments: Attachments = ()
    applicant: Applicant | None = Field(
        default=None, description="Only for service requests whose category needs an ID number."
    )


class FollowUpKind(StrEnum):
    REPORTER_FOLLOWUP = "reporter_followup"  # more detail, photos, "still not fixed"
    REWORK_REQUESTED = "rework_requested"  # verification failed or the reporter reopened
    DEADLINE_CHANGED = "deadline_changed"  # an extension approved
    ESCALATED = "escalated"  # now supervised (督办)


class DeptTaskFollowUp(DeptMessage):
    """News about a task the unit holds."""

    ce_type = "onegrid.dept.task.followup.v1"
    model_config = _examples(
        _example(
            "urban",
            "2026-11-23T13:10:01+08:00",
            followup_id="a4c1e7f0-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
            kind="reporter_followup",
            text="垃圾堆旁边还有一个破沙发，一起处理一下",
            attachments=[EX_PHOTO],
            deadlines=[],
            supervised=False,
        )
    )

    followup_id: UUID = Field(description="Idempotency key of this follow-up.")
    kind: FollowUpKind
    text: LongText
    attachments: Attachments = ()
    deadlines: tuple[Deadline, ...] = Field(
        default=(), max_length=4, description="The deadlines now in force, when they changed."
    )
    supervised: bool = False


class DeptTaskCancelled(DeptMessage):
    """The task is withdrawn; the unit stops work on it."""

    ce_type = "onegrid.dept.task.cancelled.v1"
    model_config = _examples(
        _example("urban", "2026-11-23T10:06:31+08:00", reason="案件已改派相邻网格处理")
    )

    reason: Reason


# --- department → dispatch: dept.<unit>.replies.v1 ---------------------------------------


class DeptReply(DeptMessage):
    handled_by: str | None = Field(
        default=None, max_length=64, description="Department staff name or id, if given."
    )


class DeptTaskAccepted(DeptReply):
    ce_type = "onegrid.dept.reply.accepted.v1"
    model_config = _examples(
        _example(
            "urban",
            "2026-11-23T09:48:12+08:00",
            external_ref="CG-2026-1123-0815",
            note="已受理，转西陵区环卫所",
            handled_by="赵*",
        )
    )

    external_ref: str = Field(
        min_length=1, max_length=64, description="The department's own reference number."
    )
    note: str | None = Field(default=None, max_length=1000)


class DeptTaskRefused(DeptReply):
    ce_type = "onegrid.dept.reply.refused.v1"
    model_config = _examples(
        _example(
            "police",
            "2026-11-23T09:52:40+08:00",
            refusal_reason="not_our_matter",
            reason="该事项属于市容环境问题，不属于公安机关职责范围",
            handled_by=None,
        )
    )

    refusal_reason: RefusalReason
    reason: Reason


class DeptTaskProgressed(DeptReply):
    ce_type = "onegrid.dept.reply.progressed.v1"
    model_config = _examples(
        _example(
            "urban",
            "2026-11-23T14:20:00+08:00",
            note="已安排环卫车辆，预计今日16时前清运完毕",
            external_status="处置中",
            attachments=[],
            handled_by="赵*",
        )
    )

    note: LongText
    external_status: str | None = Field(
        default=None, max_length=64, description="The department's own status name."
    )
    attachments: Attachments = ()


class DeptTaskCompleted(DeptReply):
    ce_type = "onegrid.dept.reply.completed.v1"
    model_config = _examples(
        _example(
            "urban",
            "2026-11-23T15:55:00+08:00",
            result="垃圾已全部清运，周边地面已冲洗，已通知物业加强日常保洁",
            attachments=[EX_PHOTO],
            fixed=True,
            handled_by="赵*",
        )
    )

    result: LongText = Field(description="What was done.")
    attachments: Attachments = Field(default=(), description="Photos of the result.")
    fixed: bool = Field(default=True, description="False when the matter cannot be fixed.")


class DeptExtensionRequested(DeptReply):
    ce_type = "onegrid.dept.reply.extension_requested.v1"
    model_config = _examples(
        _example(
            "urban",
            "2026-11-24T10:00:00+08:00",
            request_id="c0ffee00-1234-4abc-8def-0123456789ab",
            kind="resolution",
            requested_due_at="2026-11-26T17:30:00+08:00",
            reason="需协调产权单位共同处理，需延期两个工作日",
            handled_by="赵*",
        )
    )

    request_id: UUID
    kind: DeadlineKind = Field(description="Which deadline.")
    requested_due_at: Timestamp
    reason: Reason


class DeptTaskDeliveryFailed(DeptReply):
    """The adapter gave up delivering the task after its retry budget."""

    ce_type = "onegrid.dept.reply.delivery_failed.v1"
    model_config = _examples(
        _example(
            "urban",
            "2026-11-23T09:45:07+08:00",
            error="HTTP 503 Service Unavailable from department system",
            attempts=8,
            handled_by=None,
        )
    )

    error: str = Field(min_length=1, max_length=2000)
    attempts: int = Field(ge=1, le=1000)
