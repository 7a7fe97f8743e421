"""Outbox → Kafka → inbox gives an exactly-once effect in key order, through kill -9.

10,000 events of 100 keys are written through the outbox while the relay and the consumer
run as separate processes; both are killed with SIGKILL mid-stream and restarted. Every
event must take effect exactly once, and per key in the order it was written.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from onegrid_common import outbox
from onegrid_common.testing.helpers import Counted, create_topic, migrate_schema, pool_for, unique

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("eo_worker.py")
KEYS, PER_KEY = 100, 100
EFFECTS_SQL = (
    "CREATE TABLE effects (applied bigserial PRIMARY KEY, key text NOT NULL, seq int NOT NULL);"
)


def _start(role: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), role, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


async def test_exactly_once_in_key_order_through_relay_and_consumer_crashes(
    pg_dsn: str, kafka_bootstrap: str
) -> None:
    schema, topic = unique("eo"), unique("test.eo")
    await create_topic(kafka_bootstrap, topic, partitions=4)
    await migrate_schema(pg_dsn, schema, EFFECTS_SQL)
    pool = await pool_for(pg_dsn, schema)
    args = (pg_dsn, kafka_bootstrap, schema, topic)
    relay, consumer = _start("relay", *args), _start("consumer", *args)

    async def effects() -> int:
        return int(await pool.fetchval("SELECT count(*) FROM effects"))

    async def wait_for_effects(at_least: int, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while await effects() < at_least:
            assert loop.time() < deadline, f"only {await effects()} effects, waited for {at_least}"
            await asyncio.sleep(0.1)

    async def write_stream() -> None:
        # 20 events per transaction, keys interleaved, each key's events in seq order.
        batch: list[tuple[str, int]] = []
        for seq in range(PER_KEY):
            for k in range(KEYS):
                batch.append((f"case-{k:03d}", seq))
                if len(batch) == 20:
                    async with pool.acquire() as conn, conn.transaction():
                        for key, s in batch:
                            await outbox.enqueue(
                                conn,
                                source="eo",
                                topic=topic,
                                key=key,
                                payload=Counted(key=key, seq=s),
                            )
                    batch.clear()
            await asyncio.sleep(0.02)  # a stream, not one burst

    try:
        writer = asyncio.create_task(write_stream())
        await wait_for_effects(1500, timeout_s=90)
        _kill(relay)
        await wait_for_effects(2500, timeout_s=60)  # the consumer drains what was published
        relay = _start("relay", *args)
        await wait_for_effects(4000, timeout_s=60)
        _kill(consumer)
        await asyncio.sleep(0.5)
        consumer = _start("consumer", *args)
        await wait_for_effects(6000, timeout_s=90)
        _kill(relay)
        _kill(consumer)
        relay, consumer = _start("relay", *args), _start("consumer", *args)
        await writer
        await wait_for_effects(KEYS * PER_KEY, timeout_s=180)
        await asyncio.sleep(1.0)  # anything doubled would arrive now
        rows = await pool.fetch("SELECT key, seq FROM effects ORDER BY applied")
    finally:
        for proc in (relay, consumer):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    _kill(proc)
        await pool.close()

    assert len(rows) == KEYS * PER_KEY, "an event took effect twice or not at all"
    assert len({(r["key"], r["seq"]) for r in rows}) == KEYS * PER_KEY
    order: dict[str, list[int]] = {}
    for r in rows:
        order.setdefault(r["key"], []).append(r["seq"])
    assert all(seqs == list(range(PER_KEY)) for seqs in order.values()), "key order broken"
