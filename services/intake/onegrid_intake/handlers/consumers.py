"""Kafka: gateways' reports on `intake.reports.v1`, and case lifecycle on `cases.events.v1`
(so intake knows which cases are still open for duplicate search)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

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


def case_handlers(index: OpenCaseIndex) -> dict[str, Handler]:
    async def on_ended(tx: Transaction, msg: Incoming) -> None:
        # Only an open case changes: the evaluation after a close writes no row version
        # and sends Redis nothing.
        case_id = msg.payload.case_id  # type: ignore[attr-defined]
        category = await tx.conn.fetchval(
            "UPDATE case_ SET open = false, closed_at = coalesce(closed_at, $2)"
            " WHERE case_id = $1 AND open RETURNING category_code",
            case_id,
            msg.envelope.time,
        )
        if category is not None:
            await index.remove(case_id, category)

    async def on_reopened(tx: Transaction, msg: Incoming) -> None:
        case_id = msg.payload.case_id  # type: ignore[attr-defined]
        row = await tx.conn.fetchrow(
            "UPDATE case_ SET open = true, closed_at = NULL WHERE case_id = $1"
            " RETURNING category_code, lon, lat",
            case_id,
        )
        if row is not None and row["category_code"] is not None and row["lon"] is not None:
            await index.add(case_id, row["category_code"], row["lon"], row["lat"])

    async def on_recategorised(tx: Transaction, msg: Incoming) -> None:
        event = msg.payload
        assert isinstance(event, CaseRecategorised)
        row = await tx.conn.fetchrow(
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

    async def on_relocated(tx: Transaction, msg: Incoming) -> None:
        event = msg.payload
        assert isinstance(event, CaseRelocated)
        point = event.location
        row = await tx.conn.fetchrow(
            "UPDATE case_ SET grid_code = $2, lon = coalesce($3, lon), lat = coalesce($4, lat)"
            " WHERE case_id = $1 RETURNING open, category_code, lon, lat",
            event.case_id,
            event.new_grid_code,
            point.lon if point else None,
            point.lat if point else None,
        )
        if row is not None and row["open"] and row["category_code"] and row["lon"] is not None:
            await index.add(event.case_id, row["category_code"], row["lon"], row["lat"])

    return {
        CaseClosed.ce_type: on_ended,
        CaseRejected.ce_type: on_ended,
        CaseEvaluated.ce_type: on_ended,
        CaseReopened.ce_type: on_reopened,
        CaseRecategorised.ce_type: on_recategorised,
        CaseRelocated.ce_type: on_relocated,
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
