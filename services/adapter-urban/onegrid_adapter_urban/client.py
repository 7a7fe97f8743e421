"""The 数字城管 system's client: REST JSON, acceptance returns 案卷编号, status is polled."""

from __future__ import annotations

from collections.abc import Sequence

from onegrid_adapter_urban.domain.codes import case_request, event_code, status_update
from onegrid_common.adapters import (
    Accepted,
    CallContext,
    DeliveryOutcome,
    DepartmentHttp,
    DepartmentRejectedError,
    DeptUpdate,
    OpenTask,
    Refused,
)
from onegrid_contracts.cases import RefusalReason
from onegrid_contracts.tasks import DeptTaskAssigned, DeptTaskCancelled, DeptTaskFollowUp


class UrbanClient:
    supports_polling = True

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.http = DepartmentHttp(base_url, timeout_s=timeout_s)

    async def deliver(self, task: DeptTaskAssigned, ctx: CallContext) -> DeliveryOutcome:
        if event_code(task.category_code) is None:
            return Refused(
                RefusalReason.NOT_OUR_MATTER,
                f"类别 {task.category_name}（{task.category_code}）无对应数字城管事件编码",
            )
        response = await self.http.request("POST", "/api/v2/cases", ctx, json=case_request(task))
        body = response.json()
        if body.get("code") == 0 and body.get("data"):
            return Accepted(external_ref=str(body["data"]["ajbh"]), note=body.get("msg"))
        if body.get("code") == 4001:
            return Refused(RefusalReason.NOT_OUR_MATTER, str(body.get("msg") or "不属于受理范围"))
        raise DepartmentRejectedError(
            f"数字城管 answered code {body.get('code')}: {body.get('msg')}"
        )

    async def follow_up(
        self, message: DeptTaskFollowUp, external_ref: str, ctx: CallContext
    ) -> None:
        await self.http.request(
            "POST",
            f"/api/v2/cases/{external_ref}/supplements",
            ctx,
            json={"bclx": message.kind.value, "bcnr": message.text},
        )

    async def cancel(self, message: DeptTaskCancelled, external_ref: str, ctx: CallContext) -> None:
        await self.http.request(
            "POST", f"/api/v2/cases/{external_ref}/revoke", ctx, json={"cxyy": message.reason}
        )

    async def poll(self, open_tasks: Sequence[OpenTask], ctx: CallContext) -> Sequence[DeptUpdate]:
        updates: list[DeptUpdate] = []
        for start in range(0, len(open_tasks), 100):
            refs = ",".join(t.external_ref for t in open_tasks[start : start + 100])
            response = await self.http.request(
                "GET", "/api/v2/cases/status", ctx, params={"ajbh": refs}
            )
            for item in response.json().get("data") or []:
                update = status_update(item)
                if update is not None:
                    updates.append(update)
        return updates

    async def aclose(self) -> None:
        await self.http.aclose()
