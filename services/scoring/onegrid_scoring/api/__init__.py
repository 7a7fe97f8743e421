"""HTTP API of scoring: scores per period (JSON or CSV), rankings, patrol check-ins.

A unit sees only its own unit scores and a grid worker only their own worker scores and
their grids; operators, auditors (and services) see everything.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from onegrid_common.auth import Principal, require_roles, security_settings
from onegrid_common.pagination import Page, PageParams, cursor_key, encode_cursor, page_params
from onegrid_common.problems import PROBLEM_TYPE_PREFIX, Problem
from onegrid_common.service import Runtime, RuntimeDep
from onegrid_contracts.primitives import GridCode, Location, Timestamp
from onegrid_contracts.scores import SubjectKind
from onegrid_scoring.domain.periods import PeriodError, period_for, periods_touching
from onegrid_scoring.scorer import PeriodFrozenError, Scorer, ranking

router = APIRouter(prefix="/v1", tags=["scoring"])

INVALID_PERIOD = PROBLEM_TYPE_PREFIX + "invalid-period"
FORBIDDEN = PROBLEM_TYPE_PREFIX + "forbidden"
FROZEN = PROBLEM_TYPE_PREFIX + "period-frozen"
INVALID_CHECKIN = PROBLEM_TYPE_PREFIX + "invalid-checkin"
SEE_ALL = frozenset({"operator", "auditor", "admin", "service"})
# A check-in may be sent late (no signal on the patrol), but not later than this.
CHECKIN_MAX_DELAY = timedelta(hours=24)
CHECKIN_MAX_AHEAD = timedelta(minutes=5)

Locator = Callable[[float, float], set[str] | None]


RT = RuntimeDep


def scorer_of(rt: Runtime) -> Scorer:
    scorer = rt.state["scorer"]
    assert isinstance(scorer, Scorer)
    return scorer


class ScoreOut(BaseModel):
    kind: SubjectKind
    code: str
    period: str
    measures: dict[str, Decimal | None] = Field(
        description="Formulas in docs/scoring.md; null when the denominator is zero."
    )
    composite: Decimal | None
    rank: int | None
    rank_of: int | None
    final: bool = Field(description="The period has ended and this snapshot is frozen.")
    computed_at: datetime
    late_events: int = Field(
        description="Events recorded after the period froze that concern its cases: kept, "
        "not applied to the frozen numbers."
    )


class RankingEntry(BaseModel):
    rank: int
    code: str
    composite: Decimal


class Ranking(BaseModel):
    kind: SubjectKind
    period: str
    items: list[RankingEntry]


def _period(kind: SubjectKind, period: str | None, rt: Runtime) -> str:
    scorer = scorer_of(rt)
    if period is None:
        now = scorer.clock()
        return periods_touching(kind, now, now, scorer.tz)[0]
    try:
        period_for(kind, period, scorer.tz)
    except PeriodError as exc:
        raise Problem(
            422,
            "Invalid period",
            str(exc),
            type=INVALID_PERIOD,
            errors=[{"field": "period", "where": "query", "message": str(exc)}],
        ) from exc
    return period


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _visible(kind: SubjectKind, principal: Principal) -> set[str] | None:
    """Codes the caller may see; None = all."""
    if not SEE_ALL.isdisjoint(principal.roles):
        return None
    if kind is SubjectKind.UNIT:
        return set(principal.unit_codes)
    if kind is SubjectKind.WORKER:
        return {principal.subject} if "grid_worker" in principal.roles else set()
    return set(principal.grid_codes) if "grid_worker" in principal.roles else set()


def _csv(rows: list[ScoreOut]) -> Response:
    names: list[str] = []
    for row in rows:
        names += [n for n in row.measures if n not in names]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    head = ["kind", "code", "period", "final", "composite", "rank", "rank_of", "computed_at"]
    writer.writerow([*head, *names, "late_events"])

    def cell(value: Any) -> str:
        return "" if value is None else str(value)

    for r in rows:
        writer.writerow(
            [
                r.kind.value,
                r.code,
                r.period,
                str(r.final).lower(),
                cell(r.composite),
                cell(r.rank),
                cell(r.rank_of),
                r.computed_at.isoformat(),
                *(cell(r.measures.get(n)) for n in names),
                r.late_events,
            ]
        )
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")


async def _scores(
    rt: Runtime,
    request: Request,
    kind: SubjectKind,
    principal: Principal,
    period: str | None,
    code: str | None,
    fmt: str | None,
    page: PageParams,
) -> Page[ScoreOut] | Response:
    label = _period(kind, period, rt)
    visible = _visible(kind, principal)
    if code is not None and visible is not None and code not in visible:
        raise Problem(403, "Forbidden", f"You may not see the scores of {code}.", type=FORBIDDEN)
    codes = [code] if code is not None else (sorted(visible) if visible is not None else None)
    as_csv = _wants_csv(request, fmt)
    after = None if as_csv or page.after is None else str(page.after.get("code", ""))
    limit = None if as_csv else page.limit + 1
    async with rt.db.acquire() as conn:
        records = await conn.fetch(
            """SELECT s.*, (SELECT count(*) FROM late_event l
                            WHERE l.kind = s.kind AND l.period = s.period) AS late_events
               FROM score s
               WHERE s.kind = $1 AND s.period = $2
                 AND ($3::text[] IS NULL OR s.code = ANY($3))
                 AND ($4::text IS NULL OR s.code > $4)
               ORDER BY s.code LIMIT $5""",
            kind.value,
            label,
            codes,
            after,
            limit,
        )
    rows = [
        ScoreOut(
            kind=kind,
            code=r["code"],
            period=r["period"],
            measures={k: None if v is None else Decimal(v) for k, v in r["measures"].items()},
            composite=r["composite"],
            rank=r["rank"],
            rank_of=r["rank_of"],
            final=r["final"],
            computed_at=r["computed_at"],
            late_events=r["late_events"],
        )
        for r in records
    ]
    if as_csv:
        return _csv(rows)
    return _page(rows, page, request)


def _page(rows: list[ScoreOut], page: PageParams, request: Request) -> Page[ScoreOut]:
    items = rows[: page.limit]
    more = len(rows) > page.limit
    key = cursor_key(security_settings(request))
    cursor = encode_cursor({"code": items[-1].code}, key=key) if more and items else None
    return Page[ScoreOut](items=items, next_cursor=cursor)


PeriodQuery = Annotated[
    str | None,
    Query(
        max_length=16,
        description="'2026-Q4' for units, '2026-11' for workers and grids; default: current.",
    ),
]
CodeQuery = Annotated[str | None, Query(max_length=64, description="Only this subject.")]
FormatQuery = Annotated[
    Literal["json", "csv"] | None,
    Query(alias="format", description="csv for a spreadsheet (or Accept: text/csv)."),
]
Pages = Annotated[PageParams, Depends(page_params)]


@router.get("/scores/units", response_model=Page[ScoreOut])
async def unit_scores(
    rt: RT,
    request: Request,
    principal: Annotated[
        Principal, Depends(require_roles("operator", "auditor", "service", "unit:*"))
    ],
    page: Pages,
    period: PeriodQuery = None,
    code: CodeQuery = None,
    fmt: FormatQuery = None,
) -> Page[ScoreOut] | Response:
    """Units' quarterly scores (a unit sees its own)."""
    return await _scores(rt, request, SubjectKind.UNIT, principal, period, code, fmt, page)


@router.get("/scores/workers", response_model=Page[ScoreOut])
async def worker_scores(
    rt: RT,
    request: Request,
    principal: Annotated[
        Principal, Depends(require_roles("operator", "auditor", "service", "grid_worker"))
    ],
    page: Pages,
    period: PeriodQuery = None,
    code: CodeQuery = None,
    fmt: FormatQuery = None,
) -> Page[ScoreOut] | Response:
    """Grid workers' monthly scores (a grid worker sees their own)."""
    return await _scores(rt, request, SubjectKind.WORKER, principal, period, code, fmt, page)


@router.get("/scores/grids", response_model=Page[ScoreOut])
async def grid_scores(
    rt: RT,
    request: Request,
    principal: Annotated[
        Principal, Depends(require_roles("operator", "auditor", "service", "grid_worker"))
    ],
    page: Pages,
    period: PeriodQuery = None,
    code: CodeQuery = None,
    fmt: FormatQuery = None,
) -> Page[ScoreOut] | Response:
    """Grids' monthly scores (a grid worker sees their grids)."""
    return await _scores(rt, request, SubjectKind.GRID, principal, period, code, fmt, page)


@router.get("/rankings/{kind}", response_model=Ranking)
async def rankings(
    rt: RT,
    kind: Literal["units", "workers", "grids"],
    _: Annotated[Principal, Depends(require_roles("operator", "auditor", "service"))],
    period: PeriodQuery = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
) -> Ranking:
    """Subjects by composite score, best first (equal composites share a rank)."""
    subject = SubjectKind(kind.removesuffix("s"))
    label = _period(subject, period, rt)
    assert rt.redis is not None
    entries = await ranking(rt.db, rt.redis, subject, label)
    return Ranking(
        kind=subject,
        period=label,
        items=[RankingEntry(rank=r, code=c, composite=v) for r, c, v in entries[:limit]],
    )


class CheckinIn(BaseModel):
    checkin_id: UUID | None = Field(
        default=None, description="The app's id for this check-in; resending it is harmless."
    )
    grid_code: GridCode
    location: Location
    at: Timestamp | None = Field(default=None, description="When; default: now.")
    note: str | None = Field(default=None, max_length=500)


class CheckinOut(BaseModel):
    checkin_id: UUID
    staff_code: str
    grid_code: str
    location: Location
    at: datetime
    period: str


@router.post("/patrols/checkins", status_code=201, response_model=CheckinOut)
async def checkin(
    rt: RT,
    body: CheckinIn,
    principal: Annotated[Principal, Depends(require_roles("grid_worker"))],
) -> CheckinOut:
    """一日双巡: a grid worker checks in on patrol in one of their grids."""
    if body.grid_code not in principal.grid_codes and "admin" not in principal.roles:
        raise Problem(
            403,
            "Forbidden",
            f"Grid {body.grid_code} is not one of your grids.",
            type=FORBIDDEN,
        )
    scorer = scorer_of(rt)
    now = scorer.clock()
    at = body.at or now

    def bad(field: str, message: str) -> Problem:
        return Problem(
            422,
            "Invalid check-in",
            message,
            type=INVALID_CHECKIN,
            errors=[{"field": field, "where": "body", "message": message}],
        )

    if at > now + CHECKIN_MAX_AHEAD:
        raise bad("at", "The check-in time is in the future.")
    if at < now - CHECKIN_MAX_DELAY:
        raise bad("at", "A check-in may be sent at most 24 hours after it happened.")
    locate: Locator | None = rt.state.get("locate")
    if locate is not None:
        grids = locate(body.location.lon, body.location.lat)
        if grids is not None and body.grid_code not in grids:
            where = ", ".join(sorted(grids)) or "no grid"
            raise bad(
                "location", f"The location is not in grid {body.grid_code} (it is in {where})."
            )
    try:
        async with rt.db.acquire() as conn, conn.transaction():
            record = await scorer.record_checkin(
                conn,
                checkin_id=body.checkin_id or uuid4(),
                staff_code=principal.subject,
                grid_code=body.grid_code,
                lon=body.location.lon,
                lat=body.location.lat,
                at=at,
                note=body.note,
            )
    except PeriodFrozenError as exc:
        raise Problem(409, "Period frozen", str(exc), type=FROZEN) from exc
    if record["staff_code"] != principal.subject:
        raise Problem(409, "Conflict", "This check-in id belongs to someone else.", type=FORBIDDEN)
    return CheckinOut(
        checkin_id=record["checkin_id"],
        staff_code=record["staff_code"],
        grid_code=record["grid_code"],
        location=Location(lon=record["lon"], lat=record["lat"]),
        at=record["at"],
        period=periods_touching(SubjectKind.WORKER, record["at"], record["at"], scorer.tz)[0],
    )
