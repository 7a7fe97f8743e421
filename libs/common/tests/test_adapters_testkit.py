"""The adapter contract test kit's checks, on hand-made reply streams (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from onegrid_common.adapters.sealed import open_sealed, seal
from onegrid_common.adapters.testkit import (
    ReceivedReply,
    cancel_of,
    check_replies,
    complete,
    sample_task,
)
from onegrid_common.pii import PiiCipher, PiiDecryptError
from onegrid_contracts.envelope import new_envelope
from onegrid_contracts.tasks import (
    DeptReply,
    DeptTaskAccepted,
    DeptTaskAssigned,
    DeptTaskCompleted,
    DeptTaskDeliveryFailed,
    DeptTaskProgressed,
    DeptTaskRefused,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def fields(task: DeptTaskAssigned) -> dict[str, object]:
    return {
        "task_id": task.task_id,
        "unit_code": task.unit_code,
        "case_id": task.case_id,
        "case_no": task.case_no,
        "at": NOW,
    }


def received(replies: list[DeptReply], *, key: str | None = None) -> list[ReceivedReply]:
    return [
        ReceivedReply(
            new_envelope(r, source="adapter-x", subject=str(r.case_id)),
            r,
            key or str(r.case_id),
            0,
            n,
        )
        for n, r in enumerate(replies)
    ]


def accepted(task: DeptTaskAssigned) -> DeptTaskAccepted:
    return DeptTaskAccepted(**fields(task), external_ref="R-1")


def completed(task: DeptTaskAssigned) -> DeptTaskCompleted:
    return DeptTaskCompleted(**fields(task), result="已处理")


def failed(task: DeptTaskAssigned) -> DeptTaskDeliveryFailed:
    return DeptTaskDeliveryFailed(**fields(task), error="HTTP 503", attempts=3)


def test_a_full_lifecycle_passes() -> None:
    task = sample_task("urban")
    replies = received(
        [
            failed(task),
            accepted(task),
            DeptTaskProgressed(**fields(task), note="处置中"),
            completed(task),
        ]
    )
    report = check_replies([task], replies, delivery_failure_settles=False)
    assert report.ok, report.problems
    assert report.replies_by_task[task.task_id] == [
        "deliveryfailed",
        "accepted",
        "progressed",
        "completed",
    ]


def test_out_of_order_and_after_terminal_replies_are_problems() -> None:
    task = sample_task("urban")
    replies = received(
        [
            DeptTaskProgressed(**fields(task), note="处置中"),
            accepted(task),
            completed(task),
            accepted(task),
        ]
    )
    problems = check_replies([task], replies).problems
    assert any("progressed before accepted" in p for p in problems)
    assert any("accepted after a terminal reply" in p for p in problems)


def test_a_task_without_terminal_reply_is_incomplete_unless_cancelled() -> None:
    open_task, cancelled = sample_task("urban"), sample_task("urban")
    replies = received([accepted(open_task), accepted(cancelled)])
    messages = [open_task, cancelled, cancel_of(cancelled)]
    problems = check_replies(messages, replies).problems
    assert problems == [f"task {open_task.task_id}: incomplete, replies so far ['accepted']"]
    assert not complete(messages, replies)
    assert check_replies(messages, replies, require_terminal=False).ok


def test_a_delivery_failure_settles_only_when_allowed() -> None:
    task = sample_task("urban")
    replies = received([failed(task)])
    assert complete([task], replies)
    assert not complete([task], replies, delivery_failure_settles=False)


def test_wrong_key_unknown_task_and_foreign_unit_are_problems() -> None:
    task, other = sample_task("urban"), sample_task("urban")
    foreign = DeptTaskRefused(
        **{**fields(task), "unit_code": "police"}, refusal_reason="other", reason="x"
    )
    problems = check_replies(
        [task],
        [
            *received([accepted(task)], key="not-the-case"),
            *received([completed(other)]),
            *received([foreign]),
        ],
    ).problems
    assert any("not keyed" in p for p in problems)
    assert any(f"unknown task {other.task_id}" in p for p in problems)
    assert any("another unit or case" in p for p in problems)


def test_sealed_applicant_fields_open_only_for_their_case_and_field() -> None:
    cipher = PiiCipher({"k1": bytes(range(32))})
    case_id = uuid.uuid4()
    sealed = seal(cipher, "420502194003151234", case_id=case_id, field="id_number")
    assert "420502" not in sealed.ciphertext
    assert open_sealed(cipher, sealed, case_id=case_id, field="id_number") == "420502194003151234"
    with pytest.raises(PiiDecryptError):
        open_sealed(cipher, sealed, case_id=uuid.uuid4(), field="id_number")
    with pytest.raises(PiiDecryptError):
        open_sealed(cipher, sealed, case_id=case_id, field="name")
