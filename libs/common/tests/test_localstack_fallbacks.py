"""The fallbacks when no PostgreSQL/Redis answers: embedded ones, started for real."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from onegrid_common.localstack import LocalStack, StackConfig, StateDir, free_port
from onegrid_common.localstack import components as c
from onegrid_common.localstack.procs import alive_pids, free_ports, stop
from onegrid_common.testing.backends import new_state_dir

pytestmark = pytest.mark.integration


@pytest.fixture
def state() -> Iterator[StateDir]:
    folder = new_state_dir("onegrid-test-fallback-")
    state = StateDir(folder)
    state.create()
    try:
        yield state
    finally:
        for record in state.records():
            stop(record, grace_s=5)
        shutil.rmtree(folder, ignore_errors=True)


async def test_embedded_postgres_starts_on_a_spare_port_and_stops_completely(
    state: StateDir,
) -> None:
    port = free_port()
    record = c.start_embedded_postgres(state, port, die_with_parent=True)
    dsn = c.with_database(f"postgresql://postgres@127.0.0.1:{port}/postgres", "onegrid")
    c.ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == "onegrid"
        assert await conn.fetchval("SELECT inet_server_port()") == port
    finally:
        await conn.close()

    pids = stop(record, grace_s=10)
    assert len(pids) > 1  # the postmaster and its helpers
    assert alive_pids(pids) == []
    assert not c.postgres_answers(dsn, timeout_s=1)


def test_valkey_starts_on_a_spare_port_and_stops(state: StateDir) -> None:
    port = free_port()
    record = c.start_valkey(state, port, die_with_parent=True)
    client = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        client.set("case:1", "registered")
        assert client.get("case:1") == b"registered"
    finally:
        client.close()
    pids = stop(record, grace_s=5)
    assert alive_pids(pids) == []
    assert not c.redis_answers(f"redis://127.0.0.1:{port}/0", timeout_s=0.5)


def test_a_stack_without_configured_servers_falls_back_to_embedded_ones(
    state: StateDir,
) -> None:
    dead_pg, dead_redis, embedded_pg, embedded_redis = free_ports(4)
    stack = LocalStack(
        StackConfig(
            state_dir=state.root,
            postgres_dsn=f"postgresql://postgres@127.0.0.1:{dead_pg}/onegrid",
            redis_url=f"redis://127.0.0.1:{dead_redis}/0",
            embedded_postgres_port=embedded_pg,
            embedded_redis_port=embedded_redis,
            services=(),
            die_with_parent=True,
        )
    )
    dsn, pg_source = stack.ensure_postgres()
    url, redis_source = stack.ensure_redis()
    assert (pg_source, redis_source) == ("started", "started")
    assert c.database_of(dsn) == "onegrid"
    assert c.postgres_answers(dsn)
    assert c.redis_answers(url)
    # Asked again, the running ones are kept rather than started twice.
    assert stack.ensure_postgres() == (dsn, "started")
    pid_before = state.load_record("redis")
    assert stack.ensure_redis() == (url, "started")
    assert state.load_record("redis") == pid_before

    pids = stack.down()
    assert alive_pids(pids) == []
    assert state.records() == []


def test_a_port_taken_by_a_stranger_is_reported_not_reused(state: StateDir, tmp_path: Path) -> None:
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(c.ComponentError, match=f"redis: port {port} is already taken"):
            c.start_valkey(state, port)
    assert state.records() == []
