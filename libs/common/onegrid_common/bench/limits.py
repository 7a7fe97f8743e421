"""The machine's own limits, measured in the same run: what one broker and one PostgreSQL
can do with nothing of onegrid in between."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def broker_rate(
    bootstrap: str, *, messages: int = 20_000, size: int = 1024, partitions: int = 4
) -> dict[str, float]:
    """Produce `messages` records of `size` bytes (acks=all, as onegrid produces), then
    consume them all; msg/s of each and of the round (produce+consume)."""
    topic = f"bench.limits.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    value = b"x" * size
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    try:
        started = time.perf_counter()
        pending = [
            await producer.send(topic, value, key=str(n % 997).encode()) for n in range(messages)
        ]
        await asyncio.gather(*pending)
        produced_s = time.perf_counter() - started
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        started = time.perf_counter()
        while seen < messages and time.perf_counter() - started < 120:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            seen += sum(len(records) for records in batches.values())
        consumed_s = time.perf_counter() - started
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    except Exception:  # tansu may not delete; the broker is the bench's own anyway
        pass
    finally:
        await admin.close()
    return {
        "messages": messages,
        "bytes": size,
        "produce_per_s": round(messages / produced_s, 1),
        "consume_per_s": round(seen / consumed_s, 1),
        "produce_consume_per_s": round(messages / (produced_s + consumed_s), 1),
    }


async def postgres_rate(
    dsn: str, *, connections: int = 16, seconds: float = 5.0
) -> dict[str, float]:
    """Single-row insert-and-commit transactions from `connections` sessions: the commit
    rate (WAL flush per commit) that every onegrid transaction shares."""
    table = f"bench_limits_{uuid.uuid4().hex[:8]}"
    setup = await asyncpg.connect(dsn)
    try:
        await setup.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, v text)")
    finally:
        await setup.close()
    pool = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections)
    assert pool is not None
    count = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        async with pool.acquire() as conn:
            while time.perf_counter() < stop_at:
                async with conn.transaction():
                    await conn.execute(f"INSERT INTO {table} (v) VALUES ('onegrid')")
                count += 1

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
        await pool.execute(f"DROP TABLE {table}")
    finally:
        await pool.close()
    return {
        "connections": connections,
        "seconds": round(elapsed, 2),
        "commits_per_s": round(count / elapsed, 1),
    }
