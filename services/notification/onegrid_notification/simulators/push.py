"""App push gateway simulator (a vendor push API, e.g. a unified push service).

POST /v1/push {target, title, body} with `Authorization: Bearer <key>` and a required
`Idempotency-Key`: 201 `{"push_id": ...}`; a repeated key answers the first push_id and
pushes nothing. 401 bad key, 404 `target` has no registered device (targets starting
"NODEVICE"), 429 with Retry-After over `per_target_per_minute`, 503 while down.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict, deque
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Header, HTTPException, Response
from pydantic import BaseModel, Field

from onegrid_common.simulators.base import SimBehaviour, SimControl, create_sim_app


class PushMessage(BaseModel):
    target: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=100)
    body: str = Field(min_length=1, max_length=2000)


class PushSimSettings(BaseModel):
    api_key: str = "onegrid-dev-push-key"
    per_target_per_minute: int = Field(default=30, ge=1)


class PushGatewaySim:
    def __init__(self, settings: PushSimSettings | None = None) -> None:
        self.settings = settings or PushSimSettings()
        self.control = SimControl("push-gateway", SimBehaviour())
        self.pushes: list[dict[str, Any]] = []
        self.by_key: dict[str, dict[str, Any]] = {}
        self.recent: dict[str, deque[float]] = defaultdict(deque)
        self.duplicates = 0
        self._ids = itertools.count(1)

    def app(self) -> FastAPI:
        router = APIRouter()

        @router.post("/v1/push", status_code=201)
        async def push(
            message: PushMessage,
            response: Response,
            authorization: str | None = Header(default=None),
            idempotency_key: str | None = Header(default=None),
        ) -> dict[str, str]:
            if authorization != f"Bearer {self.settings.api_key}":
                raise HTTPException(401, "bad api key")
            if not idempotency_key:
                raise HTTPException(400, "Idempotency-Key header is required")
            first = self.by_key.get(idempotency_key)
            if first is not None:
                self.duplicates += 1
                response.status_code = 200
                return {"push_id": first["push_id"]}
            if message.target.startswith("NODEVICE"):
                raise HTTPException(404, "no device registered for target")
            now = time.monotonic()
            window = self.recent[message.target]
            while window and now - window[0] > 60:
                window.popleft()
            if len(window) >= self.settings.per_target_per_minute:
                raise HTTPException(429, "rate limited", headers={"Retry-After": "60"})
            window.append(now)
            record = {
                "push_id": f"P{next(self._ids):08d}",
                "idempotency_key": idempotency_key,
                **message.model_dump(),
                "received_at": datetime.now(UTC).isoformat(),
            }
            self.pushes.append(record)
            self.by_key[idempotency_key] = record
            return {"push_id": record["push_id"]}

        admin = APIRouter(prefix="/_sim", tags=["simulator"])

        @admin.get("/push/stats")
        async def stats() -> dict[str, Any]:
            return {"pushes": len(self.pushes), "duplicates": self.duplicates}

        app = create_sim_app(self.control, [router], lambda: list(self.pushes))
        app.include_router(admin)
        return app


def create_app(settings: PushSimSettings | None = None) -> FastAPI:
    return PushGatewaySim(settings).app()
