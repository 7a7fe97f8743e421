"""Kafka: gateways' reports on `intake.reports.v1`, and case lifecycle on `cases.events.v1`
(so intake knows which cases are still open for duplicate search)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from onegrid_common.consumer import Handler, Incoming, PermanentError, Subscription, Transaction
from onegrid_contracts.cases import (
    CaseClosed,
    CaseEvaluated,
    CaseRecategorised,
    CaseRejected,
    CaseRelocated,
    CaseReopened,
)
from onegrid_contracts.catalogue import CASES_EVENTS, INTAKE_REPORTS
from onegrid_contracts.reports import ChannelReport
from onegrid_intake.geo import OpenCaseIndex
from onegrid_intake.intake import IdempotencyConflictError, Intake, InvalidReportError, Submission

log = logging.getLogger(__name__)


def report_handler(intake: Intake) -> Handler:
    async def on_channel_report(tx: Transaction, msg: Incoming) -> None:
        report = msg.payload
        if not isinstance(report, ChannelReport):
            raise PermanentError(f"expected a ChannelReport, got {type(report).__name__}")
        sub = Submission(
            report=report,
            scope=f"gateway:{report.gateway}",
            key=report.channel_report_id,
            gateway=report.gateway,
        )
        try:
            accepted = await intake.accept(tx.conn, sub)
        except (InvalidReportError, IdempotencyConflictError) as exc:
            raise PermanentError(str(exc)) from exc
        log.info(
            "channel report %s accepted as report %s of case %s%s",
            report.channel_report_id,
            accepted.receipt.report_id,
            accepted.receipt.case_no,
            " (resend)" if accepted.replayed else "",
        )

    return on_channel_report


# A run of ended cases in one statement; a case ended twice in the run (closed, then
# evaluated) is given once, with its first time.
_END_CASES = (
    "UPDATE case_ SET open = false, closed_at = coalesce(closed_at, e.at)"
    " FROM unnest($1::uuid[], $2::timestamptz[]) AS e(case_id, at)"
    " WHERE case_.case_id = e.case_id AND case_.open"
    " RETURNING case_.case_id, case_.category_code"
)
_ENDING = (CaseClosed, CaseRejected, CaseEvaluated)


def case_handlers(index: OpenCaseIndex) -> dict[str, Handler]:
    async def end_cases(conn: asyncpg.Connection, ended: list[Incoming]) -> None:
        # Only an open case changes: the evaluation after a close writes no row version
        # and sends Redis nothing.
        if not ended:
            return
        first: dict[UUID, datetime] = {}
        for msg in ended:
            first.setdefault(msg.payload.case_id, msg.envelope.time)  # type: ignore[attr-defined]
        rows = await conn.fetch(_END_CASES, list(first), list(first.values()))
        await index.update(
            [], [(r["case_id"], r["category_code"]) for r in rows if r["category_code"]]
        )

    async def reopen(conn: asyncpg.Connection, event: CaseReopened) -> None:
        row = await conn.fetchrow(
            "UPDATE case_ SET open = true, closed_at = NULL WHERE case_id = $1"
            " RETURNING category_code, lon, lat",
            event.case_id,
        )
        if row is not None and row["category_code"] is not None and row["lon"] is not None:
            await index.add(event.case_id, row["category_code"], row["lon"], row["lat"])

    async def recategorise(conn: asyncpg.Connection, event: CaseRecategorised) -> None:
        row = await conn.fetchrow(
            "UPDATE case_ SET category_code = $2 WHERE case_id = $1 RETURNING open, lon, lat",
            event.case_id,
            event.new_category_code,
        )
        if row is None:
            return
        if event.old_category_code is not None:
            await index.remove(event.case_id, event.old_category_code)
        if row["open"] and row["lon"] is not None:
            await index.add(event.case_id, event.new_category_code, row["lon"], row["lat"])

    async def relocate(conn: asyncpg.Connection, event: CaseRelocated) -> None:
        point = event.location
        row = await conn.fetchrow(
            "UPDATE case_ SET grid_code = $2, lon = coalesce($3, lon), lat = coalesce($4, lat)"
            " WHERE case_id = $1 RETURNING open, category_code, lon, lat",
            event.case_id,
            event.new_grid_code,
            point.lon if point else None,
            point.lat if point else None,
        )
        if row is not None and row["open"] and row["category_code"] and row["lon"] is not None:
            await index.add(event.case_id, row["category_code"], row["lon"], row["lat"])

    async def apply_case_events(conn: asyncpg.Connection, messages: list[Incoming]) -> None:
        """A batch's case events in their order: each run of ended cases (nearly every
        event intake follows) is one statement, the rare others one each between runs."""
        ended: list[Incoming] = []
        for msg in messages:
            event = msg.payload
            if isinstance(event, _ENDING):
                ended.append(msg)
                continue
            await end_cases(conn, ended)
            ended = []
            if isinstance(event, CaseReopened):
                await reopen(conn, event)
            elif isinstance(event, CaseRecategorised):
                await recategorise(conn, event)
            elif isinstance(event, CaseRelocated):
                await relocate(conn, event)
        await end_cases(conn, ended)

    async def on_case_event(tx: Transaction, msg: Incoming) -> None:
        tx.defer(apply_case_events, msg)

    return {
        event_type.ce_type: on_case_event
        for event_type in (*_ENDING, CaseReopened, CaseRecategorised, CaseRelocated)
    }


def subscriptions(intake: Intake, index: OpenCaseIndex) -> Sequence[Subscription]:
    return [
        # One report per transaction, as over HTTP: a new case takes the duplicate-search
        # locks, then the day's counter row, held to commit. A batch transaction would hold
        # the counter while taking the next report's locks, the reverse order of an HTTP
        # report's, and the two could deadlock until the gateway report is dead-lettered.
        Subscription(
            name="reports",
            topics=(INTAKE_REPORTS,),
            handlers={ChannelReport.ce_type: report_handler(intake)},
            batch_size=1,
        ),
        Subscription(name="cases", topics=(CASES_EVENTS,), handlers=case_handlers(index)),
    ]
