"""The scoring service against the real broker, PostgreSQL and Redis: the scripted month
is published as case events, the service's HTTP answers and its ScoreUpdated messages
are checked against the numbers computed by hand (test_scoring_scripted_month.py), then
Redis is flushed, scores are rebuilt, and November is frozen with a late event.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from asgi_lifespan import LifespanManager

from onegrid_common.auth import mint_token
from onegrid_common.producer import OutgoingRecord, Producer
from onegrid_common.service import Runtime, build_app
from onegrid_common.settings import Settings
from onegrid_common.testing.helpers import create_topic
from onegrid_common.testing.helpers import eventually as until
from onegrid_common.testing.plugin import PrivateSettings
from onegrid_contracts.cases import CaseEvent
from onegrid_contracts.catalogue import SCORES_UPDATES
from onegrid_contracts.envelope import build_headers, encode_payload, new_envelope
from onegrid_contracts.scores import ScoreUpdated, SubjectKind
from onegrid_scoring.api import Locator
from onegrid_scoring.domain.facts import facts_from_json, fold
from onegrid_scoring.main import make_scorer, make_service
from onegrid_scoring.rebuild import rebuild, rebuild_with
from onegrid_scoring.scorer import FREEZE_LOCK, GridDirectory, Scorer
from onegrid_scoring.settings import ScoringSettings
from onegrid_scoring.testing import (
    CHECKINS,
    G1,
    G2,
    GARBAGE,
    HOUSEHOLDS,
    L1,
    NOW,
    S1,
    S2,
    ScriptedCase,
    nov,
    scripted_month,
)

pytestmark = pytest.mark.integration
D = Decimal


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


class StaticDirectory:
    def households(self) -> dict[str, int]:
        return dict(HOUSEHOLDS)


def locate(lon: float, lat: float) -> set[str] | None:
    # The scripted grids: G1 west of 111.295, G2 east of it.
    return {G1} if lon < 111.295 else {G2}


@dataclass
class Harness:
    settings: Settings
    client: httpx.AsyncClient
    runtime: Runtime
    clock: Clock
    topic: str
    producer: Producer
    cases: list[ScriptedCase] = field(default_factory=list)

    def token(self, *roles: str, subject: str = "tester", grids: tuple[str, ...] = ()) -> str:
        return mint_token(subject, roles, settings=self.settings.security, grid_codes=grids)

    def auth(self, *roles: str, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*roles, **kw)}"}

    async def publish(self, events: list[CaseEvent], *, twice: bool = False) -> None:
        records = []
        for event in events:
            envelope = new_envelope(event, source="dispatch", subject=str(event.case_id))
            record = OutgoingRecord(
                topic=self.topic,
                key=str(event.case_id),
                value=encode_payload(event),
                headers=build_headers(envelope),
            )
            records += [record, record] if twice else [record]
        await self.producer.send_many(records)

    async def scores(self, kind: str, period: str) -> dict[str, dict[str, Any]]:
        response = await self.client.get(
            f"/v1/scores/{kind}", params={"period": period}, headers=self.auth("auditor")
        )
        assert response.status_code == 200, response.text
        return {item["code"]: item for item in response.json()["items"]}

    @property
    def scorer(self) -> Scorer:
        scorer = self.runtime.state["scorer"]
        assert isinstance(scorer, Scorer)
        return scorer


def numbers(items: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        code: (i["measures"], i["composite"], i["rank"], i["rank_of"], i["final"])
        for code, i in items.items()
    }


@pytest.fixture(scope="module")
async def harness(
    private_settings: PrivateSettings, kafka_bootstrap: str
) -> AsyncIterator[Harness]:
    # A database and Redis of its own: scores are whole-schema aggregates, and this month's
    # fake clock freezes periods a real-clock stack elsewhere in the session also scores.
    settings = private_settings()
    tag = uuid.uuid4().hex[:8]
    topic = f"test.scoring-{tag}.cases.v1"
    await create_topic(kafka_bootstrap, topic, partitions=2)
    clock = Clock(NOW)

    async def registry(rt: Runtime) -> tuple[GridDirectory, Locator | None]:
        return StaticDirectory(), locate

    config = ScoringSettings(tick_s=0.2, refresh_s=3600, freeze_grace_s=3600, pass_spacing=0)
    service = make_service(
        registry=registry, settings=config, clock=clock, group_name=f"cases-{tag}", topic=topic
    )
    app = build_app(service, settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scoring") as client:
            producer = Producer(settings.kafka, client_id=f"scoring-test-{tag}")
            await producer.start()
            h = Harness(settings, client, app.state.runtime, clock, topic, producer)
            try:
                h.cases = scripted_month()
                # Every event delivered twice: the second copy must change nothing.
                await h.publish([e for case in h.cases for e in case.events], twice=True)
                for staff, grid, at in CHECKINS:
                    clock.now = at + timedelta(minutes=1)
                    response = await client.post(
                        "/v1/patrols/checkins",
                        json={
                            "grid_code": grid,
                            "location": {"lon": 111.29 if grid == G1 else 111.30, "lat": 30.70},
                            "at": at.isoformat(),
                        },
                        headers=h.auth("grid_worker", subject=staff, grids=(grid,)),
                    )
                    assert response.status_code == 201, response.text
                clock.now = NOW
                # A pass may have run at a check-in's time after the last check-in: time
                # went back to NOW, which the live loop cannot notice by itself.
                async with h.runtime.db.acquire() as conn:
                    await conn.execute("UPDATE period_state SET version = version + 1")

                published = sum(len(case.events) for case in h.cases)
                case_ids = [case.case_id for case in h.cases]

                async def recorded_and_computed_at_now() -> bool:
                    async with h.runtime.db.acquire() as conn:
                        recorded = await conn.fetchval(
                            "SELECT count(*) FROM event WHERE case_id = ANY($1::uuid[])",
                            case_ids,
                        )
                        dirty = await conn.fetchval(
                            "SELECT count(*) FROM period_state"
                            " WHERE NOT final AND version > computed_version"
                        )
                    return bool(recorded == published and dirty == 0)

                await until(recorded_and_computed_at_now)
                yield h
            finally:
                await producer.stop()


async def wait_for_scores(h: Harness) -> dict[str, dict[str, Any]]:
    async def ready() -> dict[str, dict[str, Any]] | None:
        units = await h.scores("units", "2026-Q4")
        urban = units.get("urban")
        done = urban is not None and urban["measures"]["evaluations"] == "4"
        workers = await h.scores("workers", "2026-11")
        patrolled = workers.get(S1, {}).get("measures", {}).get("patrol_checkins") == "4"
        return units if done and patrolled and len(units) == 5 else None

    result: dict[str, dict[str, Any]] = await until(ready, timeout_s=45)
    return result


async def test_http_scores_match_the_hand_computed_month(harness: Harness) -> None:
    units = await wait_for_scores(harness)
    urban = units["urban"]
    # From the hand computation in test_scoring_scripted_month.py.
    assert urban["measures"]["on_time_resolution_rate"] == "0.750000"
    assert urban["measures"]["on_time_response_rate"] == "0.857143"
    assert urban["measures"]["rework_rate"] == "0.400000"
    assert urban["measures"]["satisfaction_rate"] == "0.750000"
    assert urban["measures"]["p90_handling_hours"] == "72.966667"
    assert (urban["composite"], urban["rank"], urban["rank_of"]) == ("79.11", 1, 5)
    assert units["police"]["measures"]["mis_dispatch_rate"] == "1.000000"
    assert units["police"]["measures"]["on_time_resolution_rate"] is None
    assert units["community-420502003001"]["measures"]["supervised_cases"] == "1"
    assert units["community-420502003001"]["rank"] == 5

    workers = await harness.scores("workers", "2026-11")
    assert workers[S1]["measures"]["patrol_rate"] == "0.050000"
    assert workers[S1]["measures"]["on_time_verification_rate"] == "0.666667"
    assert workers[S2]["measures"]["services_on_behalf"] == "1"
    assert workers[S2]["measures"]["average_rating"] is None
    assert [(workers[s]["composite"], workers[s]["rank"]) for s in (S1, S2)] == [
        ("55.46", 1),
        ("44.67", 2),
    ]

    grids = await harness.scores("grids", "2026-11")
    assert grids[G1]["measures"]["cases_per_1000_households"] == "10.000000"
    assert grids[G1]["measures"]["repeat_hotspot_cases"] == "2"
    assert grids[G2]["measures"]["in_grid_resolution_share"] == "0.000000"
    assert [grids[g]["composite"] for g in (G1, G2)] == ["33.33", "32.00"]


async def latest_updates(
    bootstrap: str, keys: set[str], timeout_s: float = 20.0
) -> dict[str, ScoreUpdated]:
    """The latest ScoreUpdated per key among `keys`, once every key has one."""
    consumer = AIOKafkaConsumer(
        SCORES_UPDATES, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    latest: dict[str, ScoreUpdated] = {}
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                for record in part:
                    key = record.key.decode() if record.key else ""
                    if key in keys and record.value is not None:
                        latest[key] = ScoreUpdated.model_validate_json(record.value)
            if set(latest) == keys and not batch:
                break
    finally:
        await consumer.stop()
    return latest


async def test_score_updates_are_published_with_the_service_numbers(
    harness: Harness, kafka_bootstrap: str
) -> None:
    units = await wait_for_scores(harness)
    keys = {
        "unit:urban:2026-Q4",
        "unit:police:2026-Q4",
        f"worker:{S1}:2026-11",
        f"grid:{G1}:2026-11",
    }
    latest = await latest_updates(kafka_bootstrap, keys)
    assert set(latest) == keys
    urban = latest["unit:urban:2026-Q4"]
    assert urban.composite == D("79.11")
    assert (urban.rank, urban.rank_of, urban.final) == (1, 5, False)
    assert urban.measures["on_time_resolution_rate"] == D("0.75")
    expected = {k: D(v) for k, v in units["urban"]["measures"].items() if v is not None}
    assert urban.measures == expected
    police = latest["unit:police:2026-Q4"]
    assert "on_time_resolution_rate" not in police.measures  # null: left out of the message
    assert latest[f"worker:{S1}:2026-11"].measures["patrol_rate"] == D("0.05")


async def test_csv_export_has_a_row_per_subject_and_a_column_per_measure(harness: Harness) -> None:
    await wait_for_scores(harness)
    for request in (
        {"params": {"period": "2026-Q4", "format": "csv"}, "headers": harness.auth("operator")},
        {
            "params": {"period": "2026-Q4"},
            "headers": {**harness.auth("operator"), "Accept": "text/csv"},
        },
    ):
        response = await harness.client.get("/v1/scores/units", **request)  # type: ignore[arg-type]
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        by_code = {r["code"]: r for r in rows}
        assert len(rows) == 5
        assert by_code["urban"]["on_time_resolution_rate"] == "0.750000"
        assert by_code["police"]["on_time_resolution_rate"] == ""  # null
        assert by_code["urban"]["rank"] == "1"


async def test_a_unit_sees_only_its_own_scores(harness: Harness) -> None:
    await wait_for_scores(harness)
    own = await harness.client.get(
        "/v1/scores/units", params={"period": "2026-Q4"}, headers=harness.auth("unit:urban")
    )
    assert own.status_code == 200
    assert [i["code"] for i in own.json()["items"]] == ["urban"]
    other = await harness.client.get(
        "/v1/scores/units",
        params={"period": "2026-Q4", "code": "urban"},
        headers=harness.auth("unit:police"),
    )
    assert other.status_code == 403
    ranking = await harness.client.get("/v1/rankings/units", headers=harness.auth("unit:urban"))
    assert ranking.status_code == 403
    worker = await harness.client.get(
        "/v1/scores/workers",
        params={"period": "2026-11"},
        headers=harness.auth("grid_worker", subject=S2, grids=(G2,)),
    )
    assert [i["code"] for i in worker.json()["items"]] == [S2]


async def test_bad_periods_and_check_ins_get_problem_details(harness: Harness) -> None:
    wrong_kind = await harness.client.get(
        "/v1/scores/units", params={"period": "2026-11"}, headers=harness.auth("operator")
    )
    assert wrong_kind.status_code == 422
    assert wrong_kind.headers["content-type"] == "application/problem+json"
    assert wrong_kind.json()["errors"][0]["field"] == "period"
    nonsense = await harness.client.get(
        "/v1/scores/workers", params={"period": "2026-13"}, headers=harness.auth("operator")
    )
    assert nonsense.status_code == 422

    worker = harness.auth("grid_worker", subject=S1, grids=(G1,))
    here = {"lon": 111.29, "lat": 30.70}
    not_mine = await harness.client.post(
        "/v1/patrols/checkins", json={"grid_code": G2, "location": here}, headers=worker
    )
    assert not_mine.status_code == 403
    elsewhere = await harness.client.post(
        "/v1/patrols/checkins",
        json={"grid_code": G1, "location": {"lon": 111.30, "lat": 30.70}},
        headers=worker,
    )
    assert elsewhere.status_code == 422
    assert elsewhere.json()["errors"][0]["field"] == "location"
    future = (NOW + timedelta(hours=1)).isoformat()
    ahead = await harness.client.post(
        "/v1/patrols/checkins",
        json={"grid_code": G1, "location": here, "at": future},
        headers=worker,
    )
    assert ahead.status_code == 422
    bad_body = await harness.client.post(
        "/v1/patrols/checkins", json={"grid_code": "x", "location": {"lon": 500}}, headers=worker
    )
    assert bad_body.status_code == 422


async def test_rankings_survive_the_loss_of_redis(harness: Harness) -> None:
    await wait_for_scores(harness)

    async def ranking() -> list[tuple[int, str, str]]:
        response = await harness.client.get(
            "/v1/rankings/units", params={"period": "2026-Q4"}, headers=harness.auth("auditor")
        )
        assert response.status_code == 200
        return [(i["rank"], i["code"], i["composite"]) for i in response.json()["items"]]

    expected = [
        (1, "urban", "79.11"),
        (2, "police", "75.00"),
        (3, "civil", "66.67"),
        (4, "street-420502003", "64.29"),
        (5, "community-420502003001", "10.00"),
    ]
    assert await ranking() == expected
    assert harness.runtime.redis is not None
    await harness.runtime.redis.flushdb()
    assert await ranking() == expected
    assert await harness.runtime.redis.exists("scoring:ranking:unit:2026-Q4") == 1


async def test_rebuild_gives_the_same_numbers(harness: Harness) -> None:
    await wait_for_scores(harness)
    before = {k: numbers(await harness.scores(k, p)) for k, p in _PERIODS}
    async with harness.runtime.db.acquire() as conn:
        await conn.execute("DELETE FROM score")
        await conn.execute("DELETE FROM case_span")
    # What `onegrid scores rebuild` runs, against the service's database and Redis.
    outcomes = await rebuild(harness.settings, clock=harness.clock)
    assert {(o.kind.value, o.period) for o in outcomes} >= {
        ("unit", "2026-Q4"),
        ("worker", "2026-11"),
        ("grid", "2026-11"),
    }
    after = {k: numbers(await harness.scores(k, p)) for k, p in _PERIODS}
    assert after == before


_PERIODS = (("units", "2026-Q4"), ("workers", "2026-11"), ("grids", "2026-11"))


async def test_a_period_waits_a_multiple_of_its_last_pass_before_the_next(
    harness: Harness,
) -> None:
    await wait_for_scores(harness)
    stale = timedelta(days=-1)  # every running period is due for a refresh
    running = {("unit", "2026-Q4"), ("worker", "2026-11"), ("grid", "2026-11")}

    async def passes(spacing: float) -> list[set[tuple[str, str]]]:
        scorer = make_scorer(harness.settings, ScoringSettings(pass_spacing=spacing), harness.clock)
        return [
            {
                (o.kind.value, o.period)
                for o in await scorer.run_once(harness.runtime.db, None, stale)
            }
            for _ in range(2)
        ]

    first, second = await passes(10_000.0)
    assert first >= running
    assert not second & running  # the next pass waits 10,000 × the last one's duration
    first, second = await passes(0.0)
    assert first >= running
    assert second >= running


async def test_cases_without_stored_facts_are_folded_from_their_events(harness: Harness) -> None:
    # Cases recorded before scoring stored facts (or under another fold version).
    await wait_for_scores(harness)
    before = {k: numbers(await harness.scores(k, p)) for k, p in _PERIODS}
    async with harness.runtime.db.acquire() as conn:
        await conn.execute("UPDATE case_span SET facts = NULL, facts_version = NULL")
        await conn.execute("DELETE FROM score")
        for kind, label in (("unit", "2026-Q4"), ("worker", "2026-11"), ("grid", "2026-11")):
            async with conn.transaction():
                await harness.scorer.compute(conn, SubjectKind(kind), label)
    after = {k: numbers(await harness.scores(k, p)) for k, p in _PERIODS}
    assert after == before


async def waits_on_a_lock(watcher: asyncpg.Connection, conn: asyncpg.Connection) -> None:
    """Return once `conn`'s statement waits on a lock (seen from `watcher`)."""

    async def waiting() -> bool:
        state = await watcher.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
            conn.get_server_pid(),
        )
        return state is True

    await until(waiting, timeout_s=10)


async def test_two_transactions_recording_one_case_lose_no_event(harness: Harness) -> None:
    # April, away from the scripted month: the second transaction reads the case before
    # the first commits, so its stored facts are stale when it writes them.
    case = ScriptedCase("race", grid=G1, category=GARBAGE, location=L1)
    april = nov(1, 9) - timedelta(days=200)
    first, second = case.reported(april).registered(april + timedelta(minutes=1)).events
    db, scorer = harness.runtime.db, harness.scorer
    async with db.acquire() as one, db.acquire() as two, db.acquire() as watcher:
        one_tx, two_tx = one.transaction(), two.transaction()
        await one_tx.start()
        assert await scorer.record_event(one, f"race-1-{case.case_id}", first)
        await two_tx.start()
        recording = asyncio.create_task(scorer.record_event(two, f"race-2-{case.case_id}", second))
        await waits_on_a_lock(watcher, two)  # the second waits for the first
        await one_tx.commit()
        assert await recording
        await two_tx.commit()
        stored = await watcher.fetchrow(
            "SELECT facts, facts_seq FROM case_span WHERE case_id = $1", case.case_id
        )
        last = await watcher.fetchval("SELECT max(seq) FROM event WHERE case_id = $1", case.case_id)
    assert facts_from_json(stored["facts"]) == fold(case.case_id, [first, second])
    assert stored["facts_seq"] == last


async def test_events_recorded_together_fold_as_one_by_one(harness: Harness) -> None:
    # A consumer batch: a new case's events, an id twice, then a known case's next events.
    may = nov(1, 9) - timedelta(days=180)
    new = ScriptedCase("together-a", grid=G1, category=GARBAGE, location=L1)
    known = ScriptedCase("together-b", grid=G1, category=GARBAGE, location=L1)
    new_events = new.reported(may).registered(may + timedelta(minutes=1)).events
    first, *rest = known.reported(may).registered(may + timedelta(minutes=2)).events
    db, scorer = harness.runtime.db, harness.scorer
    ids = {id(e): f"together-{uuid.uuid4()}" for e in [*new_events, first, *rest]}
    async with db.acquire() as conn:
        async with conn.transaction():
            assert await scorer.record_event(conn, ids[id(first)], first)
        batch = [(ids[id(e)], e) for e in [*new_events, *rest]]
        async with conn.transaction():
            stored = await scorer.record_events(conn, [*batch, batch[0]])
        async with conn.transaction():
            again = await scorer.record_events(conn, batch)
        spans = {
            r["case_id"]: r
            for r in await conn.fetch(
                "SELECT s.case_id, s.facts, s.facts_seq, s.first_at, s.last_at,"
                " (SELECT max(seq) FROM event e WHERE e.case_id = s.case_id) AS last_seq"
                " FROM case_span s WHERE s.case_id = ANY($1::uuid[])",
                [new.case_id, known.case_id],
            )
        }
    assert stored == {event_id for event_id, _ in batch}
    assert again == set()
    for case, events in ((new, new_events), (known, [first, *rest])):
        span = spans[case.case_id]
        assert facts_from_json(span["facts"]) == fold(case.case_id, events)
        assert span["facts_seq"] == span["last_seq"]
        assert span["first_at"] == min(e.at for e in events)


async def test_a_month_freezing_while_an_event_is_recorded_waits_for_it_without_deadlock(
    harness: Harness,
) -> None:
    # March, ended long ago and touched by no other test: the recording holds the shared
    # freeze lock when the freezing pass starts, then marks March's row. The pass must
    # wait for the recording before it takes that row, or each waits on the other.
    grid = "420502003001098"
    case = ScriptedCase("freeze-race", grid=grid, category=GARBAGE, location=(111.41, 30.81))
    march = nov(1, 9) - timedelta(days=240)
    events = case.reported(march).registered(march + timedelta(minutes=1)).events
    ids = [f"freeze-race-{i}-{case.case_id}" for i in range(len(events))]
    db, scorer = harness.runtime.db, harness.scorer
    async with db.acquire() as recording, db.acquire() as freezing, db.acquire() as watcher:
        record_tx, freeze_tx = recording.transaction(), freezing.transaction()
        await record_tx.start()
        await recording.execute("SELECT pg_advisory_xact_lock_shared($1)", FREEZE_LOCK)
        await freeze_tx.start()
        pass_ = asyncio.create_task(scorer.compute(freezing, SubjectKind.GRID, "2026-03"))
        await waits_on_a_lock(watcher, freezing)  # the pass waits for the recording
        assert await scorer.record_events(recording, list(zip(ids, events, strict=True)))
        await record_tx.commit()
        outcome = await asyncio.wait_for(pass_, timeout=30)
        await freeze_tx.commit()
        # March's grid period is the one raced here; the unit's quarter (2026-Q1) is frozen
        # by whichever pass reached it first, so lateness there is not this test's to judge.
        late = await watcher.fetchval(
            "SELECT count(*) FROM late_event WHERE event_id = ANY($1::text[])"
            " AND kind = 'grid' AND period = '2026-03'",
            ids,
        )
    assert outcome is not None
    assert outcome.final
    assert late == 0  # recorded before the freeze: counted in March, not late
    grids = await harness.scores("grids", "2026-03")
    assert grids[grid]["measures"]["cases"] == "1"
    assert grids[grid]["final"] is True


async def test_an_event_recorded_while_a_pass_holds_its_period_is_computed_later(
    harness: Harness,
) -> None:
    # The running November, in a grid and at a place no other case of the module uses:
    # one case registered before the pass, one whose registration waits on its lock.
    grid, far = "420502003001099", (111.40, 30.80)
    before, during, after = (
        ScriptedCase(name, grid=grid, category=GARBAGE, location=far)
        for name in ("before-pass", "during-pass", "after-pass")
    )
    before.reported(nov(3, 9)).registered(nov(3, 10))
    reported, registered = during.reported(nov(3, 9)).registered(nov(3, 11)).events
    db, scorer = harness.runtime.db, harness.scorer
    async with db.acquire() as conn:
        for event in [*before.events, reported]:
            async with conn.transaction():
                assert await scorer.record_event(
                    conn, f"pass-{event.ce_type}-{event.case_id}", event
                )
    async with db.acquire() as passing, db.acquire() as recording, db.acquire() as watcher:
        pass_tx, record_tx = passing.transaction(), recording.transaction()
        await pass_tx.start()
        await scorer.compute(passing, SubjectKind.GRID, "2026-11")  # holds the period's row
        await record_tx.start()
        waiting = asyncio.create_task(
            scorer.record_event(recording, f"pass-late-{during.case_id}", registered)
        )
        await waits_on_a_lock(watcher, recording)  # the recording waits for the pass
        await pass_tx.commit()  # computed without the waiting registration
        assert await waiting
        await record_tx.commit()
        # A further event, under the row lock so that no pass runs meanwhile: a dirty
        # period (the usual case here) gets no new row version; a clean one (a pass
        # already took the registration in) is bumped.
        async with watcher.transaction():
            state = await watcher.fetchrow(
                "SELECT version, computed_version FROM period_state"
                " WHERE kind = 'grid' AND period = '2026-11' FOR UPDATE"
            )
            (event,) = after.reported(nov(3, 12)).events
            assert await scorer.record_event(watcher, f"pass-after-{after.case_id}", event)
            version = await watcher.fetchval(
                "SELECT version FROM period_state WHERE kind = 'grid' AND period = '2026-11'"
            )
        dirty = state["version"] > state["computed_version"]
        assert version == (state["version"] if dirty else state["computed_version"] + 1)

    async def both_counted() -> bool:
        grids = await harness.scores("grids", "2026-11")
        return grid in grids and grids[grid]["measures"]["cases"] == "2"

    await until(both_counted)


async def test_an_ended_month_freezes_and_late_events_do_not_change_it(
    harness: Harness, kafka_bootstrap: str
) -> None:
    await wait_for_scores(harness)
    november = {k: numbers(await harness.scores(k, "2026-11")) for k in ("workers", "grids")}
    harness.clock.now = nov(32, 12)  # 2 December: November ended more than an hour ago

    async def frozen() -> bool:
        workers = await harness.scores("workers", "2026-11")
        grids = await harness.scores("grids", "2026-11")
        return all(i["final"] for i in [*workers.values(), *grids.values()])

    await until(frozen)
    # The frozen numbers are the running ones, now final.
    for kind, items in november.items():
        frozen_items = numbers(await harness.scores(kind, "2026-11"))
        assert {c: v[:4] for c, v in frozen_items.items()} == {c: v[:4] for c, v in items.items()}
    # C, closed in November (grid G2, verified by S2), is rated in December: the event is
    # recorded and flagged for the frozen November, and applied to the running quarter.
    case_c = next(c for c in harness.cases if c.name == "C")
    late = case_c.evaluated(nov(32, 11), 5).events[-1]
    # A, filed by S1, is rated again in November, but only recorded after the freeze: its
    # stored facts now hold a rating the frozen numbers must never see.
    case_a = next(c for c in harness.cases if c.name == "A")
    late_in_november = case_a.evaluated(nov(30, 20), 1).events[-1]
    await harness.publish([late, late_in_november])

    async def urban_rated_again() -> bool:
        units = await harness.scores("units", "2026-Q4")
        return bool(units["urban"]["measures"]["evaluations"] == "5")

    await until(urban_rated_again)  # the quarter is still running: it takes the rating
    grids = await harness.scores("grids", "2026-11")
    assert grids[G2]["late_events"] >= 1
    assert numbers(grids) == november["grids"] | {
        c: (*v[:4], True) for c, v in november["grids"].items()
    }
    # Check-ins for a frozen month are refused.
    harness.clock.now = nov(31, 2)
    closed = await harness.client.post(
        "/v1/patrols/checkins",
        json={
            "grid_code": G1,
            "location": {"lon": 111.29, "lat": 30.70},
            "at": nov(30, 23).isoformat(),
        },
        headers=harness.auth("grid_worker", subject=S1, grids=(G1,)),
    )
    assert closed.status_code == 409
    harness.clock.now = nov(32, 12)
    # A rebuild reproduces the frozen numbers from the events they were frozen with.
    frozen_before = {k: numbers(await harness.scores(k, "2026-11")) for k in ("workers", "grids")}
    await rebuild_with(harness.runtime.db, harness.runtime.redis, harness.scorer, "2026-11")
    frozen_after = {k: numbers(await harness.scores(k, "2026-11")) for k in ("workers", "grids")}
    assert frozen_after == frozen_before
    assert frozen_after["workers"][S1][0]["average_rating"] == "3.500000"  # A 5, B 2; not 1
    latest = await latest_updates(kafka_bootstrap, {f"grid:{G2}:2026-11"})
    assert latest[f"grid:{G2}:2026-11"].final is True
