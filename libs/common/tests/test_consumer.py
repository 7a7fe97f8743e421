"""Consuming: each message takes effect once, bad ones go to the DLQ, nothing stops."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiokafka import ConsumerRecord

from onegrid_common.broker import add_subscriber, create_broker
from onegrid_common.consumer import (
    Incoming,
    RecordProcessor,
    Subscription,
    Transaction,
    split_by_key,
)
from onegrid_common.producer import OutgoingRecord, Producer
from onegrid_common.settings import KafkaSettings
from onegrid_common.testing.helpers import (
    Counted,
    create_topic,
    migrate_schema,
    pool_for,
    read_topic,
    unique,
)
from onegrid_contracts.catalogue import dlq_topic
from onegrid_contracts.envelope import build_headers, encode_payload, new_envelope

pytestmark = pytest.mark.integration

EFFECTS_SQL = "CREATE TABLE effects (key text, seq int, PRIMARY KEY (key, seq));"


async def record_effect(tx: Transaction, msg: Incoming) -> None:
    assert isinstance(msg.payload, Counted)
    if msg.payload.fail == "always":
        raise RuntimeError(f"cannot handle seq {msg.payload.seq}")
    await tx.conn.execute(
        "INSERT INTO effects (key, seq) VALUES ($1, $2)", msg.payload.key, msg.payload.seq
    )


def _record(topic: str, payload: Counted, *, event_id: str | None = None) -> OutgoingRecord:
    env = new_envelope(payload, source="test", subject=payload.key, id=event_id)
    return OutgoingRecord(topic, payload.key, encode_payload(payload), build_headers(env))


async def test_consumer_applies_once_dead_letters_bad_messages_and_goes_on(
    pg_dsn: str, kafka_bootstrap: str
) -> None:
    service = "intake"  # a catalogue service, so its DLQ topic exists in the catalogue
    schema, topic = unique("cons"), unique("test.events")
    await create_topic(kafka_bootstrap, topic, partitions=1)
    await create_topic(kafka_bootstrap, dlq_topic(service), partitions=1)
    await migrate_schema(pg_dsn, schema, EFFECTS_SQL)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    producer = Producer(kafka, client_id="test")
    await producer.start()
    pool = await pool_for(pg_dsn, schema)
    dlq_before = len(
        await read_topic(kafka_bootstrap, dlq_topic(service), expected=10**6, timeout_s=1)
    )
    sub = Subscription(
        name=unique("effects"),
        topics=(topic,),
        handlers={Counted.ce_type: record_effect},
        batch_size=3,
    )
    processor = RecordProcessor(
        service=service, subscription=sub, pool=pool, producer=producer, retry_backoff_s=0.01
    )
    broker = create_broker(kafka, service)
    add_subscriber(broker, processor, kafka)
    records = [_record(topic, Counted(key="k", seq=1), event_id="dup-1")]
    records.append(_record(topic, Counted(key="k", seq=1), event_id="dup-1"))  # redelivery
    records.append(OutgoingRecord(topic, "k", b"{not json", records[0].headers))  # poison
    records.append(_record(topic, Counted(key="k", seq=2, fail="always")))
    records.extend(_record(topic, Counted(key="k", seq=s)) for s in (3, 4, 5))
    await producer.send_many(records)
    try:
        await broker.start()
        for _ in range(300):
            if processor.stats.processed + processor.stats.dead_lettered >= 6:
                break
            await asyncio.sleep(0.1)
        effects = await pool.fetch("SELECT seq FROM effects ORDER BY seq")
        dlq = await read_topic(kafka_bootstrap, dlq_topic(service), expected=dlq_before + 2)
    finally:
        await broker.stop()
        await producer.stop()
        await pool.close()
    assert [r["seq"] for r in effects] == [1, 3, 4, 5]
    assert processor.stats.duplicates == 1
    assert processor.stats.redone >= 1  # the poison and the failing record's batches
    assert processor.stats.retried == 2  # three attempts in all for seq 2
    assert processor.stats.dead_lettered == 2
    mine = [
        r for r in dlq[dlq_before:] if dict(r.headers)["onegrid_original_topic"] == topic.encode()
    ]
    errors = sorted(dict(r.headers)["onegrid_error"].decode() for r in mine)
    assert len(errors) == 2
    assert errors[0].startswith("RuntimeError: cannot handle seq 2")
    assert "ValidationError" in errors[1]
    attempts = sorted(dict(r.headers)["onegrid_attempts"] for r in mine)
    assert attempts == [b"0", b"3"]


async def test_subscription_needs_topics_or_a_pattern() -> None:
    with pytest.raises(ValueError, match="topics or a pattern"):
        Subscription(name="x", handlers={})


def _consumed(topic: str, offset: int, out: OutgoingRecord) -> ConsumerRecord[bytes, bytes]:
    """`out` as the consumer would receive it from partition 0 at `offset`."""
    key, value = out.key.encode(), out.value or b""
    return ConsumerRecord(
        topic, 0, offset, 0, 0, key, value, None, len(key), len(value), list(out.headers)
    )


def test_split_by_key_keeps_each_keys_records_together_and_in_order() -> None:
    records = [_consumed("t", i, _record("t", Counted(key=f"k{i % 7}", seq=i))) for i in range(70)]
    lanes = split_by_key(records, 4)
    assert 1 < len(lanes) <= 4
    assert sorted(r.offset for lane in lanes for r in lane) == list(range(70))
    for lane in lanes:
        assert [r.offset for r in lane] == sorted(r.offset for r in lane)
    lane_of = {r.key: i for i, lane in enumerate(lanes) for r in lane}
    assert all(lane_of[r.key] == i for i, lane in enumerate(lanes) for r in lane)
    assert split_by_key(records, 1) == [records]


async def test_lanes_apply_keys_concurrently_each_key_once_and_in_order(pg_dsn: str) -> None:
    schema = unique("lanes")
    await migrate_schema(
        pg_dsn,
        schema,
        "CREATE TABLE applied (n bigserial PRIMARY KEY, key text, seq int, UNIQUE (key, seq));",
    )
    pool = await pool_for(pg_dsn, schema)
    running, most = 0, 0

    async def apply(tx: Transaction, msg: Incoming) -> None:
        nonlocal running, most
        assert isinstance(msg.payload, Counted)
        running += 1
        most = max(most, running)
        try:
            await tx.conn.execute("SELECT pg_sleep(0.005)")  # a handler waiting on the database
            await tx.conn.execute(
                "INSERT INTO applied (key, seq) VALUES ($1, $2)", msg.payload.key, msg.payload.seq
            )
        finally:
            running -= 1

    sub = Subscription(
        name="lanes", topics=("t",), handlers={Counted.ce_type: apply}, lanes=4, batch_size=200
    )
    kafka = KafkaSettings(enable_idempotence=False)
    processor = RecordProcessor(
        service="intake", subscription=sub, pool=pool, producer=Producer(kafka, client_id="x")
    )
    sent = [_record("t", Counted(key=f"case-{i % 20}", seq=i // 20)) for i in range(100)]
    batch = [_consumed("t", i, r) for i, r in enumerate(sent)]
    try:
        await processor.process_batch(batch)
        await processor.process_batch(batch[:50])  # redelivered: the inbox drops it
        rows = await pool.fetch("SELECT key, seq FROM applied ORDER BY n")
    finally:
        await pool.close()
    assert most > 1
    assert len(rows) == 100
    assert processor.stats.processed == 100
    assert processor.stats.duplicates == 50
    assert processor.stats.redone == 0  # nothing failed: each lane applied in one go
    for key in {r["key"] for r in rows}:
        assert [r["seq"] for r in rows if r["key"] == key] == [0, 1, 2, 3, 4]


async def test_deferred_writes_go_together_and_a_failing_one_is_dead_lettered_alone(
    pg_dsn: str, kafka_bootstrap: str
) -> None:
    service = "intake"  # a catalogue service, so its DLQ topic exists in the catalogue
    schema = unique("defer")
    await create_topic(kafka_bootstrap, dlq_topic(service), partitions=1)
    await migrate_schema(pg_dsn, schema, EFFECTS_SQL)
    pool = await pool_for(pg_dsn, schema)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    producer = Producer(kafka, client_id="test")
    await producer.start()
    flushed: list[list[int]] = []

    async def write(conn: asyncpg.Connection, items: list[Counted]) -> None:
        flushed.append([c.seq for c in items])
        if any(c.fail == "always" for c in items):
            raise RuntimeError("cannot write the batch")
        await conn.executemany(
            "INSERT INTO effects (key, seq) VALUES ($1, $2)", [(c.key, c.seq) for c in items]
        )

    async def defer(tx: Transaction, msg: Incoming) -> None:
        assert isinstance(msg.payload, Counted)
        tx.defer(write, msg.payload)

    sub = Subscription(name="defer", topics=("t",), handlers={Counted.ce_type: defer})
    processor = RecordProcessor(
        service=service, subscription=sub, pool=pool, producer=producer, retry_backoff_s=0.01
    )
    good = [_record("t", Counted(key="k", seq=s)) for s in range(4)]
    bad = _record("t", Counted(key="k", seq=9, fail="always"))
    try:
        await processor.process_batch([_consumed("t", i, r) for i, r in enumerate(good[:2])])
        assert flushed == [[0, 1]]  # one write for the batch, in order
        flushed.clear()
        mixed = [good[2], bad, good[3]]
        await processor.process_batch([_consumed("t", 10 + i, r) for i, r in enumerate(mixed)])
        effects = await pool.fetch("SELECT seq FROM effects ORDER BY seq")
    finally:
        await producer.stop()
        await pool.close()
    # The batch's write failed: each record again with a write of its own; the bad one
    # retried, then dead-lettered, the others applied.
    assert flushed[0] == [2, 9, 3]
    assert flushed[1:] == [[2], [9], [9], [9], [3]]
    assert [r["seq"] for r in effects] == [0, 1, 2, 3]
    assert processor.stats.dead_lettered == 1
    assert processor.stats.redone == 1


async def test_records_of_types_without_a_handler_are_skipped_unread() -> None:
    # No pool and no producer: a skip must not touch the database or dead-letter, even
    # when the rest of the envelope is broken (another consumer's business).
    sub = Subscription(name="skips", topics=("t",), handlers={Counted.ce_type: record_effect})
    processor = RecordProcessor(
        service="intake",
        subscription=sub,
        pool=None,
        producer=None,  # type: ignore[arg-type]
    )
    headers = [("ce_type", b"onegrid.case.closed.v1"), ("ce_time", b"not a time")]
    records = [ConsumerRecord("t", 0, n, 0, 0, b"k", b"{}", None, 2, 2, headers) for n in range(5)]
    await processor.process_batch(records)
    assert processor.stats.skipped == 5
    assert processor.stats.dead_lettered == 0
