"""Durable deadline timers: `case_.next_timer_at` in PostgreSQL, claimed with
FOR UPDATE SKIP LOCKED so that with several replicas each due case fires once."""

from __future__ import annotations

import asyncio
import logging

from onegrid_common.service import Runtime
from onegrid_dispatch.workflow import Workflow

log = logging.getLogger(__name__)

TIMER_INTERVAL_S = 1.0
TIMER_BATCH = 100


def workflow_of(rt: Runtime) -> Workflow:
    workflow = rt.state["workflow"]
    assert isinstance(workflow, Workflow)
    return workflow


async def fire_due(rt: Runtime, *, limit: int = TIMER_BATCH) -> int:
    """Fire what is due now in one transaction; the number of cases looked at."""
    workflow = workflow_of(rt)
    now = workflow.clock.now()
    async with rt.db.acquire() as conn, conn.transaction():
        ids = await conn.fetch(
            "SELECT case_id FROM case_ WHERE next_timer_at <= $1"
            " ORDER BY next_timer_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            now,
            limit,
        )
        for row in ids:
            try:
                async with conn.transaction():  # one bad case must not hold back the rest
                    await workflow.on_timer(conn, row["case_id"])
            except Exception:
                log.exception("timer of case %s failed", row["case_id"])
    return len(ids)


async def run(rt: Runtime) -> None:
    """The background loop: drain what is due, then wait a tick."""
    interval = float(rt.state.get("timer_interval_s", TIMER_INTERVAL_S))
    while True:
        try:
            while await fire_due(rt) >= TIMER_BATCH:
                pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("deadline timers failed; retrying")
        await asyncio.sleep(interval)
