"""Broker administration: client options, waiting for a broker, topics from the catalogue."""

from __future__ import annotations

import secrets
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import SecretStr

from onegrid_common.kafka_admin import (
    BrokerUnavailableError,
    TopicError,
    ensure_topics,
    kafka_client_kwargs,
    wait_for_broker,
)
from onegrid_common.localstack import free_port
from onegrid_common.settings import KafkaSettings
from onegrid_contracts.catalogue import TopicSpec


def _spec(name: str, partitions: int, cleanup: str = "delete") -> TopicSpec:
    return TopicSpec(
        name=name,
        key="case id",
        partitions=partitions,
        cleanup_policy="compact" if cleanup == "compact" else "delete",
        retention_ms=None if cleanup == "compact" else 86_400_000,
        producers=("test",),
        consumers=("test",),
    )


def _name(kind: str) -> str:
    return f"test.{kind}-{secrets.token_hex(3)}.v1"


def test_kafka_client_kwargs_carry_sasl_and_refuse_incomplete_settings() -> None:
    plain = kafka_client_kwargs(KafkaSettings(bootstrap_servers="k:9092"))
    assert plain == {"bootstrap_servers": "k:9092", "security_protocol": "PLAINTEXT"}
    sasl = kafka_client_kwargs(
        KafkaSettings(
            bootstrap_servers="k:9092",
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="adapter-urban",
            sasl_password=SecretStr("pw"),
        )
    )
    assert sasl["sasl_mechanism"] == "SCRAM-SHA-512"
    assert sasl["sasl_plain_username"] == "adapter-urban"
    assert sasl["sasl_plain_password"] == "pw"
    with pytest.raises(ValueError, match="SASL_MECHANISM is required"):
        kafka_client_kwargs(KafkaSettings(security_protocol="SASL_SSL"))
    with pytest.raises(ValueError, match="SASL_USERNAME"):
        kafka_client_kwargs(
            KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN")
        )


def test_kafka_client_kwargs_build_a_tls_context() -> None:
    tls = kafka_client_kwargs(KafkaSettings(security_protocol="SSL"))
    assert tls["security_protocol"] == "SSL"
    assert tls["ssl_context"].check_hostname is True


async def test_wait_for_broker_fails_clearly_when_nothing_listens() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match=f"127.0.0.1:{port}"):
        await wait_for_broker(f"127.0.0.1:{port}", 1.0)
    assert time.monotonic() - started < 10


@pytest.mark.integration
async def test_ensure_topics_creates_missing_topics_with_their_partitions(
    kafka_bootstrap: str,
) -> None:
    events, compacted = _name("events"), _name("compacted")
    specs = [_spec(events, 6), _spec(compacted, 2, "compact")]
    await ensure_topics(kafka_bootstrap, specs)
    await ensure_topics(kafka_bootstrap, specs)  # a second run is harmless

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics([events, compacted])}
    finally:
        await admin.close()
    assert len(described[events]["partitions"]) == 6
    assert len(described[compacted]["partitions"]) == 2


@pytest.mark.integration
async def test_an_existing_topic_with_too_few_partitions_is_an_error(
    kafka_bootstrap: str,
) -> None:
    name = _name("small")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    with pytest.raises(TopicError, match=f"{name} has 1 partitions, needs 3"):
        await ensure_topics(kafka_bootstrap, [_spec(name, 3)])


async def test_duplicate_specs_are_refused_before_touching_the_broker() -> None:
    with pytest.raises(TopicError, match="duplicate"):
        await ensure_topics("127.0.0.1:1", [_spec("a.b.v1", 1), _spec("a.b.v1", 2)])
