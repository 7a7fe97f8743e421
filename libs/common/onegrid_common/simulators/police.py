"""接处警 (police dispatch) simulator: incidents arrive by webhook, status goes back by
HMAC-signed callbacks to the URL each incident names.

Its own language: 警情类别 alarmType (10 刑事, 20 治安, 30 交通, 40 纠纷, 50 求助; anything
else is not a police matter and is refused), 警情等级 alarmLevel (一级/二级/三级), 警情编号
jqbh. After acceptance it calls back 已派警 → 已到场 → 已处结 at configurable delays,
retrying a callback until the receiver answers 2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

from onegrid_common.http_client import UNREACHABLE, LazySession
from onegrid_common.signing import SIGNATURE_HEADER, sign_now
from onegrid_common.simulators.base import SimBehaviour, SimControl, create_sim_app

log = logging.getLogger("onegrid.simulators.police")

POLICE_ALARM_TYPES = {
    "10": "刑事案件",
    "20": "治安案件",
    "30": "交通事故",
    "40": "纠纷",
    "50": "群众求助",
}
ALARM_LEVELS = ("一级", "二级", "三级")
STATUSES = (("01", "已派警"), ("02", "已到场"), ("03", "已处结"))


class Incident(BaseModel):
    sourceRef: str = Field(min_length=1, max_length=64)  # noqa: N815 - the system's own names
    alarmType: str = Field(pattern=r"^\d{2}$")  # noqa: N815
    alarmLevel: str  # noqa: N815
    content: str = Field(min_length=1, max_length=4000)
    address: str | None = None
    longitude: float | None = None
    latitude: float | None = None
    reportTime: str  # noqa: N815
    callbackUrl: str = Field(pattern=r"^https?://")  # noqa: N815


class Note(BaseModel):
    content: str


class PoliceSim:
    def __init__(
        self,
        behaviour: SimBehaviour | None = None,
        *,
        secret: str = "onegrid-dev-callback-secret",
        status_delays_s: tuple[float, float, float] = (0.5, 1.0, 2.0),
        callback_retry_s: float = 0.5,
    ) -> None:
        self.control = SimControl("police", behaviour)
        self.secret = secret
        self.status_delays_s = status_delays_s
        self.callback_retry_s = callback_retry_s
        self.incidents: dict[str, dict[str, Any]] = {}
        self.by_source: dict[str, str] = {}
        self.received: list[dict[str, Any]] = []
        # The latest callback attempts and their answers (bounded: a bench sends thousands).
        self.callbacks: deque[dict[str, Any]] = deque(maxlen=1000)
        self._seq = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        # One session for all callbacks: a client per incident cost more CPU than the sim.
        self._http = LazySession(5.0)

    async def _call_back(self, jqbh: str) -> None:
        incident = self.incidents[jqbh]
        accepted = incident["accepted_at"]
        client = self._http.get()
        for (code, name), delay in zip(STATUSES, self.status_delays_s, strict=True):
            await asyncio.sleep(max(0.0, accepted + delay - time.time()))
            if incident["withdrawn"]:
                return
            body = json.dumps(
                {
                    "jqbh": jqbh,
                    "sourceRef": incident["sourceRef"],
                    "eventId": f"{jqbh}-{code}",
                    "statusCode": code,
                    "status": name,
                    "statusTime": datetime.now(UTC).isoformat(),
                    "officer": "民警 李*",
                    "feedback": "现场已处置，当事人已教育疏导" if code == "03" else None,
                },
                ensure_ascii=False,
            ).encode()
            while True:
                answer: int | str
                try:
                    async with client.post(
                        incident["callbackUrl"],
                        data=body,
                        headers={
                            "Content-Type": "application/json",
                            SIGNATURE_HEADER: sign_now(self.secret, body),
                        },
                    ) as response:
                        answer = response.status
                except UNREACHABLE as exc:
                    answer = type(exc).__name__
                self.callbacks.append({"jqbh": jqbh, "statusCode": code, "answer": answer})
                if isinstance(answer, int) and answer < 300:
                    break
                await asyncio.sleep(self.callback_retry_s)

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/jcj/v1")

        @router.post("/incidents")
        async def receive(body: Incident) -> dict[str, Any]:
            if body.sourceRef in self.by_source:
                return {"result": "OK", "jqbh": self.by_source[body.sourceRef]}
            if body.alarmLevel not in ALARM_LEVELS:
                raise HTTPException(400, f"未知警情等级 {body.alarmLevel}")
            if body.alarmType not in POLICE_ALARM_TYPES:
                return {"result": "REJECTED", "reason": "非警务事项，请转相关职能部门处理"}
            jqbh = f"J420500{datetime.now(UTC):%Y%m%d}{next(self._seq):06d}"
            self.by_source[body.sourceRef] = jqbh
            self.incidents[jqbh] = {
                **body.model_dump(),
                "jqbh": jqbh,
                "accepted_at": time.time(),
                "withdrawn": False,
                "notes": [],
            }
            self.received.append({"type": "incident", "jqbh": jqbh, "sourceRef": body.sourceRef})
            task = asyncio.create_task(self._call_back(jqbh))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return {"result": "OK", "jqbh": jqbh}

        @router.post("/incidents/{jqbh}/notes")
        async def note(jqbh: str, body: Note, idempotency_key: str = Header()) -> dict[str, str]:
            incident = self.incidents.get(jqbh)
            if incident is None:
                raise HTTPException(404, "警情不存在")
            if idempotency_key not in incident["notes"]:
                incident["notes"].append(idempotency_key)
                self.received.append({"type": "note", "jqbh": jqbh, "key": idempotency_key})
            return {"result": "OK"}

        @router.post("/incidents/{jqbh}/withdraw")
        async def withdraw(jqbh: str, body: Note) -> dict[str, str]:
            incident = self.incidents.get(jqbh)
            if incident is None:
                raise HTTPException(404, "警情不存在")
            if not incident["withdrawn"]:
                incident["withdrawn"] = True
                self.received.append({"type": "withdraw", "jqbh": jqbh})
            return {"result": "OK"}

        return router

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._http.close()

    def app(self) -> FastAPI:
        app = create_sim_app(self.control, [self.router()], lambda: list(self.received))
        app.router.on_shutdown.append(self.aclose)
        return app
