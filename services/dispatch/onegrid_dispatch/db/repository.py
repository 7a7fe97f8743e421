"""SQL of the dispatch schema: load a case (under a row lock, or not), save it with its
tasks, deadlines, operator queue entry, timeline rows and events in one statement that
applies only to the version loaded. Callers own the transaction, if any."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from pydantic import TypeAdapter

from onegrid_common import outbox
from onegrid_contracts.cases import CaseReported, CaseState, TaskState
from onegrid_contracts.envelope import Envelope
from onegrid_dispatch.domain.case import Case

CASE_CODEC: TypeAdapter[Case] = TypeAdapter(Case)


@dataclass
class LoadedCase:
    case: Case
    report: CaseReported
    version: int
    traceparent: str | None = None  # the case's own trace (see 0002_trace.sql)


def encode_case(case: Case) -> dict[str, Any]:
    data: dict[str, Any] = CASE_CODEC.dump_python(case, mode="json")
    return data


def decode_case(data: dict[str, Any]) -> Case:
    return CASE_CODEC.validate_python(data)


def as_case_id(ref: str) -> UUID | None:
    """`ref` as a case id, or None when it is not one (it may be a case number)."""
    try:
        return UUID(ref)
    except ValueError:
        return None


async def find_case_id(conn: asyncpg.Connection, ref: str) -> UUID | None:
    """The case id for a case id or a case number."""
    case_id = as_case_id(ref)
    if case_id is None:
        found: UUID | None = await conn.fetchval("SELECT case_id FROM case_ WHERE case_no=$1", ref)
        return found
    exists = await conn.fetchval("SELECT true FROM case_ WHERE case_id=$1", case_id)
    return case_id if exists else None


_LOAD = "SELECT data, report, version, traceparent FROM case_ WHERE case_id = {which}"
_BY_ID = _LOAD.format(which="$1")
_BY_TASK = _LOAD.format(which="(SELECT case_id FROM task WHERE task_id=$1)")


async def load(conn: asyncpg.Connection, case_id: UUID) -> LoadedCase | None:
    """The case as last committed, without a lock: `save_case` applies only if nobody
    saved it since."""
    return _loaded(await conn.fetchrow(_BY_ID, case_id))


async def load_by_task(conn: asyncpg.Connection, task_id: UUID) -> LoadedCase | None:
    """`load` of the case holding `task_id`, found in the same statement."""
    return _loaded(await conn.fetchrow(_BY_TASK, task_id))


async def load_for_update(conn: asyncpg.Connection, case_id: UUID) -> LoadedCase | None:
    """The case with its row locked until the transaction ends (per-case order)."""
    return _loaded(await conn.fetchrow(_BY_ID + " FOR UPDATE", case_id))


async def load_for_update_by_task(conn: asyncpg.Connection, task_id: UUID) -> LoadedCase | None:
    """`load_for_update` of the case holding `task_id`, found and locked in one statement."""
    return _loaded(await conn.fetchrow(_BY_TASK + " FOR UPDATE", task_id))


def _loaded(row: asyncpg.Record | None) -> LoadedCase | None:
    if row is None:
        return None
    return LoadedCase(
        decode_case(row["data"]),
        CaseReported.model_validate(row["report"]),
        row["version"],
        row["traceparent"],
    )


def _task_state(task: Any) -> str:
    return TaskState.CANCELLED.value if task.cancelled_at is not None else task.state.value


@dataclass(frozen=True)
class QueueEntry:
    """Why a case waits for an operator (the operator_queue row a save writes)."""

    reason: str
    detail: str | None
    at: datetime


# Everything a command changes, in one statement that commits on its own outside a
# transaction: the case row (only if it is still the version loaded; for a new case, only
# if it does not exist), its tasks, clocks,
# operator-queue entry, timeline rows, the messages to departments' systems and every
# event in the outbox. Each part runs only once the case row is saved: a case saved by
# someone else meanwhile leaves everything as it was (and the row lock comes before the
# outbox's per-key lock, as in every other writer).
_UPDATE_CASE = """
    UPDATE case_ SET state=$2, category_code=$3, grid_code=$4, grid_path=$5, tier=$6,
        lead_unit=$7, units=$8, supervised=$9, near_boundary=$10, operator_queue=$11,
        resolution_due_at=$12, resolved_at=$13, next_timer_at=$14, data=$15,
        version=version+1, updated_at=now()
    WHERE case_id=$1 AND version=$33
    RETURNING version"""
# A new case: the row with its first report ($59..$62) and version $33; nothing (and none of
# the rest) when the case exists already, as for a report delivered again.
_INSERT_CASE = """
    INSERT INTO case_ (case_id, state, category_code, grid_code, grid_path, tier, lead_unit,
        units, supervised, near_boundary, operator_queue, resolution_due_at, resolved_at,
        next_timer_at, data, version, case_no, report, reported_at, traceparent)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $33, $59, $60,
        $61, $62)
    ON CONFLICT DO NOTHING
    RETURNING version"""
_SAVE_CASE = """
WITH saved AS ({case}
), tasks AS (
    INSERT INTO task (task_id, case_id, unit_code, role, state, attempt, assignee_staff_id,
        assigned_at)
    SELECT t.task_id, $1, t.unit_code, t.role, t.state, t.attempt, t.assignee_staff_id,
        t.assigned_at
    FROM unnest($16::uuid[], $17::text[], $18::text[], $19::text[], $20::integer[],
        $21::text[], $22::timestamptz[])
        AS t(task_id, unit_code, role, state, attempt, assignee_staff_id, assigned_at)
    WHERE EXISTS (SELECT FROM saved)
    ON CONFLICT (task_id) DO UPDATE SET state=EXCLUDED.state, updated_at=now()
    WHERE task.state IS DISTINCT FROM EXCLUDED.state
), clocks AS (
    INSERT INTO deadline (case_id, kind, started_at, warn_at, due_at, met_at, paused_at,
        warning_emitted, breach_emitted, basis)
    SELECT $1, c.kind, c.started_at, c.warn_at, c.due_at, c.met_at, c.paused_at,
        c.warning_emitted, c.breach_emitted, c.basis
    FROM unnest($23::text[], $24::timestamptz[], $25::timestamptz[], $26::timestamptz[],
        $27::timestamptz[], $28::timestamptz[], $29::boolean[], $30::boolean[], $31::text[])
        AS c(kind, started_at, warn_at, due_at, met_at, paused_at, warning_emitted,
            breach_emitted, basis)
    WHERE EXISTS (SELECT FROM saved)
    ON CONFLICT (case_id, kind) DO UPDATE SET started_at=EXCLUDED.started_at,
        warn_at=EXCLUDED.warn_at, due_at=EXCLUDED.due_at, met_at=EXCLUDED.met_at,
        paused_at=EXCLUDED.paused_at, warning_emitted=EXCLUDED.warning_emitted,
        breach_emitted=EXCLUDED.breach_emitted, basis=EXCLUDED.basis
    -- Most saves leave a clock as it was: no new row version for those.
    WHERE (deadline.started_at, deadline.warn_at, deadline.due_at, deadline.met_at,
           deadline.paused_at, deadline.warning_emitted, deadline.breach_emitted,
           deadline.basis)
      IS DISTINCT FROM (EXCLUDED.started_at, EXCLUDED.warn_at, EXCLUDED.due_at,
           EXCLUDED.met_at, EXCLUDED.paused_at, EXCLUDED.warning_emitted,
           EXCLUDED.breach_emitted, EXCLUDED.basis)
), unqueued AS (
    DELETE FROM operator_queue WHERE $32 AND case_id=$1 AND EXISTS (SELECT FROM saved)
), queued AS (
    INSERT INTO operator_queue (case_id, reason, detail, queued_at)
    SELECT $1, $34::text, $35::text, $36::timestamptz
    WHERE $34::text IS NOT NULL AND EXISTS (SELECT FROM saved)
    ON CONFLICT (case_id) DO UPDATE SET reason=EXCLUDED.reason, detail=EXCLUDED.detail,
        queued_at=EXCLUDED.queued_at
), sent AS (
    {enqueue_each} WHERE EXISTS (SELECT FROM saved)
), timeline_rows AS (
    INSERT INTO timeline (case_id, event_id, type, at, actor, reason, trace_id, span_id,
        payload)
    SELECT $1, e.event_id, e.type, e.at, e.actor::jsonb, e.reason, e.trace_id, e.span_id,
        e.payload::jsonb
    FROM unnest($41::text[], $42::text[], $43::timestamptz[], $44::text[], $45::text[],
        $46::text[], $47::text[], $48::text[])
        AS e(event_id, type, at, actor, reason, trace_id, span_id, payload)
    WHERE EXISTS (SELECT FROM saved)
    ON CONFLICT (event_id) DO NOTHING
), messages AS (
    INSERT INTO task_message (case_id, message_id, direction, topic, type, unit_code,
        task_id, at, trace_id, span_id, payload)
    SELECT $1, m.message_id, m.direction, m.topic, m.type, m.unit_code, m.task_id, m.at,
        m.trace_id, m.span_id, m.payload::jsonb
    FROM unnest($49::text[], $50::text[], $51::text[], $52::text[], $53::text[],
        $54::uuid[], $55::timestamptz[], $56::text[], $57::text[], $58::text[])
        AS m(message_id, direction, topic, type, unit_code, task_id, at, trace_id, span_id,
            payload)
    WHERE EXISTS (SELECT FROM saved)
    ON CONFLICT (message_id) DO NOTHING
)
SELECT (SELECT version FROM saved) AS version, (SELECT count(*) FROM sent) AS sent"""
_SAVE_LOADED_CASE = _SAVE_CASE.format(case=_UPDATE_CASE, enqueue_each=outbox.enqueue_each(37))
_SAVE_NEW_CASE = _SAVE_CASE.format(case=_INSERT_CASE, enqueue_each=outbox.enqueue_each(37))


def _columns(rows: Sequence[tuple[Any, ...]], width: int, json: tuple[int, ...]) -> list[list[Any]]:
    """`rows` as `width` array parameters; the `json` columns as JSON text (cast to jsonb in
    the statement: asyncpg would read a list in a jsonb array as a nested array)."""
    columns: list[list[Any]] = [[row[i] for row in rows] for i in range(width)]
    for i in json:
        columns[i] = [None if v is None else orjson.dumps(v).decode() for v in columns[i]]
    return columns


async def save_case(
    conn: asyncpg.Connection,
    loaded: LoadedCase,
    *,
    next_timer_at: datetime | None,
    grid_path: Sequence[str],
    queued: QueueEntry | None = None,
    emitted: Sequence[tuple[outbox.EventRow, Any]] = (),
    sent: Sequence[tuple[outbox.EventRow, Any]] = (),
    noted: Sequence[tuple[Envelope, Any]] = (),
    received: Sequence[tuple[str, Envelope, Any]] = (),
    new: bool = False,
) -> bool:
    """Save `loaded.case` if its row is still at `loaded.version` (then the version moves
    on), with the events it `emitted` (outbox + timeline), the messages `sent` to units'
    systems (outbox + task_message), the events of others it `noted` (timeline only) and
    the (topic, envelope, reply) units' systems sent that it `received` (task_message only).
    False, and nothing written, when the case was saved by someone else since it was read.
    A `new` case is inserted at `loaded.version` with its first report (`loaded.report`);
    False, and nothing written, when it exists already."""
    case = loaded.case
    resolution = case.resolution
    units = sorted({t.unit_code for t in case.tasks})
    clocks = [c for c in (case.response, case.resolution) if c is not None]
    leaves_queue = case.operator_queue is None or case.state in (
        CaseState.CLOSED,
        CaseState.REJECTED,
    )
    if leaves_queue:
        queued = None
    # The case id is the statement's $1: each row without it.
    timeline = [_timeline_args(case.case_id, env, payload)[1:] for env, payload in noted]
    timeline += [
        _timeline_args(case.case_id, row.envelope, payload)[1:] for row, payload in emitted
    ]
    messages = [
        _task_message_args("out", row.topic, row.envelope, payload)[1:] for row, payload in sent
    ]
    messages += [_task_message_args("in", *message)[1:] for message in received]
    first_report = (
        (case.case_no, loaded.report.model_dump(mode="json"), case.reported_at, loaded.traceparent)
        if new
        else ()
    )
    row = await conn.fetchrow(
        _SAVE_NEW_CASE if new else _SAVE_LOADED_CASE,
        case.case_id,
        case.state.value,
        case.category_code,
        case.grid_code,
        "/".join(grid_path),
        case.tier.value if case.tier else None,
        case.lead_unit,
        units,
        case.supervised,
        case.near_boundary,
        case.operator_queue.value if case.operator_queue else None,
        resolution.due_at if resolution else None,
        (resolution.met_at if resolution else None) or case.closed_at,
        next_timer_at,
        encode_case(case),
        [t.task_id for t in case.tasks],
        [t.unit_code for t in case.tasks],
        [t.role.value for t in case.tasks],
        [_task_state(t) for t in case.tasks],
        [t.attempt for t in case.tasks],
        [t.assignee_staff_id for t in case.tasks],
        [t.assigned_at for t in case.tasks],
        [c.kind.value for c in clocks],
        [c.started_at for c in clocks],
        [c.warn_at for c in clocks],
        [c.due_at for c in clocks],
        [c.met_at for c in clocks],
        [c.paused_at for c in clocks],
        [c.warning_emitted for c in clocks],
        [c.breach_emitted for c in clocks],
        [c.as_payload().basis.value for c in clocks],
        leaves_queue,
        loaded.version,
        queued.reason if queued else None,
        queued.detail if queued else None,
        queued.at if queued else None,
        *outbox.event_columns([r for r, _ in emitted] + [r for r, _ in sent]),
        *_columns(timeline, 8, json=(3, 7)),  # actor, payload
        *_columns(messages, 10, json=(9,)),  # payload
        *first_report,
    )
    assert row is not None
    if row["version"] is None:
        return False
    loaded.version = row["version"]
    if row["sent"]:
        await outbox.written(conn)
    return True


def trace_id_of(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) >= 3 else None


def span_id_of(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[2] if len(parts) >= 4 else None


def _timeline_args(case_id: UUID, env: Envelope, payload: Any) -> tuple[Any, ...]:
    data = payload.model_dump(mode="json")
    reason = data.get("reason") or data.get("note") or data.get("detail") or data.get("text")
    return (
        case_id,
        env.id,
        env.type,
        getattr(payload, "at", None) or env.time,
        data.get("actor"),
        reason if isinstance(reason, str) else None,
        trace_id_of(env.traceparent),
        span_id_of(env.traceparent),
        data,
    )


def _task_message_args(direction: str, topic: str, env: Envelope, payload: Any) -> tuple[Any, ...]:
    return (
        payload.case_id,
        env.id,
        direction,
        topic,
        env.type,
        payload.unit_code,
        payload.task_id,
        payload.at,
        trace_id_of(env.traceparent),
        span_id_of(env.traceparent),
        payload.model_dump(mode="json"),
    )


# A refused reply, and the reply kept for the case timeline all the same when the task it
# names is of its case ($12): what the department answered is part of the case's history.
_REFUSE_REPLY = """WITH kept AS (
    INSERT INTO task_message (case_id, message_id, direction, topic, type, unit_code,
        task_id, at, trace_id, span_id, payload)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8::timestamptz, $9, $10, $11::jsonb WHERE $12
    ON CONFLICT (message_id) DO NOTHING)
  INSERT INTO refused_reply (message_id, case_id, task_id, unit_code, type, error)
  VALUES ($2, $13, $7, $6, $5, $14)"""


async def refuse_reply(
    conn: asyncpg.Connection,
    topic: str,
    env: Envelope,
    reply: Any,
    *,
    task_case_id: UUID | None,
    error: str,
) -> None:
    """Record `reply` as refused with `error`; `task_case_id` is the case of the task it
    names (None: no such task)."""
    await conn.execute(
        _REFUSE_REPLY,
        *_task_message_args("in", topic, env, reply),
        task_case_id == reply.case_id,
        task_case_id,
        error[:2000],
    )
