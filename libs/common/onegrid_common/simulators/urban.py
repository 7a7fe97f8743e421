"""数字城管 (digital urban management) simulator: its own REST JSON API.

Field names follow the system's own pinyin abbreviations: 外部编号 wbbh (the sender's
idempotency key), 大类编码 dlbm / 小类编码 xlbm (the two-level event code of the digital
urban management standard), 问题描述 wtms, 地址 dz, 坐标 zbx/zby, 网格编码 wgbm, 紧急程度
jjcd (1 紧急, 2 较急, 3 一般), 上报时间 sbsj, 附件 fj. Acceptance returns the case number
案卷编号 ajbh. Status is pulled in batches (GET /api/v2/cases/status?ajbh=a,b): 已受理 →
处置中 → 已结案 after configurable seconds, or 已撤销.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Header, HTTPException, Query
from pydantic import BaseModel, Field

from onegrid_common.simulators.base import SimBehaviour, SimControl, create_sim_app

# Event classes (事件类) of the digital urban management standard (大类 → 小类).
EVENT_CODES: dict[str, dict[str, str]] = {
    "01": {
        "01": "私搭乱建",
        "02": "暴露垃圾",
        "03": "积存垃圾渣土",
        "04": "道路不洁",
        "05": "水域不洁",
        "06": "绿地脏乱",
        "07": "废弃家具设备",
        "08": "废弃车辆",
    },  # 市容环境
    "02": {"01": "非法小广告", "02": "违章张贴悬挂广告", "03": "占道广告牌", "04": "街头散发广告"},
    "03": {
        "01": "施工扰民",
        "02": "施工占道",
        "03": "道路遗撒",
        "04": "施工废弃料",
        "05": "无证掘路",
    },
    "04": {
        "01": "路面塌陷",
        "02": "自来水管破裂",
        "03": "燃气管道破裂",
        "04": "下水道堵塞或破损",
        "05": "道路积水",
        "06": "道路结冰",
    },  # 突发事件
    "05": {
        "01": "无照经营游商",
        "02": "流浪乞讨",
        "03": "占道废品收购",
        "04": "店外经营",
        "05": "机动车乱停放",
        "06": "非机动车乱停放",
        "07": "露天烧烤",
    },  # 街面秩序
}
CLASS_NAMES = {
    "01": "市容环境",
    "02": "宣传广告",
    "03": "施工管理",
    "04": "突发事件",
    "05": "街面秩序",
}


class UrbanCaseIn(BaseModel):
    wbbh: str = Field(min_length=1, max_length=64)
    dlbm: str = Field(pattern=r"^\d{2}$")
    xlbm: str = Field(pattern=r"^\d{2}$")
    wtms: str = Field(min_length=1, max_length=4000)
    dz: str | None = None
    zbx: float | None = None
    zby: float | None = None
    wgbm: str | None = None
    jjcd: int = Field(ge=1, le=3)
    sbsj: str
    fj: list[str] = Field(default_factory=list)


class Supplement(BaseModel):
    bclx: str
    bcnr: str


class Revoke(BaseModel):
    cxyy: str


class UrbanSim:
    def __init__(
        self,
        behaviour: SimBehaviour | None = None,
        *,
        progress_after_s: float = 2.0,
        complete_after_s: float = 5.0,
        refuse_classes: frozenset[str] = frozenset(),
    ) -> None:
        self.control = SimControl("urban", behaviour)
        self.progress_after_s = progress_after_s
        self.complete_after_s = complete_after_s
        self.refuse_classes = refuse_classes
        self.cases: dict[str, dict[str, Any]] = {}
        self.by_wbbh: dict[str, str] = {}
        self.received: list[dict[str, Any]] = []  # every new case, follow-up, revocation
        self._seq = itertools.count(1)

    def status(self, case: dict[str, Any]) -> tuple[str, float]:
        if case["revoked_at"] is not None:
            return "已撤销", case["revoked_at"]
        age = time.time() - case["accepted_at"]
        if age >= self.complete_after_s:
            return "已结案", case["accepted_at"] + self.complete_after_s
        if age >= self.progress_after_s:
            return "处置中", case["accepted_at"] + self.progress_after_s
        return "已受理", case["accepted_at"]

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/api/v2")

        @router.post("/cases")
        async def create_case(body: UrbanCaseIn) -> dict[str, Any]:
            if body.wbbh in self.by_wbbh:  # the sender retried: same answer, no new case
                return {"code": 0, "msg": "重复提交", "data": {"ajbh": self.by_wbbh[body.wbbh]}}
            if body.xlbm not in EVENT_CODES.get(body.dlbm, {}):
                return {
                    "code": 4002,
                    "msg": f"事件编码 {body.dlbm}{body.xlbm} 不存在",
                    "data": None,
                }
            if body.dlbm in self.refuse_classes:
                return {"code": 4001, "msg": "该类事件不属于本系统受理范围", "data": None}
            ajbh = f"CG{datetime.now(UTC):%Y%m%d}{next(self._seq):05d}"
            self.by_wbbh[body.wbbh] = ajbh
            self.cases[ajbh] = {
                **body.model_dump(),
                "ajbh": ajbh,
                "accepted_at": time.time(),
                "revoked_at": None,
                "supplements": [],
            }
            self.received.append(
                {
                    "type": "case",
                    "ajbh": ajbh,
                    "wbbh": body.wbbh,
                    "dlbm": body.dlbm,
                    "xlbm": body.xlbm,
                }
            )
            return {"code": 0, "msg": "受理成功", "data": {"ajbh": ajbh, "zt": "已受理"}}

        @router.get("/cases/status")
        async def case_status(ajbh: str = Query(min_length=1)) -> dict[str, Any]:
            data = []
            for ref in ajbh.split(","):
                case = self.cases.get(ref)
                if case is None:
                    continue
                zt, since = self.status(case)
                data.append(
                    {
                        "ajbh": ref,
                        "zt": zt,
                        "gxsj": datetime.fromtimestamp(since, UTC).isoformat(),
                        "czjg": "已按要求处置完毕，现场已恢复" if zt == "已结案" else None,
                        "czr": "环卫所 王*",
                    }
                )
            return {"code": 0, "data": data}

        @router.post("/cases/{ajbh}/supplements")
        async def supplement(
            ajbh: str, body: Supplement, idempotency_key: str = Header()
        ) -> dict[str, Any]:
            case = self.cases.get(ajbh)
            if case is None:
                raise HTTPException(404, "案卷不存在")
            if idempotency_key not in case["supplements"]:
                case["supplements"].append(idempotency_key)
                self.received.append({"type": "supplement", "ajbh": ajbh, "key": idempotency_key})
            return {"code": 0, "msg": "补充成功"}

        @router.post("/cases/{ajbh}/revoke")
        async def revoke(ajbh: str, body: Revoke) -> dict[str, Any]:
            case = self.cases.get(ajbh)
            if case is None:
                raise HTTPException(404, "案卷不存在")
            if case["revoked_at"] is None:
                case["revoked_at"] = time.time()
                self.received.append({"type": "revoke", "ajbh": ajbh, "wbbh": case["wbbh"]})
            return {"code": 0, "msg": "已撤销"}

        return router

    def app(self) -> FastAPI:
        return create_sim_app(self.control, [self.router()], lambda: list(self.received))
