"""Benchmark: how fast one dispatch process registers and routes a backlog of reports.

    .venv/bin/python services/dispatch/benchmarks/bench_dispatch.py --cases 2000 --lanes 1 4

Starts a tansu broker, a fresh database on the machine's PostgreSQL (ONEGRID_DB_DSN's
server, default 127.0.0.1:5432), publishes the demo city to the registry topics and
puts `--cases` CaseReported events (demo-city grids, categories with a routing rule) on
`cases.events.v1`. Then, for each `--lanes` value, starts dispatch in a child process with
its own consumer group and times it from start to the last case dispatched: cases/s, CPU
seconds of the dispatch process, and database commits per case. Isolates dispatch from
intake, adapters and the people the full `onegrid bench` plays.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg
import psutil
import shapely.geometry

from onegrid_common.kafka_admin import ensure_topics, wait_for_broker
from onegrid_common.localstack.components import (
    drop_database,
    ensure_database,
    tansu_argv,
    with_database,
)
from onegrid_common.localstack.procs import free_port, terminate
from onegrid_common.producer import OutgoingRecord, Producer
from onegrid_common.settings import KafkaSettings
from onegrid_common.testing.registry import demo_entities, publish_entities
from onegrid_contracts.cases import CaseReported, Channel
from onegrid_contracts.catalogue import CASES_EVENTS, all_topics
from onegrid_contracts.envelope import build_headers, encode_payload, new_envelope
from onegrid_contracts.primitives import Actor, ActorKind, Location, ReporterRef
from onegrid_contracts.registry import GridLevel
from onegrid_registry.seed.demo_city import DemoCity, build_demo_city


def _reports(city: DemoCity, n: int) -> list[CaseReported]:
    rng = random.Random(7)
    grids = [g for g in city.at_level(GridLevel.GRID) if g.geometry is not None and g.active]
    routed = {r.category_code for r in city.routes}
    categories = [c.code for c in city.categories if c.code in routed and not c.requires_id_number]
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        grid = rng.choice(grids)
        assert grid.geometry is not None
        p = shapely.geometry.shape(grid.geometry.model_dump()).representative_point()
        out.append(
            CaseReported(
                case_id=uuid.uuid4(),
                case_no=f"420500-{now:%Y%m%d}-{i + 1:06d}",
                actor=Actor(kind=ActorKind.GRID_WORKER, id=f"bench-{i % 50}"),
                at=now,
                report_id=uuid.uuid4(),
                channel=Channel.GRID_WORKER_APP,
                category_code=rng.choice(categories),
                location=Location(lon=round(p.x, 6), lat=round(p.y, 6)),
                grid_code=grid.code,
                description="小区门口垃圾堆积多日无人清理",
                occurred_at=now,
                reporter=ReporterRef(reporter_id=f"r-{i}"),
            )
        )
    return out


async def _prepare(kafka: KafkaSettings, cases: int) -> None:
    await wait_for_broker(kafka.bootstrap_servers, timeout_s=30)
    city = await asyncio.to_thread(build_demo_city, 1)
    await ensure_topics(kafka.bootstrap_servers, all_topics())
    await publish_entities(kafka, demo_entities(city))
    producer = Producer(kafka, client_id="bench-dispatch", linger_ms=20)
    await producer.start()
    try:
        records = []
        for event in _reports(city, cases):
            env = new_envelope(event, source="intake", subject=str(event.case_id))
            records.append(
                OutgoingRecord(
                    CASES_EVENTS, str(event.case_id), encode_payload(event), build_headers(env)
                )
            )
        await producer.send_many(records)
    finally:
        await producer.stop()


async def _dispatched(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        cases = await conn.fetchval(
            "SELECT count(*) FROM dispatch.case_ WHERE state NOT IN ('reported', 'registered')"
        )
        commits = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(cases or 0), int(commits or 0)
    except asyncpg.UndefinedTableError:
        return 0, 0
    finally:
        await conn.close()


class Sample(NamedTuple):
    at: float
    done: int  # cases past registration
    commits: int  # the database's commits so far
    cpu_s: float  # dispatch's CPU seconds so far


def _run(lanes: int, cases: int, bootstrap: str, server: str, timeout_s: float) -> dict[str, Any]:
    dsn = with_database(server, f"onegrid_bench_dispatch_{uuid.uuid4().hex[:8]}")
    ensure_database(dsn)
    env = {
        **os.environ,
        "ONEGRID_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ONEGRID_KAFKA_ENABLE_IDEMPOTENCE": "false",
        "ONEGRID_KAFKA_GROUP_SUFFIX": f".bench-{uuid.uuid4().hex[:6]}",
        "ONEGRID_DB_DSN": dsn,
        "ONEGRID_TELEMETRY_LOG_LEVEL": "WARNING",
        "ONEGRID_DISPATCH_CONSUMER_LANES": str(lanes),
    }
    code = f"from onegrid_common.service import run; run('dispatch', port={free_port()})"
    child = subprocess.Popen([sys.executable, "-c", code], env=env)
    process = psutil.Process(child.pid)

    def sample() -> Sample:
        done, commits = asyncio.run(_dispatched(dsn))
        return Sample(time.perf_counter(), done, commits, sum(process.cpu_times()[:2]))

    try:
        deadline = time.perf_counter() + timeout_s
        first: Sample | None = None
        last = sample()
        while last.done < cases and last.at < deadline:
            time.sleep(0.2)
            last = sample()
            if first is None and last.done:
                first = last
    finally:
        terminate(child)
        drop_database(dsn)
    if first is None:
        return {"lanes": lanes, "dispatched": 0}
    # From the first dispatched case on: start-up (migrations, catching up the registry,
    # joining the group) is not dispatch's rate.
    seconds = last.at - first.at
    counted = max(last.done - first.done, 1)
    return {
        "lanes": lanes,
        "dispatched": last.done,
        "seconds": round(seconds, 1),
        "cases_per_s": round(counted / seconds, 1) if seconds > 0 else None,
        "cpu_s_per_case_ms": round((last.cpu_s - first.cpu_s) / counted * 1000, 1),
        "cores": round((last.cpu_s - first.cpu_s) / seconds, 2) if seconds > 0 else None,
        "commits_per_case": round((last.commits - first.commits) / counted, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    port = free_port()
    broker = subprocess.Popen(
        tansu_argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    bootstrap = f"127.0.0.1:{port}"
    server = os.environ.get("ONEGRID_DB_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        kafka = KafkaSettings(bootstrap_servers=bootstrap, enable_idempotence=False)
        asyncio.run(_prepare(kafka, args.cases))
        for lanes in args.lanes:
            result = _run(lanes, args.cases, bootstrap, server, args.timeout)
            result["load_average"] = [round(x, 2) for x in os.getloadavg()]
            print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    finally:
        terminate(broker)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
