"""Translation between onegrid and 数字城管: categories to the standard's event codes
(大类/小类), priorities to 紧急程度, and the system's statuses back. Pure data and logic."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from onegrid_common.adapters import DeptUpdate
from onegrid_contracts.tasks import DeptTaskAssigned

# onegrid category → (大类, 小类) of the digital urban management standard's event classes.
EVENT_CODE_BY_CATEGORY: dict[str, tuple[str, str]] = {
    "construction.illegal_building": ("01", "01"),  # 私搭乱建
    "environment.exposed_garbage": ("01", "02"),  # 暴露垃圾
    "environment.overflowing_bin": ("01", "03"),  # 积存垃圾渣土
    "environment.road_dirt": ("01", "04"),  # 道路不洁
    "environment.dead_animal": ("01", "04"),  # 道路不洁
    "greening.damaged_green": ("01", "06"),  # 绿地脏乱
    "advertising.illegal_posters": ("02", "01"),  # 非法小广告
    "advertising.banner": ("02", "02"),  # 违章张贴悬挂广告
    "advertising.illegal_signboard": ("02", "03"),  # 占道广告牌
    "construction.night_work": ("03", "01"),  # 施工扰民
    "construction.site_dust": ("03", "03"),  # 道路遗撒
    "environment.construction_waste": ("03", "04"),  # 施工废弃料
    "construction.road_excavation": ("03", "05"),  # 无证掘路
    "traffic.road_damage": ("04", "01"),  # 路面塌陷
    "facilities.water_pipe": ("04", "02"),  # 自来水管破裂
    "facilities.drain_blockage": ("04", "04"),  # 下水道堵塞或破损
    "emergency.flooding": ("04", "05"),  # 道路积水
    "street_order.street_vending": ("05", "01"),  # 无照经营游商
    "street_order.outside_shop": ("05", "04"),  # 店外经营
    "street_order.illegal_parking": ("05", "05"),  # 机动车乱停放
    "street_order.shared_bikes": ("05", "06"),  # 非机动车乱停放
}

URGENCY_BY_PRIORITY = {"urgent": 1, "high": 2, "normal": 3, "low": 3}

# 数字城管 statuses → what onegrid hears. 已受理 was the acceptance itself.
PROGRESSED = "处置中"
CLOSED = "已结案"
REVOKED = "已撤销"


def event_code(category_code: str) -> tuple[str, str] | None:
    return EVENT_CODE_BY_CATEGORY.get(category_code)


def case_request(task: DeptTaskAssigned) -> dict[str, Any]:
    """The body of POST /api/v2/cases; the task must have an event code (see event_code)."""
    codes = event_code(task.category_code)
    if codes is None:
        raise ValueError(f"no 数字城管 event code for category {task.category_code}")
    location = task.location
    return {
        "wbbh": str(task.task_id),
        "dlbm": codes[0],
        "xlbm": codes[1],
        "wtms": task.description,
        "dz": task.address or (location.address if location else None),
        "zbx": location.lon if location else None,
        "zby": location.lat if location else None,
        "wgbm": task.grid_code,
        "jjcd": URGENCY_BY_PRIORITY[task.priority.value],
        "sbsj": task.reported_at.isoformat(),
        "fj": [a.url for a in task.attachments],
    }


def status_update(item: dict[str, Any]) -> DeptUpdate | None:
    """A polled status row as an update (None for statuses onegrid need not hear)."""
    status = item.get("zt")
    ref = str(item["ajbh"])
    at = datetime.fromisoformat(str(item["gxsj"]))
    if status == PROGRESSED:
        return DeptUpdate(
            update_id=f"{ref}:{status}",
            kind="progressed",
            at=at,
            external_ref=ref,
            note="城管部门处置中",
            external_status=status,
            handled_by=item.get("czr"),
        )
    if status == CLOSED:
        return DeptUpdate(
            update_id=f"{ref}:{status}",
            kind="completed",
            at=at,
            external_ref=ref,
            result=item.get("czjg") or "已结案",
            external_status=status,
            handled_by=item.get("czr"),
        )
    return None
