"""`onegrid scores rebuild`: recompute every score from the stored events and check-ins.

Spans are re-derived from the event table, every known period (or the one asked for) is
recomputed with the same `Scorer.compute` the live loop uses (a frozen period reads only
the events it was frozen with), changed rows are written and published, and the Redis
rankings are rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import redis.asyncio as aioredis

from onegrid_common import db
from onegrid_common.settings import Settings
from onegrid_contracts.cases import CaseEvent
from onegrid_contracts.envelope import payload_class
from onegrid_contracts.scores import SubjectKind
from onegrid_scoring.domain.periods import PeriodError, parse_period, periods_touching
from onegrid_scoring.scorer import Outcome, Scorer, event_times, refresh_ranking

SCHEMA = db.schema_for("scoring")


async def reindex_spans(conn: asyncpg.Connection) -> int:
    """Re-derive every case's span from its events; the number of cases."""
    spans: dict[object, tuple[datetime, datetime]] = {}
    async for record in conn.cursor("SELECT case_id, type, payload FROM event ORDER BY seq"):
        event = payload_class(record["type"]).model_validate(record["payload"])
        assert isinstance(event, CaseEvent)
        times = event_times(event)
        first, last = min(times), max(times)
        if record["case_id"] in spans:
            old_first, old_last = spans[record["case_id"]]
            first, last = min(first, old_first), max(last, old_last)
        spans[record["case_id"]] = (first, last)
    await conn.execute("DELETE FROM case_span")
    await conn.executemany(
        "INSERT INTO case_span (case_id, first_at, last_at) VALUES ($1, $2, $3)",
        [(case_id, first, last) for case_id, (first, last) in spans.items()],
    )
    return len(spans)


async def rebuild_with(
    pool: asyncpg.Pool,
    redis: aioredis.Redis | None,
    scorer: Scorer,
    period: str | None = None,
) -> list[Outcome]:
    """Recompute the periods (all known ones, or those labelled `period`)."""
    if period is not None:
        parse_period(period, scorer.tz)  # PeriodError for a bad label
    async with pool.acquire() as conn, conn.transaction():
        await reindex_spans(conn)
        rows = await conn.fetch("SELECT first_at, last_at FROM case_span")
        for kind in SubjectKind:
            labels = {
                label
                for r in rows
                for label in periods_touching(kind, r["first_at"], r["last_at"], scorer.tz)
            }
            for label in labels:
                await conn.execute(
                    "INSERT INTO period_state (kind, period) VALUES ($1, $2) "
                    "ON CONFLICT DO NOTHING",
                    kind.value,
                    label,
                )
        states = await conn.fetch("SELECT kind, period FROM period_state ORDER BY kind, period")
    outcomes: list[Outcome] = []
    for state in states:
        kind, label = SubjectKind(state["kind"]), state["period"]
        if period is not None and label != period:
            continue
        async with pool.acquire() as conn, conn.transaction():
            outcome = await scorer.compute(conn, kind, label, rebuild=True)
        if outcome is not None:
            outcomes.append(outcome)
            if redis is not None:
                await refresh_ranking(pool, redis, kind, label)
    return outcomes


async def rebuild(
    settings: Settings,
    period: str | None = None,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[Outcome]:
    """Rebuild against the configured database and Redis (the CLI's entry point)."""
    from onegrid_scoring.main import make_scorer
    from onegrid_scoring.settings import ScoringSettings

    scorer = make_scorer(settings, ScoringSettings(), clock)
    if period is not None:
        parse_period(period, scorer.tz)  # a bad label fails before connecting
    pool = await db.create_pool(settings.db, SCHEMA)
    redis = aioredis.from_url(settings.redis.url, decode_responses=False)
    try:
        return await rebuild_with(pool, redis, scorer, period)
    finally:
        await redis.aclose()
        await pool.close()


__all__ = ["PeriodError", "rebuild", "rebuild_with", "reindex_spans"]
