"""The 接处警 system's client: incidents by webhook; status comes back by callback."""

from __future__ import annotations

from collections.abc import Sequence

from onegrid_adapter_police.domain.translate import incident_request
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


class PoliceClient:
    supports_polling = False

    def __init__(self, base_url: str, callback_url: str, *, timeout_s: float = 10.0) -> None:
        self.http = DepartmentHttp(base_url, timeout_s=timeout_s)
        self.callback_url = callback_url

    async def deliver(self, task: DeptTaskAssigned, ctx: CallContext) -> DeliveryOutcome:
        response = await self.http.request(
            "POST", "/jcj/v1/incidents", ctx, json=incident_request(task, self.callback_url)
        )
        body = response.json()
        if body.get("result") == "OK":
            return Accepted(external_ref=str(body["jqbh"]), note="接处警系统已接警")
        if body.get("result") == "REJECTED":
            return Refused(RefusalReason.NOT_OUR_MATTER, str(body.get("reason") or "非警务事项"))
        raise DepartmentRejectedError(f"接处警 answered result {body.get('result')!r}")

    async def follow_up(
        self, message: DeptTaskFollowUp, external_ref: str, ctx: CallContext
    ) -> None:
        await self.http.request(
            "POST", f"/jcj/v1/incidents/{external_ref}/notes", ctx, json={"content": message.text}
        )

    async def cancel(self, message: DeptTaskCancelled, external_ref: str, ctx: CallContext) -> None:
        await self.http.request(
            "POST",
            f"/jcj/v1/incidents/{external_ref}/withdraw",
            ctx,
            json={"content": message.reason},
        )

    async def poll(self, open_tasks: Sequence[OpenTask], ctx: CallContext) -> Sequence[DeptUpdate]:
        return ()

    async def aclose(self) -> None:
        await self.http.aclose()
