"""Consuming: each message takes effect once, bad ones go to the DLQ, nothing stops."""

from __future__ import annotations

import asyncio

import pytest

from onegrid_common.broker import add_subscriber, create_broker
from onegrid_common.consumer import Incoming, RecordProcessor, Subscription, Transaction
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
