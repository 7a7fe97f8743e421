"""SMS gateway simulator: a typical Chinese SMS provider API (Aliyun Dysms-like).

POST /v1/sms/send {app_key, out_id, phone_numbers, sign_name, content} with the body
HMAC-signed in `X-Sms-Signature` (onegrid_common.signing format). Answers HTTP 200 with
`{"code": "OK", "biz_id": ..., "parts": n}` or a provider error code:
- isv.INVALID_APP_KEY / isv.SIGN_NAME_ILLEGAL / isv.INVALID_PARAMETERS: configuration
- isv.MOBILE_NUMBER_ILLEGAL: not a mainland mobile number
- isv.CONTENT_TOO_LONG: more than 10 parts (70 / 67 UCS-2 characters each)
- isv.BUSINESS_LIMIT_CONTROL: too many messages to one number within a minute
- HTTP 503 while down (POST /_sim/down, /_sim/up), HTTP 500 at the configured error rate.
`out_id` is the caller's idempotency key: a repeated out_id returns the first biz_id and
sends nothing (counted in /_sim/stats `duplicates`). A message is accepted (recorded as
sent) before the configurable reply delay, as a real gateway hands it to the carrier
before its answer reaches the caller.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import defaultdict, deque
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Header, Request
from pydantic import BaseModel, Field

from onegrid_common.signing import SignatureError, verify
from onegrid_common.simulators.base import SimBehaviour, SimControl, create_sim_app
from onegrid_notification.domain.templates import sms_length

MAX_PARTS = 10
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class SmsSimSettings(BaseModel):
    app_key: str = "onegrid-dev"
    app_secret: str = "onegrid-dev-sms-secret"
    sign_names: list[str] = Field(default_factory=lambda: ["宜昌12345"])
    per_phone_per_minute: int = Field(default=10, ge=1)
    reply_delay_ms: int = Field(default=0, ge=0, description="After accepting, before answering.")


class SmsGatewaySim:
    def __init__(self, settings: SmsSimSettings | None = None) -> None:
        self.settings = settings or SmsSimSettings()
        self.control = SimControl("sms-gateway", SimBehaviour())
        self.messages: list[dict[str, Any]] = []
        self.by_out_id: dict[str, dict[str, Any]] = {}
        self.recent: dict[str, deque[float]] = defaultdict(deque)
        self.duplicates = 0
        self._ids = itertools.count(1)

    def _answer(self, code: str, message: str) -> dict[str, Any]:
        self.control.stats[code] = self.control.stats.get(code, 0) + 1
        return {"code": code, "message": message}

    async def send(self, request: Request, signature: str | None) -> dict[str, Any]:
        raw = await request.body()
        try:
            verify(self.settings.app_secret, signature, raw)
        except SignatureError as exc:
            return self._answer("isv.INVALID_APP_KEY", f"signature {exc.reason}")
        body = await request.json()
        if body.get("app_key") != self.settings.app_key:
            return self._answer("isv.INVALID_APP_KEY", "unknown app_key")
        out_id, phone, content = body.get("out_id"), body.get("phone_numbers"), body.get("content")
        if not out_id or not isinstance(content, str) or not content:
            return self._answer("isv.INVALID_PARAMETERS", "out_id and content are required")
        first = self.by_out_id.get(out_id)
        if first is not None:
            self.duplicates += 1
            return {"code": "OK", "biz_id": first["biz_id"], "parts": first["parts"]}
        if body.get("sign_name") not in self.settings.sign_names:
            return self._answer("isv.SIGN_NAME_ILLEGAL", "sign name not approved")
        if not isinstance(phone, str) or not _MOBILE.fullmatch(phone):
            return self._answer("isv.MOBILE_NUMBER_ILLEGAL", "not a mobile number")
        text = f"【{body['sign_name']}】{content}"
        parts = sms_length(text).parts
        if parts > MAX_PARTS:
            return self._answer("isv.CONTENT_TOO_LONG", f"{parts} parts")
        now = time.monotonic()
        window = self.recent[phone]
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= self.settings.per_phone_per_minute:
            return self._answer("isv.BUSINESS_LIMIT_CONTROL", "too many messages to this number")
        window.append(now)
        biz_id = f"SMS{datetime.now(UTC):%Y%m%d%H%M%S}{next(self._ids):06d}"
        record = {
            "biz_id": biz_id,
            "out_id": out_id,
            "phone": phone,
            "text": text,
            "parts": parts,
            "received_at": datetime.now(UTC).isoformat(),
        }
        self.messages.append(record)
        self.by_out_id[out_id] = record
        if self.settings.reply_delay_ms:
            await asyncio.sleep(self.settings.reply_delay_ms / 1000)
        return {"code": "OK", "biz_id": biz_id, "parts": parts}

    def app(self) -> FastAPI:
        router = APIRouter()

        @router.post("/v1/sms/send")
        async def send(
            request: Request, x_sms_signature: str | None = Header(default=None)
        ) -> dict[str, Any]:
            return await self.send(request, x_sms_signature)

        admin = APIRouter(prefix="/_sim", tags=["simulator"])

        @admin.put("/sms")
        async def configure(settings: SmsSimSettings) -> SmsSimSettings:
            self.settings = settings
            return settings

        @admin.get("/sms/stats")
        async def stats() -> dict[str, Any]:
            return {"messages": len(self.messages), "duplicates": self.duplicates}

        app = create_sim_app(self.control, [router], lambda: list(self.messages))
        app.include_router(admin)
        return app


def create_app(settings: SmsSimSettings | None = None) -> FastAPI:
    return SmsGatewaySim(settings).app()
