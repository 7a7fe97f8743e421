"""HTTP: `POST /v1/reports` (202 once committed; a direct route) and
`GET /v1/reports/{report_id}` (FastAPI)."""

from __future__ import annotations

import logging
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response

from onegrid_common.auth import Principal, check_roles, principal_of, require_roles
from onegrid_common.direct_routes import DirectRoute, Documented, HeaderParam, read_request
from onegrid_common.group_commit import GroupCommit
from onegrid_common.problems import PROBLEM_TYPE_PREFIX, VALIDATION_ERROR, Problem
from onegrid_common.rate_limits import HitCounter
from onegrid_common.service import Runtime, RuntimeDep
from onegrid_common.telemetry import inject_traceparent
from onegrid_contracts.cases import Channel, ReviewReason
from onegrid_contracts.primitives import Attachment, CaseNo, GridCode, Timestamp
from onegrid_contracts.reports import ReportBody, ReportReceipt
from onegrid_intake.domain.case_no import SequenceExhaustedError
from onegrid_intake.domain.reports import SUBMIT_ROLES, allowed_channels
from onegrid_intake.intake import (
    Accepted,
    IdempotencyConflictError,
    InvalidReportError,
    Submission,
)
from onegrid_intake.settings import IntakeSettings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["reports"])

IDEMPOTENCY_CONFLICT = PROBLEM_TYPE_PREFIX + "idempotency-conflict"
RATE_LIMITED = PROBLEM_TYPE_PREFIX + "rate-limited"
CHANNEL_FORBIDDEN = PROBLEM_TYPE_PREFIX + "channel-forbidden"
NUMBERS_EXHAUSTED = PROBLEM_TYPE_PREFIX + "case-numbers-exhausted"
# Roles that may read every report; others only their own.
READ_ALL_ROLES = frozenset({"operator", "auditor", "admin", "service"})

IDEMPOTENCY_KEY = HeaderParam(
    "Idempotency-Key",
    Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")],
    "Client-chosen key (printable ASCII, no spaces): a resend with the same key and body "
    "gets the same answer; another body gets 409.",
)


def settings_of(rt: Runtime) -> IntakeSettings:
    settings: IntakeSettings = rt.state["settings"]
    return settings


async def check_rate_limits(
    counter: HitCounter, settings: IntakeSettings, caller: str, channel: Channel
) -> None:
    """Fixed windows in Redis, per caller and per channel: one command for the requests of
    the moment together."""
    window = settings.rate_window_s
    limits = [
        ("caller", f"intake:rl:caller:{caller}", settings.reporter_rate_limit),
        ("channel", f"intake:rl:channel:{channel.value}", settings.channel_rate_limit),
    ]
    active = [(name, key, limit) for name, key, limit in limits if limit > 0]
    if not active:
        return
    hits = await counter.hit([key for _, key, _ in active])
    for (name, _key, limit), (count, ttl) in zip(active, hits, strict=True):
        if count > limit:
            retry = max(1, ttl)
            raise Problem(
                429,
                "Too Many Requests",
                f"The {name} rate limit of {limit} reports per {window} s is used up; "
                f"retry in {retry} s.",
                type=RATE_LIMITED,
                headers={"Retry-After": str(retry)},
                limit=limit,
                window_s=window,
                scope=name,
            )


def invalid_report_problem(exc: InvalidReportError) -> Problem:
    errors = [
        {
            "field": e.field,
            "pointer": f"/{e.field}",
            "in": "body",
            "message": e.message,
            "type": "value_error",
        }
        for e in exc.errors
    ]
    names = ", ".join(sorted({e.field for e in exc.errors}))
    return Problem(
        422,
        "Invalid request",
        f"{len(errors)} invalid field(s): {names}.",
        type=VALIDATION_ERROR,
        errors=errors,
    )


async def submit_report(request: Request) -> Response:
    """Accept a report from any channel. Answers 202 only after the report is committed."""
    principal = check_roles(principal_of(request), SUBMIT_ROLES)
    body, headers = await read_request(request, ReportBody, (IDEMPOTENCY_KEY,))
    idempotency_key: str = headers[IDEMPOTENCY_KEY.name]
    rt: Runtime = request.app.state.runtime
    if body.channel not in allowed_channels(principal.roles):
        raise Problem(
            403,
            "Forbidden",
            f"Your roles may not report on channel {body.channel.value!r}.",
            type=CHANNEL_FORBIDDEN,
        )
    await check_rate_limits(rt.state["hits"], settings_of(rt), principal.subject, body.channel)
    sub = Submission(
        report=body,
        scope=f"http:{principal.subject}",
        key=idempotency_key,
        submitted_by=principal.subject,
        traceparent=inject_traceparent(),
    )
    try:
        accepted = await _accept(rt, sub)
    except InvalidReportError as exc:
        raise invalid_report_problem(exc) from None
    except IdempotencyConflictError as exc:
        raise Problem(409, "Conflict", str(exc), type=IDEMPOTENCY_CONFLICT) from None
    except SequenceExhaustedError as exc:
        # Nothing of the report was kept; the sender may retry tomorrow or via an operator.
        raise Problem(503, "Service Unavailable", str(exc), type=NUMBERS_EXHAUSTED) from None
    replayed = {"Idempotent-Replayed": "true"} if accepted.replayed else None
    return Response(
        accepted.receipt.model_dump_json(), 202, replayed, media_type="application/json"
    )


_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}

# The load of intake: served without FastAPI's request machinery (direct_routes.py).
SUBMIT_REPORT = DirectRoute(
    "POST",
    "/v1/reports",
    submit_report,
    Documented(
        summary="Submit a report",
        description=submit_report.__doc__ or "",
        body=ReportBody,
        answer=ReportReceipt,
        status_code=202,
        headers=(IDEMPOTENCY_KEY,),
        tags=("reports",),
        operation_id="submit_report",
        responses={
            400: {"description": "The body is not JSON.", "content": _PROBLEM},
            401: {"description": "No or bad bearer token.", "content": _PROBLEM},
            403: {"description": "The role may not report on this channel.", "content": _PROBLEM},
            409: {"description": "Idempotency key reused for another report.", "content": _PROBLEM},
            413: {"description": "Body too large.", "content": _PROBLEM},
            415: {"description": "The body is not application/json.", "content": _PROBLEM},
            429: {"description": "Rate limit used up.", "content": _PROBLEM},
            503: {"description": "The day's case numbers are used up.", "content": _PROBLEM},
        },
    ),
)


async def _accept(rt: Runtime, sub: Submission) -> Accepted:
    # Written with the reports that arrive meanwhile, in one transaction (group commit).
    reports: GroupCommit[Submission, Accepted] = rt.state["reports"]
    return await reports.submit(sub)


class ReporterView(BaseModel):
    reporter_id: str
    anonymous: bool
    masked_name: str | None = None
    masked_phone: str | None = None
    masked_id_number: str | None = None
    staff_code: str | None = None


class ReportView(BaseModel):
    """A report as intake accepted it; the reporter's contact only masked."""

    report_id: UUID
    case_id: UUID
    case_no: CaseNo
    duplicate_of: UUID | None
    channel: Channel
    category_code: str | None
    category_confidence: float | None
    grid_code: GridCode | None
    grid_path: list[str]
    review_reasons: list[ReviewReason]
    description: str
    location: dict[str, Any] | None
    occurred_at: Timestamp
    received_at: AwareDatetime
    reporter: ReporterView
    attachments: list[Attachment] = Field(default_factory=list)
    resolved_on_site: bool


@router.get(
    "/reports/{report_id}",
    summary="Read a report",
    responses={
        401: {"description": "No or bad bearer token.", "content": _PROBLEM},
        403: {"description": "Role not allowed.", "content": _PROBLEM},
        404: {"description": "No such report (or not yours).", "content": _PROBLEM},
    },
)
async def get_report(
    report_id: UUID,
    principal: Annotated[
        Principal, Depends(require_roles("reporter", "grid_worker", *READ_ALL_ROLES))
    ],
    rt: RuntimeDep,
) -> ReportView:
    """Reporters and grid workers read their own reports; operators read any."""
    async with rt.db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT report_id, case_id, case_no, duplicate_of, channel, category_code,"
            " category_confidence, grid_code, grid_path, review_reasons, report, received_at,"
            " submitted_by FROM report WHERE report_id = $1",
            report_id,
        )
    sees_all = not READ_ALL_ROLES.isdisjoint(principal.roles)
    if row is None or (not sees_all and row["submitted_by"] != principal.subject):
        # Someone else's report is answered like a missing one: ids reveal nothing.
        raise Problem(404, "Not Found", f"No report {report_id}.")
    stored = row["report"]
    return ReportView(
        report_id=row["report_id"],
        case_id=row["case_id"],
        case_no=row["case_no"],
        duplicate_of=row["duplicate_of"],
        channel=Channel(row["channel"]),
        category_code=row["category_code"],
        category_confidence=row["category_confidence"],
        grid_code=row["grid_code"],
        grid_path=list(row["grid_path"]),
        review_reasons=[ReviewReason(r) for r in row["review_reasons"]],
        description=stored["description"],
        location=stored.get("location"),
        occurred_at=stored["occurred_at"],
        received_at=row["received_at"],
        reporter=ReporterView.model_validate(stored["reporter"]),
        attachments=stored.get("attachments") or [],
        resolved_on_site=stored.get("resolved_on_site", False),
    )
