"""A generic department behind a webhook: what the generic webhook adapter talks to.

It takes signed JSON events on POST /hooks/onegrid (task.assigned, task.followup,
task.cancelled), checks the signature, answers {"ticket": ..., "status": "received"} or
{"status": "rejected", "message": ...}, and calls back the URL the event names with
signed {"ticket", "state": working → done, "message", "event_id", "at"}.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request

from onegrid_common.http_client import UNREACHABLE, LazySession
from onegrid_common.signing import SIGNATURE_HEADER, SignatureError, sign_now, verify
from onegrid_common.simulators.base import SimBehaviour, SimControl, create_sim_app


class WebhookSim:
    def __init__(
        self,
        behaviour: SimBehaviour | None = None,
        *,
        secret: str = "onegrid-dev-webhook-secret",
        ref_field: str = "ref",
        callback_field: str = "callback_url",
        refuse_field: str = "title",
        refuse_values: frozenset[str] = frozenset(),
        state_delays_s: tuple[float, float] = (0.5, 1.0),
    ) -> None:
        self.control = SimControl("webhook", behaviour)
        self.secret = secret
        self.ref_field = ref_field
        self.callback_field = callback_field
        self.refuse_field = refuse_field
        self.refuse_values = refuse_values
        self.state_delays_s = state_delays_s
        self.tickets: dict[str, dict[str, Any]] = {}
        self.by_ref: dict[str, str] = {}
        self.received: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self._seq = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        # One session for all callbacks: a client per incident cost more CPU than the sim.
        self._http = LazySession(5.0)

    async def _call_back(self, ticket: str) -> None:
        item = self.tickets[ticket]
        client = self._http.get()
        for state, delay in zip(("working", "done"), self.state_delays_s, strict=True):
            await asyncio.sleep(max(0.0, item["at"] + delay - time.time()))
            if item["cancelled"]:
                return
            body = json.dumps(
                {
                    "ticket": ticket,
                    "state": state,
                    "event_id": f"{ticket}-{state}",
                    "message": "处理中" if state == "working" else "已处理完毕",
                    "at": datetime.now(UTC).isoformat(),
                },
                ensure_ascii=False,
            ).encode()
            for _ in range(200):
                status = 0
                with contextlib.suppress(*UNREACHABLE):
                    async with client.post(
                        item["callback"],
                        data=body,
                        headers={
                            SIGNATURE_HEADER: sign_now(self.secret, body),
                            "Content-Type": "application/json",
                        },
                    ) as response:
                        status = response.status
                if 0 < status < 300:
                    break
                await asyncio.sleep(0.3)

    def router(self) -> APIRouter:
        router = APIRouter()

        @router.post("/hooks/onegrid")
        async def hook(request: Request) -> dict[str, Any]:
            raw = await request.body()
            try:
                verify(self.secret, request.headers.get(SIGNATURE_HEADER), raw)
            except SignatureError as exc:
                self.bad_signatures += 1
                raise HTTPException(401, f"bad signature: {exc.reason}") from exc
            body = json.loads(raw)
            event = body.get("event")
            if event == "task.assigned":
                ref = str(body.get(self.ref_field))
                if ref in self.by_ref:
                    return {"ticket": self.by_ref[ref], "status": "received"}
                if str(body.get(self.refuse_field)) in self.refuse_values:
                    return {"ticket": None, "status": "rejected", "message": "不属于本单位职责"}
                ticket = f"WH-{next(self._seq):06d}"
                self.by_ref[ref] = ticket
                self.tickets[ticket] = {
                    "at": time.time(),
                    "cancelled": False,
                    "callback": body.get(self.callback_field),
                    "body": body,
                }
                self.received.append({"type": "assigned", "ticket": ticket, "ref": ref})
                if self.tickets[ticket]["callback"]:
                    task = asyncio.create_task(self._call_back(ticket))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                return {"ticket": ticket, "status": "received"}
            ticket = str(body.get("ticket"))
            if ticket not in self.tickets:
                raise HTTPException(404, "unknown ticket")
            key = request.headers.get("Idempotency-Key")
            if not any(r.get("key") == key for r in self.received):
                self.received.append({"type": event, "ticket": ticket, "key": key})
                if event == "task.cancelled":
                    self.tickets[ticket]["cancelled"] = True
            return {"ticket": ticket, "status": "ok"}

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
