"""Test support of notification: simulators, an SMTP server and a webhook receiver as
real servers on free ports, a shiftable clock, sealed reporter phones, and the Stack
a test module works with (its fixture is in tests/conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI, Request

from onegrid_common.localstack import free_port
from onegrid_common.pii import PiiCipher
from onegrid_common.producer import OutgoingRecord, Producer
from onegrid_common.service import Runtime
from onegrid_common.settings import Settings
from onegrid_common.signing import SIGNATURE_HEADER, verify
from onegrid_contracts.base import Payload
from onegrid_contracts.envelope import Envelope, build_headers, encode_payload, new_envelope
from onegrid_contracts.primitives import EncryptedValue as SealedValue
from onegrid_contracts.primitives import ReporterRef
from onegrid_notification.config import NotificationSettings
from onegrid_notification.directory import StaticDirectory
from onegrid_notification.sender import phone_aad
from onegrid_notification.simulators import mail, push, sms

CITY = "Asia/Shanghai"
T = TypeVar("T")


class ShiftedClock:
    """Real time moved by an offset, so "now" can be put in the day or the night while
    backoffs and leases still pass in real seconds."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def set_local(self, hour: int, minute: int = 0, days: int = 0) -> None:
        from zoneinfo import ZoneInfo

        real = datetime.now(UTC)
        local = real.astimezone(ZoneInfo(CITY))
        target = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        self.offset = target + timedelta(days=days) - real


class Server:
    """A FastAPI app served by uvicorn on a free port, in this event loop."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                timeout_graceful_shutdown=1,
            )
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Server:
        self.task = asyncio.create_task(self.server.serve())
        # uvicorn offers no event for "listening"
        while not self.server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


@dataclass
class WebhookReceiver:
    secret: str
    received: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> dict[str, str]:
            body = await request.body()
            verify(self.secret, request.headers.get(SIGNATURE_HEADER), body)  # raises → 500
            self.received.append(
                {"key": request.headers["Idempotency-Key"], **(await request.json())}
            )
            return {"status": "ok"}

        return app


def sealed_phone(cipher: PiiCipher, phone: str, reporter_id: str) -> SealedValue:
    """A phone sealed as intake seals it for notification."""
    value = cipher.encrypt(phone, associated_data=phone_aad(reporter_id))
    return SealedValue(
        key_id=value.key_id,
        nonce=base64.b64encode(value.nonce).decode(),
        ciphertext=base64.b64encode(value.ciphertext).decode(),
    )


def reporter(cipher: PiiCipher, phone: str) -> ReporterRef:
    rid = f"rp-{uuid.uuid4().hex[:8]}"
    return ReporterRef(
        reporter_id=rid,
        masked_name="张*",
        masked_phone=phone[:3] + "****" + phone[-4:],
        phone_encrypted=sealed_phone(cipher, phone, rid),
    )


DIRECTORY = StaticDirectory(
    # police registers no webhook (see the stack's preferences): it is told by push or SMS.
    units={"urban": ("宜昌市城市管理执法局", "S0000901"), "police": ("宜昌市公安局", "S0000902")},
    grids={"420502003001001": "学院街社区第1网格"},
    workers={"420502003001001": ["S0000123"]},
    phones={"S0000901": "13907170901", "S0000902": "13907170902", "S0000123": "13907170123"},
)


@dataclass
class Stack:
    settings: Settings
    config: NotificationSettings
    client: httpx.AsyncClient
    rt: Runtime
    clock: ShiftedClock
    sms: sms.SmsGatewaySim
    push: push.PushGatewaySim
    mail: mail.MailStore
    webhook: WebhookReceiver
    producer: Producer
    cipher: PiiCipher
    sms_url: str
    headers: dict[str, str]

    async def publish(self, topic: str, key: str, payload: Payload) -> Envelope:
        env = new_envelope(payload, source="test", subject=key)
        await self.send(topic, key, payload, env)
        return env

    async def send(self, topic: str, key: str, payload: Payload, env: Envelope) -> None:
        await self.producer.send(
            OutgoingRecord(
                topic=topic, key=key, value=encode_payload(payload), headers=build_headers(env)
            )
        )

    async def notifications(self, **query: str) -> list[dict[str, Any]]:
        resp = await self.client.get("/v1/notifications", params=query, headers=self.headers)
        assert resp.status_code == 200, resp.text
        items: list[dict[str, Any]] = resp.json()["items"]
        return items
