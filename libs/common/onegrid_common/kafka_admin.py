"""Broker administration: client options from settings, waiting for a broker, creating topics.

Topics are always created from the catalogue with their partition counts: tansu
auto-creates an unknown topic with 4 partitions on a metadata request for it, and
faststream creates with 1, so nothing may rely on auto-creation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from onegrid_common.settings import KafkaSettings
from onegrid_contracts.catalogue import TopicSpec

# Kafka protocol error codes seen on CreateTopics.
_TOPIC_ALREADY_EXISTS = 36


class TopicError(RuntimeError):
    """A topic could not be created, or exists with fewer partitions than the catalogue asks."""


class BrokerUnavailableError(RuntimeError):
    """No broker answered at the bootstrap address in time."""


def kafka_client_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """aiokafka keyword arguments (producer, consumer, admin) for connection and security.

    Only what every client kind accepts: bootstrap address, security protocol, SASL and TLS.
    """
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        if settings.sasl_mechanism is None:
            raise ValueError(
                f"ONEGRID_KAFKA_SASL_MECHANISM is required with {settings.security_protocol}"
            )
        if settings.sasl_username is None or settings.sasl_password is None:
            raise ValueError(
                "ONEGRID_KAFKA_SASL_USERNAME and ONEGRID_KAFKA_SASL_PASSWORD are required "
                f"with {settings.security_protocol}"
            )
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile,
            certfile=settings.ssl_certfile,
            keyfile=settings.ssl_keyfile,
        )
    return kwargs


def _admin_kwargs(bootstrap: str, security: KafkaSettings | None) -> dict[str, Any]:
    settings = security if security is not None else KafkaSettings(bootstrap_servers=bootstrap)
    kwargs = kafka_client_kwargs(settings)
    kwargs["bootstrap_servers"] = bootstrap
    return kwargs


async def wait_for_broker(
    bootstrap: str, timeout_s: float, *, security: KafkaSettings | None = None
) -> None:
    """Return once a broker at `bootstrap` answers a metadata request; raise after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(**_admin_kwargs(bootstrap, security), request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last_error = exc
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
    raise BrokerUnavailableError(
        f"no Kafka broker answered at {bootstrap} within {timeout_s:.0f} s "
        f"(last error: {last_error!r})"
    )


async def ensure_topics(
    bootstrap: str,
    specs: Sequence[TopicSpec],
    *,
    security: KafkaSettings | None = None,
    replication_factor: int = 1,
) -> None:
    """Create the topics of `specs` that are missing, with their partitions and configuration.

    `replication_factor` 1 suits the single-node development and test brokers; in
    Kubernetes topics come from Strimzi `KafkaTopic` resources instead.

    A topic that already exists must have at least the partitions asked for; otherwise
    raise `TopicError` (partitions are never added silently: it changes key placement).
    """
    by_name = {spec.name: spec for spec in specs}
    if len(by_name) != len(specs):
        raise TopicError("duplicate topic names in the specs")
    if not by_name:
        return  # describing no names describes every topic
    admin = AIOKafkaAdminClient(**_admin_kwargs(bootstrap, security))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for name, spec in by_name.items() if name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=replication_factor,
                        topic_configs=spec.config(),
                    )
                    for spec in missing
                ]
            )
            failures = [
                f"{name}: error {code} {message or ''}".strip()
                for name, code, message in response.topic_errors
                if code not in (0, _TOPIC_ALREADY_EXISTS)
            ]
            if failures:
                raise TopicError("could not create topics: " + "; ".join(failures))
        # Describe only names known to exist: tansu auto-creates a described unknown topic.
        described = await admin.describe_topics(list(by_name))
        too_small = []
        for topic in described:
            spec = by_name[topic["topic"]]
            have = len(topic["partitions"])
            if topic["error_code"] != 0:
                raise TopicError(f"{spec.name}: describe failed with error {topic['error_code']}")
            if have < spec.partitions:
                too_small.append(f"{spec.name} has {have} partitions, needs {spec.partitions}")
        if too_small:
            raise TopicError("existing topics are too small: " + "; ".join(too_small))
    finally:
        await admin.close()
