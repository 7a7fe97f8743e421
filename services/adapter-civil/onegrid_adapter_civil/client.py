"""The 民政 system's client. The only place the applicant's ID number is opened: it goes
from the sealed task straight into the request body and nowhere else (no log, no error
message, no reply, no table)."""

from __future__ import annotations

from collections.abc import Sequence

from onegrid_adapter_civil.domain.translate import (
    SERVICE_TYPE_BY_CATEGORY,
    application_request,
    status_update,
)
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
from onegrid_common.adapters.sealed import open_sealed
from onegrid_common.pii import PiiCipher, PiiDecryptError
from onegrid_contracts.cases import RefusalReason
from onegrid_contracts.tasks import DeptTaskAssigned, DeptTaskCancelled, DeptTaskFollowUp

# 民政 codes that are the department's decision, not a malformed call.
_REFUSALS = {"E102", "E201"}


class CivilClient:
    supports_polling = True

    def __init__(self, base_url: str, cipher: PiiCipher, *, timeout_s: float = 10.0) -> None:
        self.http = DepartmentHttp(base_url, timeout_s=timeout_s)
        self._cipher = cipher

    async def deliver(self, task: DeptTaskAssigned, ctx: CallContext) -> DeliveryOutcome:
        service_type = SERVICE_TYPE_BY_CATEGORY.get(task.category_code)
        if service_type is None:
            return Refused(
                RefusalReason.NOT_OUR_MATTER, f"{task.category_name} 不是民政服务申请事项"
            )
        if task.applicant is None:
            return Refused(RefusalReason.INSUFFICIENT_INFO, "缺少申请人身份信息")
        applicant = task.applicant
        try:
            name = open_sealed(self._cipher, applicant.name, case_id=task.case_id, field="name")
            id_number = open_sealed(
                self._cipher, applicant.id_number, case_id=task.case_id, field="id_number"
            )
            phone = (
                open_sealed(self._cipher, applicant.phone, case_id=task.case_id, field="phone")
                if applicant.phone is not None
                else None
            )
        except PiiDecryptError as exc:
            # Say which check failed, never the value.
            raise DepartmentRejectedError(f"cannot open the sealed applicant: {exc}") from None
        body = application_request(
            task, service_type=service_type, name=name, id_number=id_number, phone=phone
        )
        del name, id_number, phone
        response = await self.http.request("POST", "/mz/api/applications", ctx, json=body)
        del body
        answer = response.json()
        if answer.get("code") == "0000" and answer.get("data"):
            return Accepted(external_ref=str(answer["data"]["sqbh"]), note="民政部门已受理申请")
        if answer.get("code") in _REFUSALS:
            return Refused(RefusalReason.INSUFFICIENT_INFO, str(answer.get("msg")))
        raise DepartmentRejectedError(f"民政 answered code {answer.get('code')}")

    async def follow_up(
        self, message: DeptTaskFollowUp, external_ref: str, ctx: CallContext
    ) -> None:
        await self.http.request(
            "POST", f"/mz/api/applications/{external_ref}/remarks", ctx, json={"nr": message.text}
        )

    async def cancel(self, message: DeptTaskCancelled, external_ref: str, ctx: CallContext) -> None:
        await self.http.request(
            "POST",
            f"/mz/api/applications/{external_ref}/withdraw",
            ctx,
            json={"nr": message.reason},
        )

    async def poll(self, open_tasks: Sequence[OpenTask], ctx: CallContext) -> Sequence[DeptUpdate]:
        updates: list[DeptUpdate] = []
        for start in range(0, len(open_tasks), 200):
            refs = [t.external_ref for t in open_tasks[start : start + 200]]
            response = await self.http.request(
                "POST", "/mz/api/applications/status-batch", ctx, json={"sqbh": refs}
            )
            for item in response.json().get("data") or []:
                update = status_update(item)
                if update is not None:
                    updates.append(update)
        return updates

    async def aclose(self) -> None:
        await self.http.aclose()
