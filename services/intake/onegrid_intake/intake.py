"""Accepting a report: the one code path behind `POST /v1/reports` and `intake.reports.v1`.

The report, its case, its reporter, the case number and the CaseReported event are
written by one statement, so they commit together or not at all: on its own over HTTP, or
in the consumer's inbox transaction for a gateway report.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from onegrid_common import db, outbox
from onegrid_common.adapters.sealed import seal
from onegrid_common.pii import EncryptedValue as SealedValue
from onegrid_common.pii import PiiCipher, mask_id_number, mask_name, mask_phone
from onegrid_contracts.cases import CaseReported
from onegrid_contracts.catalogue import CASES_EVENTS
from onegrid_contracts.primitives import (
    Actor,
    ActorKind,
    Applicant,
    EncryptedValue,
    Location,
    ReporterRef,
)
from onegrid_contracts.reports import ReportBody, ReporterInput, ReportReceipt
from onegrid_intake.domain.case_no import (
    MAX_DAILY_SEQUENCE,
    SequenceExhaustedError,
    format_case_no,
)
from onegrid_intake.domain.dedup import OpenCase, choose_duplicate, dedup_enabled, lock_keys
from onegrid_intake.domain.ports import CategoryRule, Registry
from onegrid_intake.domain.reports import (
    Assessment,
    FieldError,
    applicant_errors,
    assess,
    fingerprint,
    reporter_id,
)
from onegrid_intake.geo import OpenCaseIndex

log = logging.getLogger(__name__)

SOURCE = "intake"


def phone_aad(reporter: str) -> bytes:
    """Associated data of the phone sealed into events: the notification service opens it
    with the reporter_id of the event's ReporterRef."""
    return b"onegrid.reporter.phone:" + reporter.encode()


def _aad(column: str, report_id: UUID) -> bytes:
    return f"intake.report.{column}:{report_id}".encode()


class InvalidReportError(Exception):
    """The report names something the registry does not know; each bad field named."""

    def __init__(self, errors: tuple[FieldError, ...]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class IdempotencyConflictError(Exception):
    """The idempotency key was used before for a different report."""


@dataclass(frozen=True)
class Submission:
    report: Any  # ReportBody or ChannelReport: the same report fields
    scope: str  # who the idempotency key belongs to: "http:<subject>" or "gateway:<name>"
    key: str
    submitted_by: str | None = None
    gateway: str | None = None
    # The trace the CaseReported event continues; None: the current one (a gateway
    # report's consumer span). A batch is written outside its requests' contexts.
    traceparent: str | None = None


@dataclass(frozen=True)
class Accepted:
    receipt: ReportReceipt
    replayed: bool  # the same report was accepted before under this key


def _contract_sealed(value: SealedValue) -> EncryptedValue:
    return EncryptedValue(
        key_id=value.key_id,
        nonce=base64.b64encode(value.nonce).decode(),
        ciphertext=base64.b64encode(value.ciphertext).decode(),
    )


def _replay(row: asyncpg.Record, sub: Submission, print_: str) -> Accepted:
    """The first answer to a key used before, if it was used for the same report."""
    if row["fingerprint"] != print_:
        raise IdempotencyConflictError(
            f"idempotency key {sub.key!r} was used for a different report ({row['report_id']})"
        )
    receipt = ReportReceipt(
        report_id=row["report_id"],
        case_id=row["case_id"],
        case_no=row["case_no"],
        duplicate_of=row["duplicate_of"],
    )
    return Accepted(receipt, replayed=True)


# The report ($1-$22) and its reporter ($23 anonymous, $24 phone) rows; $6 is the case
# number, null when a new case gets its number in the same statement. The CaseReported
# event goes to the outbox in the same statement ($25-$28: topic, key, headers, payload).
_REPORT_ROWS = """
new_report AS (
  INSERT INTO report (report_id, idempotency_scope, idempotency_key, fingerprint, case_id,
    case_no, duplicate_of, channel, submitted_by, gateway, reporter_id, name_encrypted,
    phone_encrypted, id_number_encrypted, pii_key_id, category_code, category_confidence,
    grid_code, grid_path, review_reasons, report, received_at)
  SELECT $1, $2, $3, $4, $5, coalesce($6, no.case_no), $7, $8, $9, $10, $11, $12, $13, $14,
    $15, $16, $17, $18, $19, $20, $21, $22
  FROM no RETURNING case_no),
new_reporter AS (
  INSERT INTO case_reporter AS cr (case_id, reporter_id, first_report_id, last_report_id,
    anonymous, phone_encrypted, joined_at)
  SELECT $5, $11, $1, $1, $23, $24, $22 FROM no
  ON CONFLICT (case_id, reporter_id) DO UPDATE
  SET last_report_id = excluded.last_report_id, reports = cr.reports + 1),
event AS (
  SELECT outbox_enqueue($25, $26, $27, {payload}) AS id FROM no)
"""

_INSERT_REPORT = (
    "WITH no AS (SELECT $6::text AS case_no),"
    + _REPORT_ROWS.format(payload="$28")
    + "SELECT new_report.case_no FROM new_report, event"
)

# $29 day, $30 case number prefix, $31 lon, $32 lat. The event was built before the number
# existed: the statement writes the number into its payload.
_INSERT_NEW_CASE = (
    "WITH seq AS ("
    " INSERT INTO case_no_counter AS c (day, last_sequence) VALUES ($29, 1)"
    " ON CONFLICT (day) DO UPDATE SET last_sequence = c.last_sequence + 1"
    " RETURNING last_sequence),"
    " no AS (SELECT $30 || lpad(last_sequence::text, 6, '0') AS case_no FROM seq),"
    " new_case AS ("
    " INSERT INTO case_ (case_id, case_no, category_code, grid_code, lon, lat, reported_at)"
    " SELECT $5, no.case_no, $16, $18, $31, $32, $22 FROM no),"
    + _REPORT_ROWS.format(
        payload="convert_to(jsonb_set(convert_from($28, 'UTF8')::jsonb, '{case_no}',"
        " to_jsonb(no.case_no))::text, 'UTF8')"
    )
    + "SELECT no.case_no FROM no, event"
)
# A batch's reports with their case numbers taken before ($6): $29 whether the report
# opens its case, $30 lon, $31 lat.
_INSERT_NUMBERED = (
    "WITH no AS (SELECT $6::text AS case_no),"
    " new_case AS ("
    " INSERT INTO case_ (case_id, case_no, category_code, grid_code, lon, lat, reported_at)"
    " SELECT $5, $6, $16, $18, $30, $31, $22 WHERE $29),"
    + _REPORT_ROWS.format(payload="$28")
    + "SELECT new_report.case_no FROM new_report, event"
)
# The next $2 numbers of day $1: the last one taken.
_TAKE_NUMBERS = (
    "INSERT INTO case_no_counter AS c (day, last_sequence) VALUES ($1, $2)"
    " ON CONFLICT (day) DO UPDATE SET last_sequence = c.last_sequence + $2"
    " RETURNING last_sequence"
)
_LOCK_FOR_TRANSACTION = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k"
# A batch's duplicate locks ($3) taken, and the earlier answers to its keys ($1, $2) read,
# in one round trip: the lock count is one row, so the locks are taken whatever is found
# (a row with a null report_id: no key was used before).
_LOCK_AND_READ_EARLIER = (
    "WITH wanted AS (SELECT * FROM unnest($1::text[], $2::text[]) AS w(scope, key))"
    " SELECT r.report_id, r.case_id, r.case_no, r.duplicate_of, r.fingerprint,"
    " r.idempotency_scope, r.idempotency_key"
    " FROM (SELECT count(pg_advisory_xact_lock(k)) FROM unnest($3::bigint[]) AS k) AS locked"
    " LEFT JOIN (report r JOIN wanted"
    " ON r.idempotency_scope = wanted.scope AND r.idempotency_key = wanted.key) ON true"
)
# migration 0002: the counter cannot pass the format's six digits
_DAILY_LIMIT = "case_no_counter_daily_limit"
_IDEMPOTENCY_KEY = "report_idempotency_scope_idempotency_key_key"


def _exhausted(exc: asyncpg.CheckViolationError, day: date) -> Exception:
    if exc.constraint_name != _DAILY_LIMIT:
        return cast(Exception, exc)
    return SequenceExhaustedError(f"more than {MAX_DAILY_SEQUENCE} cases on {day}")


@contextlib.asynccontextmanager
async def _duplicate_locks(conn: asyncpg.Connection, keys: list[int]) -> AsyncIterator[None]:
    """One matter, one file: reports of one category near one another are decided one at a
    time (advisory locks on the cells around the point, held until the report is
    committed), so two simultaneous reports of the same matter cannot both open a case;
    reports far apart do not wait on each other. In the caller's transaction the locks
    end with it; outside one (HTTP: the write commits on its own) they are released here.
    """
    if not keys:
        yield
    elif conn.is_in_transaction():
        await conn.execute(_LOCK_FOR_TRANSACTION, keys)
        yield
    else:
        db.mark_session_state(conn)  # unlocked below; by the pool's reset if that cannot run
        await conn.execute("SELECT pg_advisory_lock(k) FROM unnest($1::bigint[]) AS k", keys)
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock(k) FROM unnest($1::bigint[]) AS k", keys)


@dataclass(frozen=True)
class _Checked:
    """A report past its checks: everything its write needs except its case."""

    sub: Submission
    print_: str
    assessment: Assessment
    report_id: UUID
    lon: float | None
    lat: float | None

    @property
    def category_code(self) -> str | None:
        category = self.assessment.category
        return category.code if category is not None else None

    @property
    def search_rule(self) -> CategoryRule | None:
        """The category's duplicate rule when this report must look for its open case."""
        category = self.assessment.category
        if category is None or not dedup_enabled(category) or self.lon is None:
            return None
        return category

    def duplicate_lock_keys(self) -> list[int]:
        rule = self.search_rule
        if rule is None or self.lon is None or self.lat is None:
            return []
        return lock_keys(rule.code, rule.duplicate_radius_m, self.lon, self.lat)


def _confirmed(
    rule: CategoryRule, ids: Sequence[UUID], cases: dict[UUID, asyncpg.Record]
) -> tuple[list[OpenCase], list[UUID]]:
    """The index's candidates as PostgreSQL has them, and the entries to drop from the
    category's index: cases ended or recategorised, and cases that were never committed
    (their writer held the same duplicate locks and is done: it failed)."""
    candidates: list[OpenCase] = []
    stale: list[UUID] = []
    for case_id in ids:
        row = cases.get(case_id)
        if row is None or not row["open"] or row["category_code"] != rule.code:
            stale.append(case_id)
        elif row["lon"] is not None:
            candidates.append(
                OpenCase(case_id, row["category_code"], row["lon"], row["lat"], row["reported_at"])
            )
    return candidates, stale


_CASES = (
    "SELECT case_id, case_no, category_code, lon, lat, reported_at, open"
    " FROM case_ WHERE case_id = ANY($1::uuid[])"
)


class Intake:
    def __init__(
        self,
        *,
        registry: Registry,
        cipher: PiiCipher,
        reporter_key: bytes,
        index: OpenCaseIndex,
        city_code: str,
        timezone: str,
        min_confidence: float,
    ) -> None:
        self.registry = registry
        self._cipher = cipher
        self._reporter_key = reporter_key
        self._index = index
        self._city_code = city_code
        self._tz = ZoneInfo(timezone)
        self._min_confidence = min_confidence

    async def previous(
        self, conn: asyncpg.Connection, sub: Submission, print_: str
    ) -> Accepted | None:
        row = await conn.fetchrow(
            "SELECT report_id, case_id, case_no, duplicate_of, fingerprint FROM report"
            " WHERE idempotency_scope = $1 AND idempotency_key = $2",
            sub.scope,
            sub.key,
        )
        return None if row is None else _replay(row, sub, print_)

    def fingerprint(self, sub: Submission) -> str:
        return fingerprint(sub.report.model_dump(mode="json"))

    def _check(self, sub: Submission, print_: str) -> _Checked:
        report = sub.report
        loc = report.location
        lon, lat = (loc.lon, loc.lat) if loc is not None else (None, None)
        assessment = assess(
            registry=self.registry,
            lon=lon,
            lat=lat,
            grid_code=report.grid_code,
            category_code=report.category_code,
            description=report.description,
            min_confidence=self._min_confidence,
        )
        errors = assessment.errors + applicant_errors(assessment.category, report.reporter)
        if errors:
            raise InvalidReportError(errors)
        if lon is None or lat is None:
            lon = lat = None
        return _Checked(sub, print_, assessment, uuid.uuid4(), lon, lat)

    async def accept(self, conn: asyncpg.Connection, sub: Submission) -> Accepted:
        """Accept one report: committed on return, or with the caller's open transaction."""
        print_ = self.fingerprint(sub)
        earlier = await self.previous(conn, sub, print_)
        if earlier is not None:
            return earlier
        checked = self._check(sub, print_)
        now = datetime.now(self._tz)
        async with _duplicate_locks(conn, checked.duplicate_lock_keys()):
            found = await self._find_duplicate(conn, checked, now)
            case_no: str | None
            duplicate_of: UUID | None
            if found is not None:  # one matter, one file: this report joins that case
                case_id, case_no = found
                duplicate_of = case_id
            else:
                case_id, case_no, duplicate_of = uuid.uuid4(), None, None
                code, lon, lat = checked.category_code, checked.lon, checked.lat
                if code is not None and lon is not None and lat is not None:
                    # While the duplicate locks are held: the next report here must find
                    # this case. Should the write fail, the entry is stale and harmless
                    # (every candidate is confirmed in PostgreSQL).
                    await self._index.add(case_id, code, lon, lat)
            args = self._write_args(checked, case_id, case_no, duplicate_of, now)
            # One statement writes the case, report, reporter and event; outside a
            # transaction it commits on its own. A new case takes the day's counter row in
            # it, so the row stays locked only while PostgreSQL runs and commits that
            # statement, never across a round trip to this process (a rollback gives the
            # number back: no gaps).
            if case_no is None:
                day = now.date()
                try:
                    case_no = await conn.fetchval(
                        _INSERT_NEW_CASE, *args, day, f"{self._city_code}-{day:%Y%m%d}-",
                        checked.lon, checked.lat,
                    )  # fmt: skip
                except asyncpg.CheckViolationError as exc:
                    raise _exhausted(exc, day) from None
            else:
                await conn.execute(_INSERT_REPORT, *args)
            await outbox.written(conn)
        receipt = ReportReceipt(
            report_id=checked.report_id, case_id=case_id, case_no=case_no,
            duplicate_of=duplicate_of,
        )  # fmt: skip
        return Accepted(receipt, replayed=False)

    async def accept_alone(self, pool: asyncpg.Pool, sub: Submission) -> Accepted:
        """One report on a connection of its own, committed on return."""
        try:
            async with pool.acquire() as conn:
                return await self.accept(conn, sub)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != _IDEMPOTENCY_KEY:
                raise
        # The same key raced in from another request and committed first: answer as it did.
        async with pool.acquire() as conn:
            earlier = await self.previous(conn, sub, self.fingerprint(sub))
        assert earlier is not None
        return earlier

    async def accept_many(
        self, pool: asyncpg.Pool, subs: Sequence[Submission]
    ) -> list[Accepted | Exception]:
        """Accept reports together, in one transaction (group commit): one answer each.

        A report's own error (bad field, reused key) is its answer alone. Should the batch
        fail as a whole (a key racing in from elsewhere, the day's numbers running out, a
        lost connection), nothing of it is kept and each report is accepted on its own, so
        one report cannot cost its neighbours their answer. A key given twice in a batch
        is answered after the batch, as the resend it is."""
        answers: list[Accepted | Exception | None] = [None] * len(subs)
        first: dict[tuple[str, str], int] = {}
        alone: list[int] = []
        for n, sub in enumerate(subs):
            if (sub.scope, sub.key) in first:
                alone.append(n)
            else:
                first[sub.scope, sub.key] = n
        together = list(first.values())
        try:
            async with pool.acquire() as conn, conn.transaction():
                await self._accept_batch(conn, [(n, subs[n]) for n in together], answers)
        except Exception:
            log.warning("a batch of %d reports failed; accepting each alone", len(together),
                        exc_info=True)  # fmt: skip
            alone = sorted([*together, *alone])
        for n in alone:
            try:
                answers[n] = await self.accept_alone(pool, subs[n])
            except Exception as exc:  # this report's own answer
                answers[n] = exc
        return [a if a is not None else RuntimeError("no answer") for a in answers]

    async def _accept_batch(
        self,
        conn: asyncpg.Connection,
        items: list[tuple[int, Submission]],
        answers: list[Accepted | Exception | None],
    ) -> None:
        """The reports' writes in the caller's transaction; answers filled in by position."""
        # Checked before the earlier answers are known, so that one statement takes the
        # duplicate locks and reads them; a replay's check is not used (its first answer
        # stands even if the registry has changed since).
        prints = [self.fingerprint(sub) for _, sub in items]
        checks: list[_Checked | InvalidReportError] = []
        for (_, sub), print_ in zip(items, prints, strict=True):
            try:
                checks.append(self._check(sub, print_))
            except InvalidReportError as exc:
                checks.append(exc)
        # Every report's duplicate locks at once, sorted: batches cannot deadlock.
        locks = sorted(
            {key for c in checks if isinstance(c, _Checked) for key in c.duplicate_lock_keys()}
        )
        earlier = {
            (row["idempotency_scope"], row["idempotency_key"]): row
            for row in await conn.fetch(
                _LOCK_AND_READ_EARLIER,
                [sub.scope for _, sub in items],
                [sub.key for _, sub in items],
                locks,
            )
            if row["report_id"] is not None
        }
        checked: list[tuple[int, _Checked]] = []
        for (n, sub), print_, check in zip(items, prints, checks, strict=True):
            row = earlier.get((sub.scope, sub.key))
            try:
                if row is not None:
                    answers[n] = _replay(row, sub, print_)
                elif isinstance(check, InvalidReportError):
                    answers[n] = check
                else:
                    checked.append((n, check))
            except IdempotencyConflictError as exc:
                answers[n] = exc
        if not checked:
            return

        now = datetime.now(self._tz)
        searching = [c for _, c in checked if c.search_rule is not None]
        found = await self._index.search_many(
            [(c.search_rule.code, c.lon, c.lat, c.search_rule.duplicate_radius_m)
             for c in searching if c.search_rule is not None and c.lon is not None
             and c.lat is not None]
        )  # fmt: skip
        found_by_report = {c.report_id: ids for c, ids in zip(searching, found, strict=True)}
        wanted = {case_id for ids in found for case_id in ids}
        cases = {r["case_id"]: r for r in await conn.fetch(_CASES, wanted)} if wanted else {}

        # Decided in order; a report may join a case an earlier report of the batch opened.
        numbers: dict[UUID, str | None] = {case_id: r["case_no"] for case_id, r in cases.items()}
        opened_here: list[OpenCase] = []
        new_cases: list[UUID] = []
        decided: list[tuple[int, _Checked, UUID, UUID | None]] = []
        additions: list[tuple[UUID, str, float, float]] = []
        stale: list[tuple[UUID, str]] = []
        for n, c in checked:
            chosen: OpenCase | None = None
            rule = c.search_rule
            if rule is not None and c.lon is not None and c.lat is not None:
                candidates, gone = _confirmed(rule, found_by_report[c.report_id], cases)
                stale += [(case_id, rule.code) for case_id in gone]
                candidates += opened_here
                chosen = choose_duplicate(
                    rule=rule, lon=c.lon, lat=c.lat, at=now, candidates=candidates
                )
            if chosen is not None:
                decided.append((n, c, chosen.case_id, chosen.case_id))
                continue
            case_id = uuid.uuid4()
            new_cases.append(case_id)
            decided.append((n, c, case_id, None))
            code = c.category_code
            if code is not None and c.lon is not None and c.lat is not None:
                additions.append((case_id, code, c.lon, c.lat))
                opened_here.append(OpenCase(case_id, code, c.lon, c.lat, now))
        # The index is updated while the rows are written: both before the commit, which
        # ends the duplicate locks (the next report here must find these cases). Both are
        # awaited to their end before a failure is raised: the transaction is not rolled
        # back while a statement is still running on its connection.
        outcomes = await asyncio.gather(
            self._index.update(additions, stale),
            self._write_numbered(conn, decided, new_cases, numbers, now),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        for n, c, case_id, duplicate_of in decided:
            receipt = ReportReceipt(
                report_id=c.report_id, case_id=case_id, case_no=numbers[case_id],
                duplicate_of=duplicate_of,
            )  # fmt: skip
            answers[n] = Accepted(receipt, replayed=False)

    async def _write_numbered(
        self,
        conn: asyncpg.Connection,
        decided: list[tuple[int, _Checked, UUID, UUID | None]],
        new_cases: list[UUID],
        numbers: dict[UUID, str | None],
        now: datetime,
    ) -> None:
        """The new cases' numbers (filled into `numbers`), then every report's rows."""
        day = now.date()
        if new_cases:
            try:
                last = await conn.fetchval(_TAKE_NUMBERS, day, len(new_cases))
            except asyncpg.CheckViolationError as exc:
                raise _exhausted(exc, day) from None
            for offset, case_id in enumerate(new_cases):
                sequence = last - len(new_cases) + 1 + offset
                numbers[case_id] = format_case_no(self._city_code, day, sequence)
        rows = []
        for _, c, case_id, duplicate_of in decided:
            args = self._write_args(c, case_id, numbers[case_id], duplicate_of, now)
            rows.append((*args, duplicate_of is None, c.lon, c.lat))
        await conn.executemany(_INSERT_NUMBERED, rows)
        await outbox.written(conn)

    def _write_args(
        self,
        checked: _Checked,
        case_id: UUID,
        case_no: str | None,
        duplicate_of: UUID | None,
        now: datetime,
    ) -> tuple[Any, ...]:
        """The report's row arguments ($1-$28), its CaseReported event among them."""
        sub, report, report_id = checked.sub, checked.sub.report, checked.report_id
        assessment, category = checked.assessment, checked.assessment.category
        grid = assessment.grid
        lon, lat, loc = checked.lon, checked.lat, report.location
        reporter: ReporterInput | None = report.reporter
        rid = reporter_id(
            self._reporter_key, reporter, subject=sub.submitted_by, report_id=str(report_id)
        )
        sealed: dict[str, str | None] = {"name": None, "phone": None, "id_number": None}
        if reporter is not None:
            for column in sealed:
                value = getattr(reporter, column)
                if value:
                    sealed[column] = self._cipher.encrypt(
                        value, associated_data=_aad(column, report_id)
                    ).to_string()
        ref = self._seal_phone(
            self._reporter_ref(rid, reporter), reporter.phone if reporter is not None else None
        )
        event = CaseReported(
            case_id=case_id,
            # A new case's number may be taken in the write itself, which puts it here.
            case_no=case_no or f"{self._city_code}-{now:%Y%m%d}-000000",
            actor=self._actor(rid, reporter),
            at=now,
            report_id=report_id,
            channel=report.channel,
            category_code=checked.category_code,
            category_confidence=assessment.category_confidence,
            location=Location(lon=lon, lat=lat, address=loc.address)
            if loc is not None and lon is not None and lat is not None
            else None,
            grid_code=grid.code if grid else None,
            grid_path=grid.path if grid else (),
            description=report.description,
            occurred_at=report.occurred_at,
            reporter=ref,
            attachments=report.attachments,
            resolved_on_site=report.resolved_on_site,
            duplicate_of=duplicate_of,
            review_reasons=assessment.review_reasons,
            applicant=self._applicant(case_id, category, reporter),
        )
        row = outbox.event_row(
            source=SOURCE, topic=CASES_EVENTS, key=str(case_id), payload=event,
            traceparent=sub.traceparent,
        )  # fmt: skip
        stored = report.model_dump(mode="json", include=set(ReportBody.model_fields))
        stored["reporter"] = self._masked_reporter(rid, reporter)
        return (
            report_id, sub.scope, sub.key, checked.print_, case_id, case_no, duplicate_of,
            report.channel.value, sub.submitted_by, sub.gateway, rid,
            sealed["name"], sealed["phone"], sealed["id_number"],
            self._cipher.primary_key_id if any(sealed.values()) else None,
            checked.category_code, assessment.category_confidence,
            grid.code if grid else None, list(grid.path) if grid else [],
            [r.value for r in assessment.review_reasons], stored, now,
            ref.anonymous, sealed["phone"],
            *row.args,
        )  # fmt: skip

    async def _find_duplicate(
        self, conn: asyncpg.Connection, checked: _Checked, now: datetime
    ) -> tuple[UUID, str] | None:
        """The id and number of the open case this report joins; drops stale index entries."""
        rule, lon, lat = checked.search_rule, checked.lon, checked.lat
        if rule is None or lon is None or lat is None:
            return None
        ids = await self._index.search(rule.code, lon, lat, rule.duplicate_radius_m)
        if not ids:
            return None
        cases = {r["case_id"]: r for r in await conn.fetch(_CASES, ids)}
        candidates, stale = _confirmed(rule, ids, cases)
        if stale:
            await self._index.update([], [(case_id, rule.code) for case_id in stale])
        chosen = choose_duplicate(rule=rule, lon=lon, lat=lat, at=now, candidates=candidates)
        if chosen is None:
            return None
        return chosen.case_id, cases[chosen.case_id]["case_no"]

    @staticmethod
    def _reporter_ref(rid: str, reporter: ReporterInput | None) -> ReporterRef:
        if reporter is None or reporter.anonymous:
            return ReporterRef(reporter_id=rid, anonymous=True)
        return ReporterRef(
            reporter_id=rid,
            anonymous=False,
            masked_name=mask_name(reporter.name) if reporter.name else None,
            masked_phone=mask_phone(reporter.phone) if reporter.phone else None,
            phone_encrypted=None,
        )

    def _seal_phone(self, ref: ReporterRef, phone: str | None) -> ReporterRef:
        if phone is None or ref.anonymous:
            return ref
        sealed = self._cipher.encrypt(phone, associated_data=phone_aad(ref.reporter_id))
        return ref.model_copy(update={"phone_encrypted": _contract_sealed(sealed)})

    def _applicant(
        self, case_id: UUID, rule: CategoryRule | None, reporter: ReporterInput | None
    ) -> Applicant | None:
        """The reporter as the applicant of a service request, sealed for the lead unit's
        adapter (associated data binds each value to this case and field)."""
        if rule is None or not rule.requires_id_number or reporter is None:
            return None
        if not reporter.name or not reporter.id_number:
            return None

        def sealed(value: str, field: str) -> EncryptedValue:
            return seal(self._cipher, value, case_id=case_id, field=field)

        return Applicant(
            masked_name=mask_name(reporter.name),
            masked_phone=mask_phone(reporter.phone) if reporter.phone else None,
            name=sealed(reporter.name, "name"),
            id_number=sealed(reporter.id_number, "id_number"),
            phone=sealed(reporter.phone, "phone") if reporter.phone else None,
        )

    @staticmethod
    def _masked_reporter(rid: str, reporter: ReporterInput | None) -> dict[str, Any]:
        if reporter is None:
            return {"reporter_id": rid, "anonymous": True}
        return {
            "reporter_id": rid,
            "anonymous": reporter.anonymous,
            "masked_name": mask_name(reporter.name) if reporter.name else None,
            "masked_phone": mask_phone(reporter.phone) if reporter.phone else None,
            "masked_id_number": mask_id_number(reporter.id_number) if reporter.id_number else None,
            "staff_code": reporter.staff_code,
        }

    @staticmethod
    def _actor(rid: str, reporter: ReporterInput | None) -> Actor:
        name = mask_name(reporter.name) if reporter is not None and reporter.name else None
        if reporter is not None and reporter.staff_code:
            return Actor(kind=ActorKind.GRID_WORKER, id=reporter.staff_code, name=name)
        return Actor(kind=ActorKind.REPORTER, id=rid, name=name)
