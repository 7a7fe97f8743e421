"""A tombstone written to the outbox is published as a null value with its CloudEvents headers."""

from __future__ import annotations

import asyncio

import pytest

from onegrid_common import outbox
from onegrid_common.outbox import OutboxRelay
from onegrid_common.producer import Producer
from onegrid_common.settings import DatabaseSettings, KafkaSettings
from onegrid_common.testing.helpers import (
    Counted,
    create_topic,
    migrate_schema,
    pool_for,
    read_topic,
    unique,
)
from onegrid_contracts.envelope import parse_headers

pytestmark = pytest.mark.integration

NULLABLE_PAYLOAD = "ALTER TABLE outbox ALTER COLUMN payload DROP NOT NULL;"


async def test_a_tombstone_follows_the_value_of_its_key_as_a_null_record(
    pg_dsn: str, kafka_bootstrap: str
) -> None:
    schema, topic = unique("tomb"), unique("test.tombstone")
    await create_topic(kafka_bootstrap, topic, partitions=1)
    await migrate_schema(pg_dsn, schema, NULLABLE_PAYLOAD)
    pool = await pool_for(pg_dsn, schema)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(
                conn, source="test", topic=topic, key="k-1", payload=Counted(key="k-1", seq=1)
            )
            await outbox.enqueue_tombstone(
                conn, source="test", topic=topic, key="k-1", ce_type=Counted.ce_type
            )
        producer = Producer(
            KafkaSettings(bootstrap_servers=kafka_bootstrap, enable_idempotence=False),
            client_id="test-tombstone",
        )
        await producer.start()
        relay = OutboxRelay(db=DatabaseSettings(dsn=pg_dsn), schema=schema, producer=producer)
        task = asyncio.create_task(relay.run())
        try:
            records = await read_topic(kafka_bootstrap, topic, expected=2)
        finally:
            await relay.stop()
            await asyncio.wait_for(task, 20)
            await producer.stop()
    finally:
        await pool.close()
    assert [r.key for r in records] == [b"k-1", b"k-1"]
    assert records[0].value is not None
    assert records[1].value is None
    envelope = parse_headers(records[1].headers)
    assert (envelope.type, envelope.subject, envelope.source) == (Counted.ce_type, "k-1", "test")


async def test_a_tombstone_outside_a_transaction_is_refused(pg_dsn: str) -> None:
    schema = unique("tomb")
    await migrate_schema(pg_dsn, schema, NULLABLE_PAYLOAD)
    pool = await pool_for(pg_dsn, schema)
    try:
        async with pool.acquire() as conn:
            with pytest.raises(RuntimeError, match="inside the business transaction"):
                await outbox.enqueue_tombstone(
                    conn, source="test", topic="t", key="k", ce_type=Counted.ce_type
                )
    finally:
        await pool.close()
