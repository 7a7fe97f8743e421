"""The scorer: records facts, computes period scores, freezes ended periods, publishes
changes and keeps the Redis rankings. The arithmetic is in `domain`; this is the I/O.

Recording an event stores it and folds it into its case's stored facts (one row per case,
`case_span`). Every computation of a period is `compute(kind, period)`: stream the facts
of the cases whose span touches the period into the kind's tallies (a case whose stored
facts run past a frozen period's seq, or were folded by another version, is folded again
from its events), compare with the stored rows, write and publish what changed. The live
loop and `onegrid scores rebuild` both call it, hence equal numbers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import redis.asyncio as aioredis

from onegrid_common import outbox
from onegrid_contracts.cases import (
    CaseClosed,
    CaseDispatched,
    CaseEvent,
    DeadlineBreached,
    DeadlineExtended,
    DeadlineWarning,
    TaskAssigned,
)
from onegrid_contracts.catalogue import SCORES_UPDATES
from onegrid_contracts.envelope import payload_class
from onegrid_contracts.scores import ScoreUpdated, SubjectKind
from onegrid_scoring.domain.composite import composite, rank
from onegrid_scoring.domain.facts import (
    FACTS_VERSION,
    CaseFacts,
    facts_from_json,
    facts_to_json,
    fold,
)
from onegrid_scoring.domain.measures import (
    Checkin,
    GridTallies,
    Measures,
    Rules,
    UnitTallies,
    WorkerTallies,
)
from onegrid_scoring.domain.periods import Period, period_for, periods_touching

log = logging.getLogger(__name__)

SOURCE = "scoring"
# Recording takes this lock shared, freezing takes it exclusive: no event can commit
# with a seq below a frozen period's seq after the period froze.
FREEZE_LOCK = 0x5C0121
CENT = Decimal("0.01")
# Cases read per round trip when streaming a period's facts or folding stale ones again.
CHUNK = 500


class GridDirectory(Protocol):
    """What scoring needs from the registry: households per grid (RegistryView fits)."""

    def households(self) -> Mapping[str, int]: ...


def event_times(event: CaseEvent) -> list[datetime]:
    """Every instant an event sets: when it happened and the deadlines it names."""
    times = [event.at]
    match event:
        case CaseDispatched() | TaskAssigned():
            times += [d.due_at for d in event.deadlines]
        case DeadlineExtended():
            times += [event.old_due_at, event.new_due_at]
        case DeadlineWarning() | DeadlineBreached():
            times.append(event.due_at)
        case CaseClosed() if event.resolution_due_at is not None:
            times.append(event.resolution_due_at)
        case _:
            pass
    return times


@dataclass(frozen=True)
class ScoreRow:
    kind: SubjectKind
    period: str
    code: str
    measures: Measures
    composite: Decimal | None
    rank: int | None
    rank_of: int | None
    final: bool
    computed_at: datetime

    def same_numbers(self, other: ScoreRow) -> bool:
        return (self.measures, self.composite, self.rank, self.rank_of, self.final) == (
            other.measures,
            other.composite,
            other.rank,
            other.rank_of,
            other.final,
        )

    def message(self) -> ScoreUpdated:
        return ScoreUpdated(
            subject_kind=self.kind,
            code=self.code,
            period=self.period,
            measures={k: v for k, v in self.measures.items() if v is not None},
            composite=self.composite,
            rank=self.rank,
            rank_of=self.rank_of,
            final=self.final,
            computed_at=self.computed_at,
        )


def _measures_json(measures: Measures) -> dict[str, str | None]:
    return {k: None if v is None else str(v) for k, v in measures.items()}


def row_from_record(record: asyncpg.Record) -> ScoreRow:
    measures = {k: None if v is None else Decimal(v) for k, v in record["measures"].items()}
    return ScoreRow(
        kind=SubjectKind(record["kind"]),
        period=record["period"],
        code=record["code"],
        measures=measures,
        composite=record["composite"],
        rank=record["rank"],
        rank_of=record["rank_of"],
        final=record["final"],
        computed_at=record["computed_at"],
    )


@dataclass(frozen=True)
class Outcome:
    kind: SubjectKind
    period: str
    subjects: int
    changed: int
    final: bool


def ranking_key(kind: SubjectKind, period: str) -> str:
    return f"scoring:ranking:{kind.value}:{period}"


# Marks periods dirty ($8/$9 or $1/$2: kinds and labels, sorted so rows lock in one order);
# returns each row written, with whether its period is final (see `Scorer.touch`).
_TOUCH_PERIODS = """INSERT INTO period_state (kind, period)
    SELECT k, p FROM unnest(${kinds}::text[], ${labels}::text[]) AS t(k, p) {only_if}
    ON CONFLICT (kind, period) DO UPDATE SET version = period_state.version + 1
    WHERE period_state.version <= period_state.computed_version OR period_state.final
    RETURNING kind, period, final"""


# A case's span written over the facts it was read with ($7: their seq), and the periods it
# touches marked dirty only if it was: no row back means another transaction folded first.
_WRITE_SPAN_AND_TOUCH = f"""WITH span AS (
    INSERT INTO case_span (case_id, first_at, last_at, facts, facts_seq, facts_version)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (case_id) DO UPDATE SET
      first_at = least(case_span.first_at, excluded.first_at),
      last_at = greatest(case_span.last_at, excluded.last_at),
      facts = excluded.facts, facts_seq = excluded.facts_seq,
      facts_version = excluded.facts_version
    WHERE case_span.facts_seq IS NOT DISTINCT FROM $7
    RETURNING first_at),
  touched AS ({_TOUCH_PERIODS.format(kinds=8, labels=9, only_if="WHERE EXISTS (SELECT FROM span)")})
SELECT $1::uuid AS case_id, t.kind, t.period, t.final FROM span LEFT JOIN touched t ON true"""


# A subject's score row and its ScoreUpdated outbox row, one statement.
_WRITE_SCORE = f"""INSERT INTO score (kind, period, code, measures, composite, rank, rank_of,
        final, computed_at)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 {outbox.enqueue_from(10)}
    ON CONFLICT (kind, period, code) DO UPDATE SET
      measures = excluded.measures, composite = excluded.composite,
      rank = excluded.rank, rank_of = excluded.rank_of,
      final = excluded.final, computed_at = excluded.computed_at"""


def _frozen(rows: Iterable[asyncpg.Record]) -> list[tuple[SubjectKind, str]]:
    # A row of the span with no period written has no kind (LEFT JOIN): skipped.
    return sorted((SubjectKind(r["kind"]), r["period"]) for r in rows if r["final"])


@dataclass
class _Fold:
    """One case's events of a `record_events` call folded into its facts, in order."""

    facts: CaseFacts
    first: datetime | None  # the span as read, then widened by each event
    last: datetime | None
    read_seq: int | None  # the facts' seq as read: written only over that
    refolded: bool  # folded from every stored event (this call's included)
    seq: int = 0
    # Each event with the periods its case spanned once it was folded.
    touched: list[tuple[str, list[tuple[SubjectKind, str]]]] = field(default_factory=list)

    @property
    def periods(self) -> list[tuple[SubjectKind, str]]:
        return self.touched[-1][1] if self.touched else []

    def add(
        self,
        event_id: str,
        event: CaseEvent,
        seq: int,
        periods_touched: Callable[[datetime, datetime], list[tuple[SubjectKind, str]]],
    ) -> None:
        times = event_times(event)
        first, last = min(times), max(times)
        if self.first is not None and self.last is not None:
            first, last = min(first, self.first), max(last, self.last)
        self.first, self.last = first, last
        if not self.refolded:  # a refold read this call's events already
            self.facts.apply(event)
        self.seq = seq
        self.touched.append((event_id, periods_touched(first, last)))


class Scorer:
    def __init__(
        self,
        *,
        tz: ZoneInfo,
        rules: Rules,
        weights: Mapping[SubjectKind, Mapping[str, Decimal]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        freeze_grace: timedelta = timedelta(hours=1),
        pass_spacing: float = 10.0,
    ) -> None:
        self.tz = tz
        self.rules = rules
        self.weights = weights
        self.clock = clock
        self.freeze_grace = freeze_grace
        self.pass_spacing = pass_spacing
        # When each period's next pass may start (time.monotonic): real time, not the
        # injected clock, because this bounds CPU, not what the scores mean.
        self._next_pass: dict[tuple[SubjectKind, str], float] = {}

    # -- recording facts ---------------------------------------------------------------

    async def record_event(self, conn: asyncpg.Connection, event_id: str, event: CaseEvent) -> bool:
        """`record_events` of one event; False if it was stored before."""
        return bool(await self.record_events(conn, [(event_id, event)]))

    async def record_events(
        self, conn: asyncpg.Connection, events: Sequence[tuple[str, CaseEvent]]
    ) -> set[str]:
        """Store case events (in their order), fold them into their cases' facts and mark
        the periods they may change: two round trips for any number of events (a consumer
        batch), more only for a case another transaction folded meanwhile. Returns the ids
        of the events stored now (the others were stored before)."""
        if not events:
            return set()
        # The shared freeze lock is taken before each event gets its seq (the insert reads
        # from it), in the same statement. Every statement reads its case's span as it was
        # before this call: the spans are written after all the events are stored.
        stored = await conn.fetchmany(
            """WITH locked AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared($6)),
               recorded AS (
                 INSERT INTO event (event_id, case_id, type, at, payload)
                 SELECT $1::text, $2::uuid, $3::text, $4::timestamptz, $5::jsonb FROM locked
                 ON CONFLICT (event_id) DO NOTHING RETURNING event_id, seq)
               SELECT r.event_id, r.seq, s.first_at, s.last_at, s.facts, s.facts_seq,
                 s.facts_version
               FROM recorded r LEFT JOIN case_span s ON s.case_id = $2""",
            [
                (
                    event_id,
                    event.case_id,
                    event.ce_type,
                    event.at,
                    event.model_dump(mode="json"),
                    FREEZE_LOCK,
                )
                for event_id, event in events
            ],
        )
        by_id = {row["event_id"]: row for row in stored}
        folds: dict[UUID, _Fold] = {}
        for event_id, event in events:
            row = by_id.pop(event_id, None)  # an id twice in one call: stored once
            if row is None:
                continue
            fold = folds.get(event.case_id)
            if fold is None:
                fold = folds[event.case_id] = await self._start_fold(conn, event, row)
            fold.add(event_id, event, row["seq"], self._periods_touched)
        # Each case's span written only over the facts read above, and the periods it
        # touches marked dirty, in one round trip for all cases; a case another transaction
        # folded meanwhile gets nothing written and is folded again from all its events.
        written = await conn.fetchmany(
            _WRITE_SPAN_AND_TOUCH,
            [
                (
                    case_id,
                    fold.first,
                    fold.last,
                    facts_to_json(fold.facts),
                    fold.seq,
                    FACTS_VERSION,
                    fold.read_seq,
                    [kind.value for kind, _ in fold.periods],
                    [label for _, label in fold.periods],
                )
                for case_id, fold in folds.items()
            ],
        )
        frozen_by_case: dict[UUID, set[tuple[SubjectKind, str]]] = {}
        for row in written:
            frozen_by_case.setdefault(row["case_id"], set()).update(_frozen([row]))
        late: list[tuple[str, SubjectKind, str]] = []
        for case_id, fold in folds.items():
            if case_id in frozen_by_case:
                frozen = frozen_by_case[case_id]
            else:
                frozen = set(await self._refold_and_touch(conn, case_id, fold))
            # An event is late in the frozen periods its case spanned once it was folded.
            late += [
                (event_id, kind, label)
                for event_id, touched in fold.touched
                for kind, label in touched
                if (kind, label) in frozen
            ]
        if late:
            await conn.execute(
                "INSERT INTO late_event (event_id, kind, period)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
                " ON CONFLICT DO NOTHING",
                [event_id for event_id, _, _ in late],
                [kind.value for _, kind, _ in late],
                [label for _, _, label in late],
            )
        return {event_id for fold in folds.values() for event_id, _ in fold.touched}

    async def _start_fold(
        self, conn: asyncpg.Connection, event: CaseEvent, stored: asyncpg.Record
    ) -> _Fold:
        """A case's fold from its span as stored (or from all its events: none stored yet,
        or stored by an older version of the facts)."""
        if stored["facts"] is not None and stored["facts_version"] == FACTS_VERSION:
            facts = facts_from_json(stored["facts"])
            refolded = False
        else:
            facts = await refold_case(conn, event.case_id)
            refolded = True
        return _Fold(
            facts=facts,
            first=stored["first_at"],
            last=stored["last_at"],
            read_seq=stored["facts_seq"],
            refolded=refolded,
        )

    async def _refold_and_touch(
        self, conn: asyncpg.Connection, case_id: UUID, fold: _Fold
    ) -> list[tuple[SubjectKind, str]]:
        facts = await refold_case(conn, case_id)
        written = await conn.fetchrow(
            """UPDATE case_span SET first_at = least(first_at, $2),
                 last_at = greatest(last_at, $3), facts = $4,
                 facts_seq = (SELECT max(seq) FROM event WHERE case_id = $1),
                 facts_version = $5
               WHERE case_id = $1 RETURNING first_at, last_at""",
            case_id,
            fold.first,
            fold.last,
            facts_to_json(facts),
            FACTS_VERSION,
        )
        assert written is not None
        return await self.touch(
            conn, self._periods_touched(written["first_at"], written["last_at"])
        )

    def _periods_touched(self, first: datetime, last: datetime) -> list[tuple[SubjectKind, str]]:
        """The periods a case spanning first..last counts in, sorted, each once.

        A case counts in every period its span touches (a reopening changes the reopen
        rate of the period it was first closed in), and grids look back for repeats."""
        periods: set[tuple[SubjectKind, str]] = set()
        for kind in SubjectKind:
            labels = set(periods_touching(kind, first, last, self.tz))
            if kind is SubjectKind.GRID:
                window_end = last + self.rules.hotspot_window
                labels |= set(periods_touching(kind, last, window_end, self.tz))
            periods |= {(kind, label) for label in labels}
        return sorted(periods)

    async def touch(
        self, conn: asyncpg.Connection, periods: Iterable[tuple[SubjectKind, str]]
    ) -> list[tuple[SubjectKind, str]]:
        """Mark periods dirty (one statement); those already frozen.

        A period already dirty gets no new row version (every event touches the same few
        rows: that was ~70 updates per case). It is safe: the statement locks the row
        either way, and a pass takes the row FOR UPDATE, so it waits for this transaction
        and reads its event; a pass that ran first leaves the period clean, and this
        statement, waiting on the pass's lock, then finds it clean and bumps it. Frozen
        periods are always written, to be returned (the event is late)."""
        unique = sorted(set(periods))  # one row once per statement, locked in one order
        rows = await conn.fetch(
            _TOUCH_PERIODS.format(kinds=1, labels=2, only_if=""),
            [kind.value for kind, _ in unique],
            [label for _, label in unique],
        )
        return _frozen(rows)

    async def record_checkin(
        self,
        conn: asyncpg.Connection,
        *,
        checkin_id: UUID,
        staff_code: str,
        grid_code: str,
        lon: float,
        lat: float,
        at: datetime,
        note: str | None,
    ) -> asyncpg.Record:
        """Store a check-in once (same id → the stored one); PeriodFrozenError if its month
        is frozen."""
        existing = await conn.fetchrow("SELECT * FROM checkin WHERE checkin_id = $1", checkin_id)
        if existing is not None:
            return existing
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", FREEZE_LOCK)
        label = periods_touching(SubjectKind.WORKER, at, at, self.tz)[0]
        if await self.touch(conn, [(SubjectKind.WORKER, label)]):
            raise PeriodFrozenError(f"period {label} is frozen; check-ins for it are closed")
        record = await conn.fetchrow(
            """INSERT INTO checkin (checkin_id, staff_code, grid_code, lon, lat, at, note)
               VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *""",
            checkin_id,
            staff_code,
            grid_code,
            lon,
            lat,
            at,
            note,
        )
        assert record is not None
        return record

    async def sync_households(self, conn: asyncpg.Connection, households: Mapping[str, int]) -> int:
        """Copy the registry's households per grid; mark grid periods dirty if any changed."""
        changed = 0
        for code, homes in households.items():
            status = await conn.execute(
                """INSERT INTO grid_household (grid_code, households) VALUES ($1, $2)
                   ON CONFLICT (grid_code) DO UPDATE
                   SET households = excluded.households, updated_at = now()
                   WHERE grid_household.households <> excluded.households""",
                code,
                homes,
            )
            changed += status.endswith(" 1")
        if changed:
            await conn.execute(
                "UPDATE period_state SET version = version + 1 WHERE kind = 'grid' AND NOT final"
            )
        return changed

    # -- computing ---------------------------------------------------------------------

    async def _cases(
        self, conn: asyncpg.Connection, period: Period, max_seq: int | None, lookback: timedelta
    ) -> AsyncIterator[CaseFacts]:
        """The facts of every case whose span touches the period (and `lookback` before
        it), as of event `max_seq` when given; streamed, so memory stays bounded."""
        stale: list[UUID] = []
        async for r in conn.cursor(
            """SELECT case_id, facts, facts_seq, facts_version FROM case_span
               WHERE last_at >= $1 AND first_at < $2""",
            period.start - lookback,
            period.end,
            prefetch=CHUNK,
        ):
            usable = r["facts"] is not None and r["facts_version"] == FACTS_VERSION
            if usable and (max_seq is None or r["facts_seq"] <= max_seq):
                yield facts_from_json(r["facts"])
            else:
                stale.append(r["case_id"])
        for start in range(0, len(stale), CHUNK):
            for facts in await refold(conn, stale[start : start + CHUNK], max_seq):
                yield facts

    async def _measures(
        self,
        conn: asyncpg.Connection,
        kind: SubjectKind,
        period: Period,
        now: datetime,
        max_seq: int | None,
        max_checkin: int | None,
        final_rows: Mapping[str, ScoreRow],
    ) -> dict[str, Measures]:
        if kind is SubjectKind.UNIT:
            units = UnitTallies(period, now)
            async for case in self._cases(conn, period, max_seq, timedelta(0)):
                units.add(case)
            return units.measures()
        if kind is SubjectKind.WORKER:
            workers = WorkerTallies(period, now, self.tz, self.rules)
            async for case in self._cases(conn, period, max_seq, timedelta(0)):
                workers.add(case)
            async for r in conn.cursor(
                """SELECT staff_code, grid_code, at FROM checkin
                   WHERE at >= $1 AND at < $2 AND ($3::bigint IS NULL OR seq <= $3)""",
                period.start,
                period.end,
                max_checkin,
                prefetch=CHUNK,
            ):
                workers.add_checkin(Checkin(r["staff_code"], r["grid_code"], r["at"]))
            return workers.measures()
        households = {
            r["grid_code"]: r["households"]
            for r in await conn.fetch("SELECT grid_code, households FROM grid_household")
        }
        # A frozen grid period keeps the households it was frozen with.
        for code, row in final_rows.items():
            homes = row.measures.get("households")
            households[code] = int(homes) if homes is not None else 0
        grids = GridTallies(households, period, now, self.rules)
        async for case in self._cases(conn, period, max_seq, self.rules.hotspot_window):
            grids.add(case)
        return grids.measures()

    async def compute(
        self, conn: asyncpg.Connection, kind: SubjectKind, label: str, *, rebuild: bool = False
    ) -> Outcome | None:
        """Recompute one period in the caller's transaction; publish what changed.

        None when there is nothing to do: a frozen period (unless `rebuild`)."""
        period = period_for(kind, label, self.tz)
        now = self.clock()
        ended = now >= period.end + self.freeze_grace
        if ended and not await conn.fetchval(
            "SELECT final FROM period_state WHERE kind = $1 AND period = $2", kind.value, label
        ):
            # Freezing: the exclusive lock before the period's row. Recording holds the
            # shared lock while it marks period rows; the other order deadlocks with it.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", FREEZE_LOCK)
        await conn.execute(
            "INSERT INTO period_state (kind, period) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            kind.value,
            label,
        )
        state = await conn.fetchrow(
            "SELECT * FROM period_state WHERE kind = $1 AND period = $2 FOR UPDATE",
            kind.value,
            label,
        )
        assert state is not None
        if state["final"] and not rebuild:
            return None
        freezing = not state["final"] and ended
        if state["final"]:
            max_seq, max_checkin = state["frozen_event_seq"], state["frozen_checkin_seq"]
        elif freezing:
            max_seq = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM event")
            max_checkin = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM checkin")
        else:
            max_seq = max_checkin = None
        final = bool(state["final"]) or freezing
        old = {
            r["code"]: row_from_record(r)
            for r in await conn.fetch(
                "SELECT * FROM score WHERE kind = $1 AND period = $2", kind.value, label
            )
        }
        final_rows = {c: r for c, r in old.items() if r.final} if state["final"] else {}
        measures = await self._measures(conn, kind, period, now, max_seq, max_checkin, final_rows)
        weights = self.weights[kind]
        ranked = rank({code: composite(m, weights) for code, m in measures.items()})
        changed: list[tuple[tuple[Any, ...], outbox.EventRow]] = []
        for code, values in measures.items():
            r = ranked[code]
            row = ScoreRow(kind, label, code, values, r.composite, r.rank, r.rank_of, final, now)
            previous = old.pop(code, None)
            if previous is not None and previous.same_numbers(row):
                continue
            message = row.message()
            sent = outbox.event_row(
                source=SOURCE, topic=SCORES_UPDATES, key=message.key, payload=message
            )
            changed.append(
                ((kind.value, label, code, _measures_json(values), row.composite, row.rank,
                  row.rank_of, final, now), sent)
            )  # fmt: skip
        # Each row with its ScoreUpdated, all in one pipelined round trip.
        await outbox.write_many(conn, _WRITE_SCORE, changed)
        for code in old:  # subjects with no facts left in the period (e.g. an undone relocation)
            await conn.execute(
                "DELETE FROM score WHERE kind = $1 AND period = $2 AND code = $3",
                kind.value,
                label,
                code,
            )
        await conn.execute(
            """UPDATE period_state SET computed_version = $3, computed_at = $4, final = $5,
                 frozen_at = CASE WHEN $6 THEN $4 ELSE frozen_at END,
                 frozen_event_seq = coalesce(frozen_event_seq, $7),
                 frozen_checkin_seq = coalesce(frozen_checkin_seq, $8)
               WHERE kind = $1 AND period = $2""",
            kind.value,
            label,
            state["version"],
            now,
            final,
            freezing,
            max_seq if final else None,
            max_checkin if final else None,
        )
        return Outcome(kind, label, len(measures), len(changed), final)

    # -- the loop ----------------------------------------------------------------------

    async def due_periods(
        self, conn: asyncpg.Connection, refresh: timedelta
    ) -> list[tuple[SubjectKind, str]]:
        """Periods to compute now: dirty ones, running ones not refreshed lately (deadlines
        pass without events), and ended ones waiting to freeze."""
        now = self.clock()
        for kind in SubjectKind:
            await conn.execute(
                "INSERT INTO period_state (kind, period) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                kind.value,
                periods_touching(kind, now, now, self.tz)[0],
            )
        rows = await conn.fetch(
            """SELECT kind, period FROM period_state WHERE NOT final AND (
                 version > computed_version OR computed_at IS NULL OR computed_at < $1)
               ORDER BY kind, period""",
            now - refresh,
        )
        result = []
        for r in rows:
            kind = SubjectKind(r["kind"])
            result.append((kind, r["period"]))
        ended = await conn.fetch("SELECT kind, period FROM period_state WHERE NOT final")
        for r in ended:
            kind = SubjectKind(r["kind"])
            ended_at = period_for(kind, r["period"], self.tz).end
            if now >= ended_at + self.freeze_grace and (kind, r["period"]) not in result:
                result.append((kind, r["period"]))
        return result

    async def run_once(
        self, pool: asyncpg.Pool, redis: aioredis.Redis | None, refresh: timedelta
    ) -> list[Outcome]:
        async with pool.acquire() as conn:
            due = await self.due_periods(conn, refresh)
        outcomes = []
        for kind, label in due:
            if time.monotonic() < self._next_pass.get((kind, label), 0.0):
                continue  # its last pass was long: it waits, so scoring's CPU stays bounded
            started = time.monotonic()
            async with pool.acquire() as conn, conn.transaction():
                outcome = await self.compute(conn, kind, label)
            finished = time.monotonic()
            self._next_pass[(kind, label)] = finished + self.pass_spacing * (finished - started)
            if outcome is None or outcome.final:
                self._next_pass.pop((kind, label), None)  # frozen: never computed again
            if outcome is None:
                continue
            outcomes.append(outcome)
            if redis is not None and outcome.changed:
                await refresh_ranking(pool, redis, kind, label)
        return outcomes

    async def run(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis | None,
        *,
        tick_s: float,
        refresh: timedelta,
        directory: GridDirectory | None = None,
        households_every: timedelta = timedelta(minutes=5),
    ) -> None:
        synced_at: datetime | None = None
        while True:
            try:
                if directory is not None and (
                    synced_at is None or self.clock() - synced_at >= households_every
                ):
                    async with pool.acquire() as conn, conn.transaction():
                        await self.sync_households(conn, directory.households())
                    synced_at = self.clock()
                await self.run_once(pool, redis, refresh)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scoring pass failed; retrying next tick")
            await asyncio.sleep(tick_s)


async def refold(
    conn: asyncpg.Connection, case_ids: Sequence[UUID], max_seq: int | None = None
) -> list[CaseFacts]:
    """The cases' facts folded from their stored events (up to `max_seq`); a case with no
    such event is left out."""
    records = await conn.fetch(
        """SELECT case_id, type, payload FROM event
           WHERE case_id = ANY($1::uuid[]) AND ($2::bigint IS NULL OR seq <= $2)
           ORDER BY case_id, seq""",
        case_ids,
        max_seq,
    )
    by_case: dict[UUID, list[CaseEvent]] = {}
    for record in records:
        by_case.setdefault(record["case_id"], []).append(stored_event(record))
    return [fold(case_id, events) for case_id, events in by_case.items()]


async def refold_case(conn: asyncpg.Connection, case_id: UUID) -> CaseFacts:
    """A case's facts folded from every event of it this transaction sees."""
    (facts,) = await refold(conn, [case_id]) or [CaseFacts(case_id)]
    return facts


def stored_event(record: asyncpg.Record) -> CaseEvent:
    """A row of the event table (its `type` and `payload`) as the case event it stores."""
    event = payload_class(record["type"]).model_validate(record["payload"])
    assert isinstance(event, CaseEvent)
    return event


class PeriodFrozenError(Exception):
    """The period a fact belongs to is frozen: it cannot change any more."""


# -- rankings in Redis (rebuilt from PostgreSQL whenever missing) -------------------------


async def refresh_ranking(
    pool: asyncpg.Pool, redis: aioredis.Redis, kind: SubjectKind, period: str
) -> list[tuple[str, Decimal]]:
    """Rewrite one ranking's sorted set from the score table; its (code, composite)s."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT code, composite FROM score WHERE kind = $1 AND period = $2 "
            "AND composite IS NOT NULL",
            kind.value,
            period,
        )
    entries = [(r["code"], r["composite"]) for r in rows]
    key = ranking_key(kind, period)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        if entries:
            pipe.zadd(key, {code: float(value) for code, value in entries})
        await pipe.execute()
    return entries


async def ranking(
    pool: asyncpg.Pool, redis: aioredis.Redis, kind: SubjectKind, period: str
) -> list[tuple[int, str, Decimal]]:
    """(rank, code, composite), best first; equal composites share a rank and are listed
    by code. Read from Redis; rebuilt from PostgreSQL when Redis lost it."""
    key = ranking_key(kind, period)
    raw: list[Any] = list(await redis.zrange(key, 0, -1, desc=True, withscores=True))
    if raw:
        entries = [
            (m.decode() if isinstance(m, bytes) else str(m), Decimal(str(s)).quantize(CENT))
            for m, s in raw
        ]
    else:
        entries = await refresh_ranking(pool, redis, kind, period)
    entries.sort(key=lambda cv: (-cv[1], cv[0]))
    result: list[tuple[int, str, Decimal]] = []
    previous: Decimal | None = None
    position = 0
    for index, (code, value) in enumerate(entries, start=1):
        if value != previous:
            position, previous = index, value
        result.append((position, code, value))
    return result
