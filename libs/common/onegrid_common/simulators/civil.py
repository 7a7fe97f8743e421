"""民政 (civil affairs) simulator: service applications with required documents, reviews
that take (simulated) days, results from a batch status endpoint.

Its own language: 业务类型 ywlx (DB 低保, LSJZ 临时救助, GLBT 高龄补贴, CJRBT 残疾人补贴),
申请人 sqr {xm 姓名, sfzh 身份证号, lxdh 电话}, 申请事由 sqsy, 材料 cl [{clmc 材料名称, url}],
外部业务号 wbywh (the sender's idempotency key), 申请编号 sqbh. 身份证 counts as provided
when sfzh is a valid resident ID number. Statuses: 已受理 → 审核中 (after one day) →
审批通过 / 审批不通过 (after `review_days`); 高龄补贴 needs the applicant to be 80 or older.
Its records keep the ID number masked and hashed only, so a test can match it.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

from onegrid_common.pii import is_valid_id_number, mask_id_number
from onegrid_common.simulators.base import SimBehaviour, SimControl, create_sim_app

SERVICE_TYPES = {"DB": "低保", "LSJZ": "临时救助", "GLBT": "高龄补贴", "CJRBT": "残疾人补贴"}
REQUIRED_DOCUMENTS: dict[str, tuple[str, ...]] = {
    "DB": ("身份证", "户口簿", "家庭收入证明", "家庭财产申报表"),
    "LSJZ": ("身份证", "户口簿", "困难情况说明"),
    "GLBT": ("身份证", "户口簿"),
    "CJRBT": ("身份证", "户口簿", "残疾人证"),
}


class Applicant(BaseModel):
    xm: str = Field(min_length=1, max_length=32)
    sfzh: str = Field(min_length=1, max_length=32)
    lxdh: str | None = None


class Material(BaseModel):
    clmc: str
    url: str


class Application(BaseModel):
    wbywh: str = Field(min_length=1, max_length=64)
    ywlx: str
    sqr: Applicant
    sqsy: str = Field(min_length=1, max_length=4000)
    dz: str | None = None
    cl: list[Material] = Field(default_factory=list)


class StatusQuery(BaseModel):
    sqbh: list[str] = Field(min_length=1, max_length=200)


class Remark(BaseModel):
    nr: str


def _age(id_number: str, today: date) -> int:
    born = date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


class CivilSim:
    def __init__(
        self,
        behaviour: SimBehaviour | None = None,
        *,
        review_days: int = 3,
        day_seconds: float = 86_400.0,
    ) -> None:
        self.control = SimControl("civil", behaviour)
        self.review_days = review_days
        self.day_seconds = day_seconds
        self.applications: dict[str, dict[str, Any]] = {}
        self.by_wbywh: dict[str, str] = {}
        self.received: list[dict[str, Any]] = []
        self._seq = itertools.count(1)

    def status(self, app: dict[str, Any]) -> tuple[str, str | None, float]:
        if app["withdrawn_at"] is not None:
            return "已撤回", None, app["withdrawn_at"]
        days = (time.time() - app["accepted_at"]) / self.day_seconds
        if days >= self.review_days:
            at = app["accepted_at"] + self.review_days * self.day_seconds
            if app["ywlx"] == "GLBT" and app["age"] < 80:
                return "审批不通过", f"申请人未满80周岁（{app['age']}岁），不符合高龄补贴条件", at
            return "审批通过", f"经审核符合{SERVICE_TYPES[app['ywlx']]}条件，自次月起发放", at
        if days >= 1:
            return "审核中", None, app["accepted_at"] + self.day_seconds
        return "已受理", None, app["accepted_at"]

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/mz/api")

        @router.post("/applications")
        async def apply(body: Application) -> dict[str, Any]:
            if body.wbywh in self.by_wbywh:
                return {
                    "code": "0000",
                    "msg": "重复提交",
                    "data": {"sqbh": self.by_wbywh[body.wbywh]},
                }
            if body.ywlx not in SERVICE_TYPES:
                raise HTTPException(400, f"未知业务类型 {body.ywlx}")
            if not is_valid_id_number(body.sqr.sfzh):
                return {"code": "E102", "msg": "申请人身份证号码无效", "data": None}
            provided = {m.clmc for m in body.cl} | {"身份证"}
            missing = [d for d in REQUIRED_DOCUMENTS[body.ywlx] if d not in provided]
            if missing:
                return {
                    "code": "E201",
                    "msg": f"材料不全，缺少：{'、'.join(missing)}",
                    "data": None,
                }
            sqbh = f"MZ{datetime.now(UTC):%Y%m%d}{next(self._seq):05d}"
            self.by_wbywh[body.wbywh] = sqbh
            self.applications[sqbh] = {
                "sqbh": sqbh,
                "wbywh": body.wbywh,
                "ywlx": body.ywlx,
                "age": _age(body.sqr.sfzh, date.today()),
                "accepted_at": time.time(),
                "withdrawn_at": None,
                "remarks": [],
            }
            self.received.append(
                {
                    "type": "application",
                    "sqbh": sqbh,
                    "wbywh": body.wbywh,
                    "ywlx": body.ywlx,
                    "sfzh_masked": mask_id_number(body.sqr.sfzh),
                    "sfzh_sha256": hashlib.sha256(body.sqr.sfzh.encode()).hexdigest(),
                    "materials": sorted(provided),
                }
            )
            return {"code": "0000", "msg": "受理成功", "data": {"sqbh": sqbh, "zt": "已受理"}}

        @router.post("/applications/status-batch")
        async def status_batch(body: StatusQuery) -> dict[str, Any]:
            data = []
            for sqbh in body.sqbh:
                app = self.applications.get(sqbh)
                if app is None:
                    continue
                zt, spyj, at = self.status(app)
                data.append(
                    {
                        "sqbh": sqbh,
                        "zt": zt,
                        "spyj": spyj,
                        "jbr": "民政所 陈*",
                        "gxsj": datetime.fromtimestamp(at, UTC).isoformat(),
                    }
                )
            return {"code": "0000", "data": data}

        @router.post("/applications/{sqbh}/remarks")
        async def remark(
            sqbh: str, body: Remark, idempotency_key: str = Header()
        ) -> dict[str, str]:
            app = self.applications.get(sqbh)
            if app is None:
                raise HTTPException(404, "申请不存在")
            if idempotency_key not in app["remarks"]:
                app["remarks"].append(idempotency_key)
                self.received.append({"type": "remark", "sqbh": sqbh, "key": idempotency_key})
            return {"code": "0000"}

        @router.post("/applications/{sqbh}/withdraw")
        async def withdraw(sqbh: str, body: Remark) -> dict[str, str]:
            app = self.applications.get(sqbh)
            if app is None:
                raise HTTPException(404, "申请不存在")
            if app["withdrawn_at"] is None:
                app["withdrawn_at"] = time.time()
                self.received.append({"type": "withdraw", "sqbh": sqbh})
            return {"code": "0000"}

        return router

    def app(self) -> FastAPI:
        return create_sim_app(self.control, [self.router()], lambda: list(self.received))
