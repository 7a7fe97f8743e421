"""Consumer lag per group and partition: end offset minus the group's committed offset."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from onegrid_common.broker import group_lag, start_new_group_at_end
from onegrid_common.producer import OutgoingRecord, Producer
from onegrid_common.settings import KafkaSettings
from onegrid_common.testing.helpers import create_topic, unique

pytestmark = pytest.mark.integration


async def _records(kafka: KafkaSettings, topic: str, n: int) -> None:
    producer = Producer(kafka, client_id="lag-test")
    await producer.start()
    try:
        # One send each: tansu answers a latest-offset query with the last *batch*'s base
        # offset + 1, so records sent as one batch would look like one.
        for _ in range(n):
            await producer.send(OutgoingRecord(topic=topic, key="k", value=b"x", headers=()))
    finally:
        await producer.stop()


async def _commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(offset, "")})
    finally:
        await consumer.stop()


async def test_lag_is_end_offset_minus_committed_offset_per_partition(
    kafka_bootstrap: str,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    topic, group = unique("test.lag"), unique("onegrid.test.lag")
    await create_topic(kafka_bootstrap, topic, partitions=1)
    await _records(kafka, topic, 5)
    await _commit(kafka_bootstrap, group, topic, 2)
    assert await group_lag(kafka, group, topics=[topic]) == {(topic, 0): 3}
    assert await group_lag(kafka, group, pattern=f"^{topic}$") == {(topic, 0): 3}


async def test_a_new_group_pinned_at_the_end_skips_history_and_a_known_group_keeps_its_offset(
    kafka_bootstrap: str,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    topic, new, known = unique("test.pin"), unique("onegrid.test.new"), unique("onegrid.test.old")
    await create_topic(kafka_bootstrap, topic, partitions=1)
    await _records(kafka, topic, 4)
    await _commit(kafka_bootstrap, known, topic, 1)

    assert await start_new_group_at_end(kafka, new, topics=[topic]) == 1
    assert await group_lag(kafka, new, topics=[topic]) == {(topic, 0): 0}
    assert await start_new_group_at_end(kafka, known, pattern=f"^{topic}$") == 0
    assert await group_lag(kafka, known, topics=[topic]) == {(topic, 0): 3}
