"""The one Kafka producer of a process: acks=all, ordered, every send confirmed.

aiokafka's defaults (acks=1, no idempotence) can lose or reorder a record when a leader
changes. onegrid produces with acks=all and, on brokers that support it, idempotence; the
local tansu broker refuses InitProducerId, so idempotence is a setting (on by default).
aiokafka keeps one request in flight per partition, so records of one key stay in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from onegrid_common.kafka_admin import kafka_client_kwargs
from onegrid_common.settings import KafkaSettings


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    key: str
    value: bytes | None  # None: a tombstone, which deletes the key of a compacted topic
    headers: Sequence[tuple[str, bytes]]


class Producer:
    def __init__(self, settings: KafkaSettings, *, client_id: str, linger_ms: int = 5) -> None:
        self._settings = settings
        self._producer = AIOKafkaProducer(
            **kafka_client_kwargs(settings),
            client_id=client_id,
            acks="all",
            enable_idempotence=settings.enable_idempotence,
            linger_ms=linger_ms,
            max_batch_size=256 * 1024,
            request_timeout_ms=30_000,
        )
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await self._producer.start()
            self._started = True

    async def stop(self) -> None:
        if self._started:
            await self._producer.stop()  # flushes what is pending first
            self._started = False

    async def send_many(self, records: Sequence[OutgoingRecord]) -> None:
        """Send all, in the given order, and return once every record is acknowledged.

        Raises the first delivery error; the caller then retries the whole batch (the
        consumers' inbox makes the resends harmless).
        """
        futures = []
        for record in records:
            futures.append(
                await self._producer.send(
                    record.topic,
                    value=record.value,
                    key=record.key.encode(),
                    headers=list(record.headers),
                )
            )
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def send(self, record: OutgoingRecord) -> None:
        await self.send_many([record])

    async def ping(self) -> None:
        """Readiness: the producer knows at least one live broker."""
        if not self._started:
            raise RuntimeError("producer not started")
        await self._producer.client.force_metadata_update()
        if not self._producer.client.cluster.brokers():
            raise RuntimeError("no broker reachable")
