"""`onegrid scores rebuild`: recompute every score from the stored events and check-ins.

Spans and each case's stored facts are re-derived from the event table, every known
period (or the one asked for) is recomputed with the same `Scorer.compute` the live loop
uses (a frozen period reads only the events it was frozen with), changed rows are written
and published, and the Redis rankings are rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis

from onegrid_common import db
from onegrid_common.settings import Settings
from onegrid_contracts.scores import SubjectKind
from onegrid_scoring.domain.facts import FACTS_VERSION, CaseFacts, facts_to_json
from onegrid_scoring.domain.periods import PeriodError, parse_period, periods_touching
from onegrid_scoring.scorer import (
    CHUNK,
    Outcome,
    Scorer,
    event_times,
    refresh_ranking,
    stored_event,
)

SCHEMA = db.schema_for("scoring")


async def reindex_spans(conn: asyncpg.Connection) -> int:
    """Re-derive every case's span and stored facts from its events; the number of cases.

    Streams the events case by case, so memory holds one case at a time."""
    await conn.execute("DELETE FROM case_span")
    rows: list[tuple[UUID, datetime, datetime, dict[str, Any], int, int]] = []
    cases = 0

    async def write() -> None:
        await conn.executemany(
            """INSERT INTO case_span (case_id, first_at, last_at, facts, facts_seq,
                                      facts_version)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            rows,
        )
        rows.clear()

    case_id: UUID | None = None
    facts = CaseFacts(UUID(int=0))
    first = last = datetime.min.replace(tzinfo=UTC)
    seq = 0
    async for record in conn.cursor(
        "SELECT seq, case_id, type, payload FROM event ORDER BY case_id, seq", prefetch=CHUNK
    ):
        event = stored_event(record)
        times = event_times(event)
        if record["case_id"] != case_id:
            if case_id is not None:
                rows.append((case_id, first, last, facts_to_json(facts), seq, FACTS_VERSION))
                if len(rows) >= CHUNK:
                    await write()
            case_id, facts, cases = record["case_id"], CaseFacts(record["case_id"]), cases + 1
            first, last = min(times), max(times)
        else:
            first, last = min(first, *times), max(last, *times)
        facts.apply(event)
        seq = record["seq"]
    if case_id is not None:
        rows.append((case_id, first, last, facts_to_json(facts), seq, FACTS_VERSION))
    await write()
    return cases


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
