"""onegrid ↔ 接处警: categories to 警情类别, priorities to 警情等级, callbacks to updates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from onegrid_common.adapters import DeptUpdate
from onegrid_contracts.tasks import DeptTaskAssigned

# Police matters only; anything else goes out as 90 其他 and the police system refuses it.
ALARM_TYPE_BY_CATEGORY: dict[str, str] = {
    "security.gambling": "20",  # 治安案件
    "security.suspicious_person": "20",
    "security.rental_housing": "20",
    "street_order.noise": "20",
    "dispute.neighbour": "40",  # 纠纷
    "dispute.family": "40",
    "dispute.property_management": "40",
    "dispute.wage_arrears": "40",
    "special_groups.mental_disorder": "50",  # 群众求助
    "special_groups.community_correction": "50",
}
OTHER = "90"
ALARM_LEVEL_BY_PRIORITY = {"urgent": "一级", "high": "二级", "normal": "三级", "low": "三级"}


def incident_request(task: DeptTaskAssigned, callback_url: str) -> dict[str, Any]:
    location = task.location
    return {
        "sourceRef": str(task.task_id),
        "alarmType": ALARM_TYPE_BY_CATEGORY.get(task.category_code, OTHER),
        "alarmLevel": ALARM_LEVEL_BY_PRIORITY[task.priority.value],
        "content": f"【{task.category_name}】{task.description}",
        "address": task.address,
        "longitude": location.lon if location else None,
        "latitude": location.lat if location else None,
        "reportTime": task.reported_at.isoformat(),
        "callbackUrl": callback_url,
    }


def callback_update(body: dict[str, Any]) -> DeptUpdate:
    """A status callback as an update; ValueError for a body that is not one."""
    try:
        code = str(body["statusCode"])
        status = str(body["status"])
        at = datetime.fromisoformat(str(body["statusTime"]))
        event_id = str(body["eventId"])
        jqbh = str(body["jqbh"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not a 接处警 status callback: {exc}") from exc
    if at.tzinfo is None:
        raise ValueError("statusTime needs a UTC offset")
    officer = body.get("officer")
    if code == "03":
        return DeptUpdate(
            update_id=event_id,
            kind="completed",
            at=at,
            external_ref=jqbh,
            result=body.get("feedback") or "警情已处结",
            external_status=status,
            handled_by=officer,
        )
    return DeptUpdate(
        update_id=event_id,
        kind="progressed",
        at=at,
        external_ref=jqbh,
        note=f"公安：{status}",
        external_status=status,
        handled_by=officer,
    )
