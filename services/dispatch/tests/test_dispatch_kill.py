"""Dispatch killed with -9 in the middle of 1,000 live cases and restarted: every case ends
in the right state, with each transition on its timeline and topic exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from onegrid_common.kafka_admin import ensure_topics
from onegrid_common.localstack import free_port
from onegrid_common.producer import Producer
from onegrid_common.settings import Settings
from onegrid_common.testing.backends import SessionBackends
from onegrid_common.testing.plugin import RunModule
from onegrid_contracts.catalogue import CASES_EVENTS, unit_replies_topic, unit_topics
from onegrid_contracts.tasks import DeptTaskAccepted, DeptTaskCompleted
from onegrid_dispatch.testing import City, build_registry, publish, report

pytestmark = pytest.mark.integration

CASES = 1000
KILL_AFTER_REPLIES = 350  # cases whose replies went out before the kill
EXPECTED = Counter(
    {
        "onegrid.case.reported.v1": 1,
        "onegrid.case.registered.v1": 1,
        "onegrid.case.dispatched.v1": 1,
        "onegrid.case.task.assigned.v1": 2,  # the unit's task, then the on-site check
        "onegrid.case.task.accepted.v1": 1,
        "onegrid.case.task.completed.v1": 1,
        "onegrid.case.handled.v1": 1,
    }
)


async def wait_ready(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"dispatch on port {port} not ready in {timeout_s}s")


async def events_on_topic(bootstrap: str, ids: set[str], timeout_s: float = 60.0) -> Counter[str]:
    """How many times each of `ids` (event ids) is on cases.events.v1 (distinct records)."""
    consumer = AIOKafkaConsumer(
        CASES_EVENTS,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: Counter[str] = Counter()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not ids <= set(seen):
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                for record in records:
                    ce_id = dict(record.headers or ()).get("ce_id")
                    if ce_id is not None and ce_id.decode() in ids:
                        seen[ce_id.decode()] += 1
    finally:
        await consumer.stop()
    return seen


async def test_kill_9_in_the_middle_of_1000_cases_loses_and_doubles_nothing(
    run_module: RunModule,
    onegrid_backends: SessionBackends,
    settings: Settings,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    city = City(uuid.uuid4().hex[:8])
    await ensure_topics(kafka_bootstrap, unit_topics(city.urban))
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(build_registry(city).to_json(), encoding="utf-8")
    dsn = onegrid_backends.fresh_database()  # this test's cases only
    port = free_port()
    env = {
        "ONEGRID_DB_DSN": dsn,
        "ONEGRID_DISPATCH_REGISTRY_FILE": str(registry_file),
        "ONEGRID_KAFKA_GROUP_SUFFIX": f".kill-{city.tag}",
        "ONEGRID_TELEMETRY_LOG_LEVEL": "WARNING",
    }
    process = run_module("onegrid_dispatch", "--port", str(port), env=env)
    await wait_ready(port)
    producer = Producer(settings.kafka, client_id="dispatch-kill-test")
    await producer.start()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    started = time.monotonic()
    try:
        reports = [report(city.adapter_category) for _ in range(CASES)]
        # The new consumer group reads cases.events.v1 from the start: earlier test modules'
        # reports are there too, so count this test's cases only.
        ids = [event.case_id for event in reports]
        for event in reports:
            await publish(producer, CASES_EVENTS, str(event.case_id), event)
        replied: set[uuid.UUID] = set()
        killed = False
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            rows = await pool.fetch(
                "SELECT t.task_id, t.case_id, c.case_no FROM dispatch.task t"
                " JOIN dispatch.case_ c USING (case_id)"
                " WHERE t.role = 'lead' AND t.state = 'assigned' AND c.case_id = ANY($1)",
                ids,
            )
            for row in rows:
                if row["task_id"] in replied:
                    continue
                base: dict[str, Any] = {
                    "task_id": row["task_id"],
                    "unit_code": city.urban,
                    "case_id": row["case_id"],
                    "case_no": row["case_no"],
                    "at": reports[0].at,
                }
                topic = unit_replies_topic(city.urban)
                key = str(row["case_id"])
                await publish(producer, topic, key, DeptTaskAccepted(**base, external_ref="E-1"))
                await publish(producer, topic, key, DeptTaskCompleted(**base, result="路灯已修复"))
                replied.add(row["task_id"])
                if not killed and len(replied) >= KILL_AFTER_REPLIES:
                    process.kill()  # -9 while reports and replies are in flight
                    killed = True
                    process = run_module("onegrid_dispatch", "--port", str(port), env=env)
            handled = await pool.fetchval(
                "SELECT count(*) FROM dispatch.case_ WHERE state = 'handled' AND case_id = ANY($1)",
                ids,
            )
            if handled == CASES:
                break
            await asyncio.sleep(0.3)
        assert killed
        states = dict(
            await pool.fetch(
                "SELECT state, count(*) FROM dispatch.case_ WHERE case_id = ANY($1) GROUP BY state",
                ids,
            )
        )
        assert states == {"handled": CASES}, states
        rows = await pool.fetch(
            "SELECT case_id, type, event_id FROM dispatch.timeline WHERE case_id = ANY($1)", ids
        )
        per_case: dict[uuid.UUID, Counter[str]] = {}
        for row in rows:
            per_case.setdefault(row["case_id"], Counter())[row["type"]] += 1
        assert len(per_case) == CASES
        wrong = {k: v for k, v in per_case.items() if v != EXPECTED}
        assert not wrong, (
            f"{len(wrong)} cases with lost or doubled transitions, e.g. {next(iter(wrong.items()))}"
        )
        # Every event dispatch wrote reached the topic (the relay may resend one; the id is
        # then the same, and consumers drop it through their inbox).
        ours = {r["event_id"] for r in rows if r["type"] != "onegrid.case.reported.v1"}
        for _ in range(100):
            if not await pool.fetchval("SELECT count(*) FROM dispatch.outbox"):
                break
            await asyncio.sleep(0.2)
        seen = await events_on_topic(kafka_bootstrap, ours)
        assert set(seen) == ours
        print(f"1000 cases through a kill -9 in {time.monotonic() - started:.1f}s")
    finally:
        await producer.stop()
        await pool.close()
        process.terminate()
