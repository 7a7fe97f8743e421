"""`onegrid bench`, short: a few seconds at a small rate through the whole local stack.

Keeps the bench working as the services change; it asserts that every case reached its
end state and that the figures are there, never how fast anything was.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from onegrid_common.bench.run import BenchConfig, run_bench
from onegrid_common.localstack.components import database_of, drop_database, with_database
from onegrid_common.localstack.procs import port_accepts
from onegrid_common.localstack.services import SERVICES

pytestmark = pytest.mark.integration

BROKER_PORT = 9092


def _busy_ports() -> list[int]:
    ports = [BROKER_PORT, *(spec.dev_port for spec in SERVICES)]
    return [p for p in ports if port_accepts(p)]


def test_every_case_of_a_short_bench_reaches_its_end_and_is_measured(
    pg_dsn: str, redis_url: str, tmp_path: Path
) -> None:
    busy = _busy_ports()
    if busy:
        pytest.skip(f"the bench runs on the dev ports and {busy} are taken (onegrid dev up?)")
    from onegrid_cli.dev import available_commands

    database = f"onegrid_bench_guard_{uuid.uuid4().hex[:8]}"
    out = tmp_path / "bench.json"
    config = BenchConfig(
        rate=3.0,
        seconds=6.0,
        warmup_s=2.0,
        drain_s=90.0,
        state_dir=tmp_path / "stack",
        postgres_server=with_database(pg_dsn, "postgres"),
        database=database,
        redis_url=redis_url,
        broker_port=BROKER_PORT,
        out=out,
        limits=True,
        available_commands=available_commands(),
    )
    assert database_of(with_database(pg_dsn, database)) == database
    try:
        result = run_bench(config)
    finally:
        drop_database(with_database(pg_dsn, database))
    assert orjson.loads(out.read_bytes()) == result
    assert result["reports"]["statuses"] == {"202": result["reports"]["sent"]}
    n = result["cases_in_window"]
    assert n >= 10
    stages = {s["name"]: s for s in result["stages"]}
    assert stages["report → accepted (HTTP 202)"]["reached"] == n
    assert stages["report → dispatched"]["reached"] == n
    # Every case is evaluated, or waits for an operator by design (a dispute after
    # refusals, a department out of reach): nothing is lost on the way.
    evaluated = stages["report → evaluated"]["reached"]
    assert evaluated > 0
    waiting = {k: v for k, v in result["not_complete"].items() if k.startswith("operator queue")}
    assert evaluated + sum(waiting.values()) == n, result["not_complete"]
    assert result["processes"]["intake"]["cpu_s"] > 0
    assert result["processes"]["dispatch"]["rss_peak_mb"] > 0
    assert result["limits"]["broker"]["produce_consume_per_s"] > 0
    assert result["limits"]["postgres"]["commits_per_s"] > 0
    # Statements per case, counted by each service that has a database.
    statements = result["postgres_statements_per_case"]
    assert statements["intake"] > 0
    assert statements["dispatch"] > 0
    assert statements["all"] >= statements["intake"] + statements["dispatch"]
