"""The pytest harness gives real, session-private backends."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import asyncpg
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from onegrid_common.kafka_admin import ensure_topics
from onegrid_common.localstack import components as c
from onegrid_common.settings import Settings
from onegrid_common.testing import RestartableBroker
from onegrid_common.testing.backends import SessionBackends
from onegrid_common.testing.plugin import PrivateSettings, RunModule
from onegrid_contracts.catalogue import CASES_EVENTS, TopicSpec, static_topics

pytestmark = pytest.mark.integration


def _spec(name: str, partitions: int = 2) -> TopicSpec:
    return TopicSpec(
        name=name,
        key="case id",
        partitions=partitions,
        cleanup_policy="delete",
        retention_ms=3_600_000,
        producers=("test",),
        consumers=("test",),
    )


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"case-1", partition=0)
    finally:
        await producer.stop()


async def _read_partition(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    # Manual assignment: no group join (5-8 s on tansu) needed to read back.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        got: list[bytes] = []
        deadline = time.monotonic() + 15
        while len(got) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(partition, timeout_ms=500)
            got += [record.value for record in batch.get(partition, []) if record.value]
        return got
    finally:
        await consumer.stop()


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_broker_has_the_catalogue_topics_and_a_record_makes_the_round_trip(
    kafka_bootstrap: str,
) -> None:
    assert {spec.name for spec in static_topics()} <= await _topics(kafka_bootstrap)
    topic = f"test.harness-{secrets.token_hex(3)}.v1"
    await ensure_topics(kafka_bootstrap, [_spec(topic)])
    await _produce(kafka_bootstrap, topic, [b"one", b"two"])
    assert await _read_partition(kafka_bootstrap, topic, expected=2) == [b"one", b"two"]


async def test_pg_dsn_is_a_session_database_of_its_own(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        name = await conn.fetchval("SELECT current_database()")
    finally:
        await conn.close()
    assert name.startswith("onegrid_test_")


async def test_session_backends_drop_their_database_and_release_their_redis_db() -> None:
    backends = SessionBackends("local")
    try:
        dsn = backends.fresh_database()
        url, second = backends.redis_url(), backends.fresh_redis()
        assert backends.redis_url() == url != second
        conn = await asyncpg.connect(dsn)
        await conn.execute("CREATE TABLE t (x int)")
        await conn.close()
        for each in (url, second):
            client = redis.Redis.from_url(each)
            client.set("k", "v")
            client.close()
    finally:
        backends.close()
    server = await asyncpg.connect(c.with_database(dsn, "postgres"))
    try:
        exists = await server.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = $1", c.database_of(dsn)
        )
    finally:
        await server.close()
    assert exists == 0
    for each in (url, second):
        db = int(each.rsplit("/", 1)[1])
        control = redis.Redis.from_url(each.rsplit("/", 1)[0] + "/0")
        session_db = redis.Redis.from_url(each)
        try:
            assert session_db.get("k") is None
            claim = control.get(f"onegrid:test-session:db{db}")
        finally:
            control.close()
            session_db.close()
        assert claim is None


def test_redis_url_is_a_claimed_logical_database_of_this_session(redis_url: str) -> None:
    db = int(redis_url.rsplit("/", 1)[1])
    assert 1 <= db <= 15
    control = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/0")
    try:
        assert control.get(f"onegrid:test-session:db{db}") is not None
    finally:
        control.close()


def test_settings_point_at_the_session_backends(
    settings: Settings, kafka_bootstrap: str, pg_dsn: str, redis_url: str
) -> None:
    assert settings.kafka.bootstrap_servers == kafka_bootstrap
    assert settings.db.dsn == pg_dsn
    assert settings.redis.url == redis_url
    assert settings.environment == "test"


def test_private_settings_share_the_broker_but_not_the_database_or_redis(
    settings: Settings, private_settings: PrivateSettings
) -> None:
    private = private_settings()
    assert private.kafka == settings.kafka
    assert private.security == settings.security
    assert private.db.dsn != settings.db.dsn
    assert private.redis.url != settings.redis.url
    assert private_settings().db.dsn != private.db.dsn


async def test_restartable_broker_keeps_topics_and_records_across_a_kill(
    broker_process: RestartableBroker,
) -> None:
    bootstrap = broker_process.bootstrap
    topic = f"test.restart-{secrets.token_hex(3)}.v1"
    await ensure_topics(bootstrap, [_spec(topic)])
    await _produce(bootstrap, topic, [b"before"])
    old_pid = broker_process.pid

    broker_process.restart(kill=True)

    assert broker_process.pid not in (None, old_pid)
    topics = await _topics(bootstrap)
    assert topic in topics
    assert CASES_EVENTS in topics
    await _produce(bootstrap, topic, [b"after"])
    assert await _read_partition(bootstrap, topic, expected=2) == [b"before", b"after"]


ECHO_ENV = """
import os, time
for key in sorted(os.environ):
    if key.startswith("ONEGRID_"):
        print(f"{key}={os.environ[key]}")
print("ready", flush=True)
time.sleep(60)
"""


def test_run_module_runs_with_the_test_env_and_kill_is_immediate(
    run_module: RunModule, pg_dsn: str, tmp_path: Path
) -> None:
    module = f"echo_env_{secrets.token_hex(3)}"
    (tmp_path / f"{module}.py").write_text(ECHO_ENV)
    process = run_module(module, env={"PYTHONPATH": str(tmp_path), "ONEGRID_TEST_MARK": "x"})
    process.wait_for_output("ready")
    output = process.output()
    assert f"ONEGRID_DB_DSN={pg_dsn}" in output
    assert "ONEGRID_TEST_MARK=x" in output
    assert "ONEGRID_KAFKA_BOOTSTRAP_SERVERS=" in output
    process.kill()
    assert not process.alive
    assert process.popen.returncode == -9
