"""onegrid ↔ 民政: categories to 业务类型, attachments to named documents, statuses back.

The applicant's ID number never passes through here: the client opens it just before the
call (see client.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from onegrid_common.adapters import DeptUpdate
from onegrid_contracts.tasks import DeptTaskAssigned

SERVICE_TYPE_BY_CATEGORY = {
    "livelihood.minimum_allowance": "DB",  # 低保
    "livelihood.temporary_assistance": "LSJZ",  # 临时救助
    "livelihood.elderly_allowance": "GLBT",  # 高龄补贴
    "livelihood.disability_allowance": "CJRBT",  # 残疾人补贴
}

# Attachment file names as grid workers' apps name them → 民政's document names.
DOCUMENT_BY_FILE_KEYWORD = {
    "hukou": "户口簿",
    "income": "家庭收入证明",
    "property": "家庭财产申报表",
    "hardship": "困难情况说明",
    "disability": "残疾人证",
    "idcard": "身份证",
}


def document_name(url: str) -> str:
    name = url.rsplit("/", 1)[-1].lower()
    for keyword, document in DOCUMENT_BY_FILE_KEYWORD.items():
        if keyword in name:
            return document
    return "其他材料"


def application_request(
    task: DeptTaskAssigned, *, service_type: str, name: str, id_number: str, phone: str | None
) -> dict[str, Any]:
    return {
        "wbywh": str(task.task_id),
        "ywlx": service_type,
        "sqr": {"xm": name, "sfzh": id_number, "lxdh": phone},
        "sqsy": task.description,
        "dz": task.address,
        "cl": [{"clmc": document_name(a.url), "url": a.url} for a in task.attachments],
    }


def status_update(item: dict[str, Any]) -> DeptUpdate | None:
    status = str(item.get("zt"))
    ref = str(item["sqbh"])
    at = datetime.fromisoformat(str(item["gxsj"]))
    common: dict[str, Any] = {
        "update_id": f"{ref}:{status}",
        "at": at,
        "external_ref": ref,
        "external_status": status,
        "handled_by": item.get("jbr"),
    }
    if status == "审核中":
        return DeptUpdate(kind="progressed", note="民政部门审核中", **common)
    if status == "审批通过":
        return DeptUpdate(kind="completed", result=item.get("spyj") or "审批通过", **common)
    if status == "审批不通过":
        return DeptUpdate(
            kind="completed", result=item.get("spyj") or "审批不通过", fixed=False, **common
        )
    return None
