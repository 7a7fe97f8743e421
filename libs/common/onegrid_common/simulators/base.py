"""What every department simulator shares: latency, random errors, outage windows, an
admin API to take it down and up, and its own records of what it received.

Simulators behave like department systems for development and tests; they are not part
of a production deployment and no adapter imports them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field


class SimBehaviour(BaseModel):
    """How the department system misbehaves; changeable at runtime (PUT /_sim/behaviour)."""

    latency_ms: tuple[int, int] = Field(default=(0, 0), description="Uniform min..max delay.")
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Share of HTTP 500s.")
    outages: list[tuple[float, float]] = Field(
        default_factory=list, description="Down between these seconds after start."
    )
    seed: int | None = None


class SimControl:
    """The gate every department endpoint passes: down → 503, error rate → 500, latency."""

    def __init__(self, name: str, behaviour: SimBehaviour | None = None) -> None:
        self.name = name
        self.behaviour = behaviour or SimBehaviour()
        self.rng = random.Random(self.behaviour.seed)
        self.started = time.monotonic()
        self.down = False
        self.stats: dict[str, int] = {"requests": 0, "unavailable": 0, "errors": 0}

    def is_down(self) -> bool:
        if self.down:
            return True
        elapsed = time.monotonic() - self.started
        return any(start <= elapsed < end for start, end in self.behaviour.outages)

    async def gate(self) -> None:
        self.stats["requests"] += 1
        low, high = self.behaviour.latency_ms
        if high > 0:
            await asyncio.sleep(self.rng.uniform(low, high) / 1000)
        if self.is_down():
            self.stats["unavailable"] += 1
            raise HTTPException(503, f"{self.name} is down")
        if self.behaviour.error_rate and self.rng.random() < self.behaviour.error_rate:
            self.stats["errors"] += 1
            raise HTTPException(500, f"{self.name}: internal error (simulated)")


def admin_router(control: SimControl, records: Callable[[], list[dict[str, Any]]]) -> APIRouter:
    router = APIRouter(prefix="/_sim", tags=["simulator"])

    @router.post("/down")
    async def go_down() -> dict[str, bool]:
        control.down = True
        return {"down": True}

    @router.post("/up")
    async def go_up() -> dict[str, bool]:
        control.down = False
        return {"down": False}

    @router.put("/behaviour")
    async def set_behaviour(behaviour: SimBehaviour) -> SimBehaviour:
        control.behaviour = behaviour
        control.started = time.monotonic()
        return behaviour

    @router.get("/records")
    async def get_records() -> list[dict[str, Any]]:
        return records()

    @router.get("/stats")
    async def get_stats() -> dict[str, Any]:
        return {**control.stats, "down": control.is_down()}

    return router


def create_sim_app(
    control: SimControl, routers: list[APIRouter], records: Callable[[], list[dict[str, Any]]]
) -> FastAPI:
    """A FastAPI app whose department routes pass `control.gate`, plus /_sim and /healthz."""
    app = FastAPI(title=f"{control.name} simulator", version="1")
    for router in routers:
        app.include_router(router, dependencies=[Depends(control.gate)])
    app.include_router(admin_router(control, records))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.state.control = control
    return app


def serve(app: FastAPI, *, host: str = "127.0.0.1", port: int) -> None:
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
