"""faststream's KafkaBroker, configured the onegrid way.

- Produces with acks=all (idempotence where the broker supports it).
- Subscribers fetch batches with auto-commit off and commit after the batch took effect
  (AckPolicy.NACK_ON_ERROR: on an error the batch is sought back and redelivered, never
  skipped); the RecordProcessor inside bounds retries per record and dead-letters, so an
  error reaching faststream means the database or broker is away, not a bad message.
- Bodies are not decoded by faststream: the CloudEvents envelope says what the body is.
- Static membership (`group_instance_id`) when configured, so a rolling restart rejoins
  without a rebalance.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from onegrid_common.consumer import RecordProcessor
from onegrid_common.kafka_admin import kafka_client_kwargs
from onegrid_common.settings import KafkaSettings


def faststream_security(kafka: KafkaSettings) -> BaseSecurity | None:
    if kafka.security_protocol == "PLAINTEXT":
        return None
    import ssl

    use_ssl = kafka.security_protocol in ("SSL", "SASL_SSL")
    context = None
    if use_ssl:
        context = ssl.create_default_context(cafile=kafka.ssl_cafile)
        if kafka.ssl_certfile:
            context.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile)
    if kafka.security_protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    username = kafka.sasl_username or ""
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    mechanisms: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    cls = mechanisms[kafka.sasl_mechanism or "SCRAM-SHA-512"]
    return cls(username, password, ssl_context=context, use_ssl=use_ssl)


def create_broker(kafka: KafkaSettings, service: str) -> KafkaBroker:
    return KafkaBroker(
        kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=kafka.enable_idempotence,
        client_id=f"{kafka.client_id_prefix}-{service}",
        security=faststream_security(kafka),
        allow_auto_create_topics=False,  # topics come from the catalogue, with their partitions
        graceful_timeout=30.0,
        logger=logging.getLogger(f"onegrid.{service}.broker"),
        log_level=logging.DEBUG,  # one line per message is too much at INFO
    )


async def _no_decode(_msg: KafkaMessage) -> None:
    return None


def group_id(service: str, subscription_name: str, kafka: KafkaSettings) -> str:
    return f"onegrid.{service}.{subscription_name}{kafka.group_suffix}"


def add_subscriber(broker: KafkaBroker, processor: RecordProcessor, kafka: KafkaSettings) -> Any:
    """Wire a RecordProcessor to a batch subscriber of its subscription's topics."""
    sub = processor.subscription
    instance = f"{kafka.group_instance_id}-{sub.name}" if kafka.group_instance_id else None
    options: dict[str, Any] = {
        "group_id": group_id(processor.service, sub.name, kafka),
        "group_instance_id": instance,
        "batch": True,
        "max_records": sub.batch_size,
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "decoder": _no_decode,
        "session_timeout_ms": 30_000 if instance else 10_000,
        "fetch_max_wait_ms": kafka.fetch_max_wait_ms,
        "batch_timeout_ms": kafka.batch_timeout_ms,
    }
    if sub.pattern:
        subscriber = broker.subscriber(pattern=sub.pattern, **options)
    else:
        subscriber = broker.subscriber(*sub.topics, **options)

    async def consume(msg: KafkaMessage) -> None:
        raw = msg.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        await processor.process_batch(records)

    consume.__name__ = f"consume_{sub.name}"
    return subscriber(consume)


async def group_lag(
    kafka: KafkaSettings, group: str, *, topics: Sequence[str] = (), pattern: str | None = None
) -> dict[tuple[str, int], int]:
    """Lag of `group` per (topic, partition) of `topics` (or the topics matching `pattern`):
    the partition's end offset minus the group's committed offset. Partitions the group
    never committed are left out. Reads offsets without joining the group."""
    client = AIOKafkaConsumer(
        **kafka_client_kwargs(kafka), group_id=group, enable_auto_commit=False
    )
    await client.start()
    try:
        partitions = await _partitions(client, topics, pattern)
        committed = {tp: await client.committed(tp) for tp in partitions}
        known = [tp for tp, offset in committed.items() if offset is not None and offset >= 0]
        ends = await client.end_offsets(known) if known else {}
        return {
            (tp.topic, tp.partition): max(0, ends[tp] - (committed[tp] or 0))
            for tp in known
            if tp in ends
        }
    finally:
        await client.stop()


async def start_new_group_at_end(
    kafka: KafkaSettings, group: str, *, topics: Sequence[str] = (), pattern: str | None = None
) -> int:
    """Commit the current end offsets for the partitions `group` never committed, so the
    group starts there rather than at the beginning; the number of partitions pinned.
    Done before the group's consumer joins, so nothing produced after it is missed."""
    client = AIOKafkaConsumer(
        **kafka_client_kwargs(kafka), group_id=group, enable_auto_commit=False
    )
    await client.start()
    try:
        partitions = await _partitions(client, topics, pattern)
        new = [tp for tp in partitions if (await client.committed(tp) or -1) < 0]
        if not new:
            return 0
        ends = await client.end_offsets(new)
        client.assign(new)
        await client.commit({tp: OffsetAndMetadata(ends[tp], "") for tp in new})
        return len(new)
    finally:
        await client.stop()


async def _partitions(
    client: AIOKafkaConsumer, topics: Sequence[str], pattern: str | None
) -> list[TopicPartition]:
    names = list(topics)
    if pattern is not None:
        names += sorted(t for t in await client.topics() if re.match(pattern, t))
    return [
        TopicPartition(topic, p)
        for topic in names
        for p in sorted(client.partitions_for_topic(topic) or ())
    ]
