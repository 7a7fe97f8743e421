"""Consuming with an exactly-once effect, bounded retries and a dead-letter topic.

faststream's Kafka defaults commit before processing (at most once) and retry a failing
message forever, blocking its partition. onegrid instead:
1. fetches a batch and applies it in one transaction: it records the batch's message ids
   in the inbox (one statement) and runs the handler of each new record in order (its
   outbox events included); the batch commits once. Should any record fail, all of that
   rolls back and the batch is applied again one record per savepoint, so the failing
   record alone is retried or dead-lettered;
2. retries a failing record a bounded number of times, then sends it to
   `dlq.<service>.v1` with the error and goes on; a record that can never succeed (bad
   envelope, invalid payload) goes there at once;
3. commits the Kafka offsets only after the whole batch took effect. A crash before the
   commit redelivers; the inbox skips what was already done.

A subscription with `lanes` > 1 splits each batch by message key into that many lanes,
each applied as above in its own transaction, the lanes concurrently: one key's records
stay in one lane, in order, and a handler that waits on the database no longer holds up
every other case. Only for handlers whose transactions touch no rows shared across keys
(else two lanes could deadlock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import asyncpg
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from onegrid_common import inbox, metrics, outbox
from onegrid_common.logs import log_context
from onegrid_common.producer import OutgoingRecord, Producer
from onegrid_common.telemetry import start_consumer_span
from onegrid_contracts.base import Payload
from onegrid_contracts.catalogue import dlq_topic
from onegrid_contracts.envelope import (
    Envelope,
    EnvelopeError,
    announced_type,
    decode_envelope,
    decode_payload,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incoming:
    """One decoded message and where it came from."""

    envelope: Envelope
    payload: Payload
    topic: str
    partition: int
    offset: int
    key: str | None


# What it returns is not used.
Flush = Callable[[asyncpg.Connection, list[Any]], Awaitable[object]]


@dataclass
class Transaction:
    """What a handler works with: a connection inside the effect's transaction, and the
    outbox bound to it, so state changes and the events they emit commit together.

    The handlers of one batch share it: a handler may `defer` a write so that the batch's
    writes of one kind go to the database together, before the commit."""

    conn: asyncpg.Connection
    source: str
    _deferred: dict[Flush, list[Any]] = field(default_factory=dict)

    def defer(self, flush: Flush, item: Any) -> None:
        """Have `flush(conn, items)` write `item`, with the other items deferred to the
        same `flush` in this transaction, in order, once the handlers are done."""
        self._deferred.setdefault(flush, []).append(item)

    async def flush(self) -> None:
        """Run the deferred writes (the consumer calls it before the commit)."""
        while self._deferred:
            flush, items = next(iter(self._deferred.items()))
            del self._deferred[flush]
            await flush(self.conn, items)

    async def emit(
        self, topic: str, key: str, payload: Payload, *, subject: str | None = None
    ) -> Envelope:
        return await outbox.enqueue(
            self.conn, source=self.source, topic=topic, key=key, payload=payload, subject=subject
        )


class Handler(Protocol):
    def __call__(self, tx: Transaction, msg: Incoming) -> Awaitable[None]: ...


class PermanentError(Exception):
    """Raised by a handler for a message that no retry can fix: it goes straight to the DLQ."""


@dataclass(frozen=True)
class Subscription:
    """A consumer group of a service: topics (or a pattern) and a handler per event type.

    Event types without a handler are acknowledged and skipped: a topic carries many types
    and each consumer cares about some.
    """

    name: str
    handlers: Mapping[str, Handler]
    topics: tuple[str, ...] = ()
    pattern: str | None = None
    batch_size: int = 200
    lanes: int = 1  # batches split by key into this many concurrent transactions

    def __post_init__(self) -> None:
        if bool(self.topics) == bool(self.pattern):
            raise ValueError(f"subscription {self.name}: give topics or a pattern, not both")
        if self.lanes < 1:
            raise ValueError(f"subscription {self.name}: lanes must be at least 1")


@dataclass
class ConsumerStats:
    processed: int = 0
    duplicates: int = 0
    skipped: int = 0
    retried: int = 0
    dead_lettered: int = 0
    redone: int = 0  # lanes applied again one record per savepoint after a failure
    last_error: str | None = None
    by_outcome: dict[str, int] = field(default_factory=dict)


class Keyed(Protocol):
    """What lanes are chosen by: a consumer record, or something holding one."""

    @property
    def key(self) -> Any: ...
    @property
    def partition(self) -> int: ...


K = TypeVar("K", bound=Keyed)


def split_by_key(records: Sequence[K], lanes: int) -> list[list[K]]:
    """Records in at most `lanes` groups, each key's records in one group in their order.
    A record without a key goes by its partition (its order is the partition's)."""
    if lanes <= 1 or len(records) <= 1:
        return [list(records)]
    groups: dict[int, list[K]] = {}
    for record in records:
        key = record.key if record.key is not None else f"partition-{record.partition}"
        data = key if isinstance(key, bytes) else str(key).encode()
        groups.setdefault(zlib.crc32(data) % lanes, []).append(record)
    return list(groups.values())


@dataclass(frozen=True)
class _Handled:
    """A record this subscription handles, its envelope read and its handler found."""

    record: ConsumerRecord[Any, Any]
    envelope: Envelope
    handler: Handler

    @property
    def key(self) -> Any:
        return self.record.key

    @property
    def partition(self) -> int:
        partition: int = self.record.partition
        return partition


class _LaneFailedError(Exception):
    """A record of a lane applied together failed: the lane goes again record by record."""


def _incoming(record: ConsumerRecord[Any, Any], env: Envelope) -> Incoming:
    payload = decode_payload(env.type, record.value or b"")
    key = record.key.decode() if isinstance(record.key, bytes) else record.key
    return Incoming(env, payload, record.topic, record.partition, record.offset, key)


def _header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode(errors="replace")
    return None


class RecordProcessor:
    """Applies one subscription's handlers to records, with inbox, retries and DLQ."""

    def __init__(
        self,
        *,
        service: str,
        subscription: Subscription,
        pool: asyncpg.Pool,
        producer: Producer,
        max_attempts: int = 3,
        retry_backoff_s: float = 0.2,
    ) -> None:
        self.service = service
        self.subscription = subscription
        self.consumer_name = f"{service}.{subscription.name}"
        self._pool = pool
        self._producer = producer
        self._max_attempts = max_attempts
        self._retry_backoff_s = retry_backoff_s
        self.stats = ConsumerStats()

    def _count(self, topic: str, outcome: str) -> None:
        self.stats.by_outcome[outcome] = self.stats.by_outcome.get(outcome, 0) + 1
        metrics.MESSAGES_CONSUMED.labels(self.service, topic, outcome).inc()

    async def process_batch(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """Apply a batch in one transaction per lane (see the module docstring, 1.).

        One commit per batch (per lane) instead of per record is what lets a consumer keep
        up with a city's load; a lane with a failing record is applied again one record
        per savepoint, so that record cannot undo the others. If a commit fails the batch
        is redelivered whole; the inbox drops what took effect.
        """
        # Records this subscription has no handler for (most, on a shared topic) and records
        # without a readable envelope need no transaction: sort them out first.
        outcomes: list[tuple[str, str]] = []
        handled: list[_Handled] = []
        handlers = self.subscription.handlers
        for record in records:
            announced = announced_type(record.headers or ())
            if announced is not None and announced not in handlers:
                # Neither the envelope nor the body read: on a shared topic most records
                # are of types this subscription does not handle (intake: all but ~3 of a
                # case's ~13 events), and a skip should cost next to nothing.
                self.stats.skipped += 1
                outcomes.append((record.topic, "skipped"))
                continue
            try:
                env = decode_envelope(record.headers or ())
            except EnvelopeError as exc:
                await self._dead_letter(record, exc, attempts=0)
                outcomes.append((record.topic, "dead_lettered"))
                continue
            handler = handlers.get(env.type)
            if handler is None:
                # Not validated either: validating a body costs more than the rest of a skip.
                self.stats.skipped += 1
                outcomes.append((record.topic, "skipped"))
                continue
            handled.append(_Handled(record, env, handler))
        lanes = split_by_key(handled, self.subscription.lanes) if handled else []
        if len(lanes) == 1:
            outcomes += await self._process_lane(lanes[0])
        elif lanes:
            # Every lane runs to its end even if another fails, so nothing is left half
            # done; then the first error fails the batch (redelivered, the inbox dedupes).
            results = await asyncio.gather(
                *(self._process_lane(lane) for lane in lanes), return_exceptions=True
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]
            outcomes += [o for r in results if not isinstance(r, BaseException) for o in r]
        for topic, outcome in outcomes:
            self._count(topic, outcome)

    async def _process_lane(self, lane: Sequence[_Handled]) -> list[tuple[str, str]]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                outcomes = await self._apply_together(conn, lane)
        except _LaneFailedError as failed:
            log.info("%s: %s; applying the batch one record at a time", self.consumer_name, failed)
            self.stats.redone += 1
        else:
            for _topic, outcome in outcomes:
                if outcome == "ok":
                    self.stats.processed += 1
                else:
                    self.stats.duplicates += 1
            return outcomes
        # Everything above rolled back: each record again, in its own savepoint, with
        # bounded retries and the dead-letter topic for the one that fails.
        outcomes = []
        async with self._pool.acquire() as conn, conn.transaction():
            for item in lane:
                outcome = await self._process(conn, item.record, item.envelope, item.handler)
                outcomes.append((item.record.topic, outcome))
        return outcomes

    async def _apply_together(
        self, conn: asyncpg.Connection, lane: Sequence[_Handled]
    ) -> list[tuple[str, str]]:
        """The usual case, nothing failing: the lane's ids go into the inbox in one
        statement and the handlers run without a savepoint each (three round trips per
        record fewer). Any failure raises _LaneFailedError and the transaction rolls back."""
        try:  # a body that is not valid is dead-lettered, even under a known id
            messages = [_incoming(item.record, item.envelope) for item in lane]
        except (EnvelopeError, ValidationError) as exc:
            raise _LaneFailedError(f"a record is not valid: {exc}") from exc
        new = await inbox.record_many(
            conn,
            consumer=self.consumer_name,
            messages=[(item.envelope.id, item.record.topic) for item in lane],
        )
        outcomes: list[tuple[str, str]] = []
        tx = Transaction(conn, self.service)
        for item, msg in zip(lane, messages, strict=True):
            record, env = item.record, item.envelope
            if env.id not in new:
                outcomes.append((record.topic, "duplicate"))
                continue
            new.discard(env.id)  # the same id twice in one batch: the second is a duplicate
            started = time.monotonic()
            with self._span(record, env, msg.key):
                try:
                    await item.handler(tx, msg)
                except Exception as exc:
                    raise _LaneFailedError(f"{env.type} {env.id} failed: {exc!r}") from exc
            metrics.HANDLER_DURATION.labels(self.service, record.topic).observe(
                time.monotonic() - started
            )
            outcomes.append((record.topic, "ok"))
        try:
            await tx.flush()
        except Exception as exc:
            raise _LaneFailedError(f"the batch's deferred writes failed: {exc!r}") from exc
        return outcomes

    def _span(
        self, record: ConsumerRecord[Any, Any], env: Envelope, key: str | None
    ) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(
            start_consumer_span(
                f"{record.topic} process {env.type}",
                env.traceparent,
                {"onegrid.consumer": self.consumer_name},
                topic=record.topic,
                key=key,
                case_id=env.subject,
                message_id=env.id,
                service=self.service,
            )
        )
        stack.enter_context(log_context(case_id=env.subject, message_id=env.id))
        return stack

    async def process(self, record: ConsumerRecord[Any, Any]) -> None:
        await self.process_batch([record])

    async def _process(
        self,
        conn: asyncpg.Connection,
        record: ConsumerRecord[Any, Any],
        env: Envelope,
        handler: Handler,
    ) -> str:
        try:
            msg = _incoming(record, env)
        except (EnvelopeError, ValidationError) as exc:
            await self._dead_letter(record, exc, attempts=0)
            return "dead_lettered"
        started = time.monotonic()
        with self._span(record, env, msg.key):
            outcome = await self._apply(conn, record, env, msg, handler)
        metrics.HANDLER_DURATION.labels(self.service, record.topic).observe(
            time.monotonic() - started
        )
        return outcome

    async def _apply(
        self,
        conn: asyncpg.Connection,
        record: ConsumerRecord[Any, Any],
        env: Envelope,
        msg: Incoming,
        handler: Handler,
    ) -> str:
        attempt = 0
        while True:
            attempt += 1
            try:
                async with conn.transaction():  # a savepoint inside the batch transaction
                    new = await inbox.record(
                        conn, consumer=self.consumer_name, message_id=env.id, topic=record.topic
                    )
                    if new:
                        tx = Transaction(conn, self.service)
                        await handler(tx, msg)
                        await tx.flush()
                if new:
                    self.stats.processed += 1
                    return "ok"
                self.stats.duplicates += 1
                return "duplicate"
            except PermanentError as exc:
                await self._dead_letter(record, exc, attempts=attempt)
                return "dead_lettered"
            except (OSError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError) as exc:
                # The database itself is away: no message can succeed, so don't burn this
                # one's retries. Raising makes the batch redeliver after a pause.
                log.warning("%s: database unavailable, pausing: %s", self.consumer_name, exc)
                await asyncio.sleep(1.0)
                raise
            except Exception as exc:
                self.stats.last_error = repr(exc)
                if attempt >= self._max_attempts:
                    await self._dead_letter(record, exc, attempts=attempt)
                    return "dead_lettered"
                self.stats.retried += 1
                metrics.MESSAGES_CONSUMED.labels(self.service, record.topic, "retried").inc()
                log.warning(
                    "%s: %s failed (attempt %d of %d): %s",
                    self.consumer_name,
                    env.type,
                    attempt,
                    self._max_attempts,
                    exc,
                )
                await asyncio.sleep(self._retry_backoff_s * 2 ** (attempt - 1))

    async def _dead_letter(
        self, record: ConsumerRecord[Any, Any], exc: BaseException, *, attempts: int
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"[:4000]
        headers = [
            *(record.headers or ()),
            ("onegrid_error", error.encode()),
            ("onegrid_error_trace", "".join(traceback.format_exception(exc))[-4000:].encode()),
            ("onegrid_original_topic", record.topic.encode()),
            ("onegrid_original_partition", str(record.partition).encode()),
            ("onegrid_original_offset", str(record.offset).encode()),
            ("onegrid_consumer", self.consumer_name.encode()),
            ("onegrid_attempts", str(attempts).encode()),
            ("onegrid_dead_lettered_at", str(int(time.time() * 1000)).encode()),
        ]
        key = record.key.decode(errors="replace") if isinstance(record.key, bytes) else ""
        await self._producer.send(
            OutgoingRecord(
                topic=dlq_topic(self.service),
                key=key or "",
                value=record.value or b"",
                headers=headers,
            )
        )
        self.stats.dead_lettered += 1
        metrics.DLQ_MESSAGES.labels(self.service, record.topic).inc()
        log.error(
            "%s: message %s from %s[%d]@%d dead-lettered after %d attempts: %s",
            self.consumer_name,
            _header(record, "ce_id"),
            record.topic,
            record.partition,
            record.offset,
            attempts,
            error,
        )
