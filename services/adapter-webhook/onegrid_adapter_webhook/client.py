"""A webhook department: signed JSON events out, signed callbacks in (see api/webhooks.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from onegrid_adapter_webhook.config import UnitConfig, map_fields
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
from onegrid_common.signing import SIGNATURE_HEADER, sign_now
from onegrid_contracts.cases import RefusalReason
from onegrid_contracts.tasks import DeptTaskAssigned, DeptTaskCancelled, DeptTaskFollowUp


class WebhookClient:
    supports_polling = False

    def __init__(self, unit_code: str, config: UnitConfig) -> None:
        self.unit_code = unit_code
        self.config = config
        # The endpoint is a whole URL: its origin is the client's base, the rest the path.
        url = urlsplit(config.endpoint)
        self.path = urlunsplit(("", "", url.path or "/", url.query, ""))
        self.http = DepartmentHttp(f"{url.scheme}://{url.netloc}", timeout_s=config.timeout_s)

    async def _post(self, body: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        raw = json.dumps(body, ensure_ascii=False).encode()
        signature = sign_now(self.config.secret.get_secret_value(), raw)
        response = await self.http.request(
            "POST",
            self.path,
            ctx,
            content=raw,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        )
        answer = response.json() if response.content else {}
        if not isinstance(answer, dict):
            raise DepartmentRejectedError("the department answered with a non-object body")
        return answer

    async def deliver(self, task: DeptTaskAssigned, ctx: CallContext) -> DeliveryOutcome:
        body = {
            **map_fields(self.config.fields, task),
            "event": "task.assigned",
            "callback_url": self.config.callback_url(self.unit_code),
        }
        answer = await self._post(body, ctx)
        fields = self.config.response
        status = str(answer.get(fields.status))
        outcome = self.config.status_mapping.get(status)
        if outcome == "refused":
            message = str(answer.get(fields.message) or f"department status {status}")
            return Refused(RefusalReason.NOT_OUR_MATTER, message)
        ref = answer.get(fields.ref)
        if outcome == "accepted" and ref:
            return Accepted(external_ref=str(ref))
        raise DepartmentRejectedError(f"unexpected acceptance status {status!r} or no reference")

    async def follow_up(
        self, message: DeptTaskFollowUp, external_ref: str, ctx: CallContext
    ) -> None:
        body = {
            "event": "task.followup",
            self.config.response.ref: external_ref,
            "kind": message.kind.value,
            "text": message.text,
        }
        await self._post(body, ctx)

    async def cancel(self, message: DeptTaskCancelled, external_ref: str, ctx: CallContext) -> None:
        body = {
            "event": "task.cancelled",
            self.config.response.ref: external_ref,
            "reason": message.reason,
        }
        await self._post(body, ctx)

    async def poll(self, open_tasks: Sequence[OpenTask], ctx: CallContext) -> Sequence[DeptUpdate]:
        return ()

    async def aclose(self) -> None:
        await self.http.aclose()
