"""Transactional outbox: events are rows written in the business transaction; a relay
publishes them to Kafka in order per key.

Why it is correct:
- `outbox_enqueue` (migration common/0001) locks the key for the rest of the transaction
  before it takes an id, so for one key id order is commit order (sequence order alone is
  not: transactions commit in any order).
- The relay reads committed rows in id order, sends them with acks=all, and deletes them
  only after every send is confirmed: in the statement of its next read (which skips
  them), so a round is one round trip. A crash between send and delete resends; consumers
  drop the duplicates through their inbox.
- Each published record gets a PRODUCER span, child of the traceparent stored with the row
  (the span that wrote the event), and the record's `traceparent` header names that
  span, so a trace reads: request → outbox publish → consume.
- Only one relay per schema publishes at a time: it holds a session advisory lock, so
  several replicas never interleave the same key. The others wait and take over when the
  holder's connection dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from onegrid_common import metrics
from onegrid_common.db import Connection, connect, quote_ident, run_after_commit
from onegrid_common.producer import OutgoingRecord, Producer
from onegrid_common.settings import DatabaseSettings
from onegrid_common.telemetry import (
    context_from_traceparent,
    get_tracer,
    inject_traceparent,
    messaging_attributes,
    traceparent_of,
)
from onegrid_contracts.base import Payload
from onegrid_contracts.envelope import Envelope, build_headers, encode_payload, new_envelope

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "onegrid_outbox"

# The relay publishing each schema from this process: a writer wakes it directly after
# commit; a writer whose schema has no leading relay here sends a NOTIFY after commit.
_local_relays: dict[str, OutboxRelay] = {}


async def _after_commit(conn: Connection) -> None:
    schema = conn.onegrid_schema
    relay = _local_relays.get(schema) if schema is not None else None
    if relay is not None and relay.is_leader:
        relay.wake()
        return
    if schema is None:
        schema = await conn.fetchval("SELECT current_schema()")
    # Outside the business transaction; a notify-only commit need not wait for fsync.
    await conn.execute(
        "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)",
        NOTIFY_CHANNEL,
        schema,
    )


def _wake_after_commit(conn: asyncpg.Connection) -> None:
    # Without the hook (a plain asyncpg connection) the relay's poll finds the row.
    run_after_commit(conn, _after_commit)


@dataclass(frozen=True)
class PendingEvent:
    """An event to write: its topic, its key (the case id for case events) and payload."""

    topic: str
    key: str
    payload: Payload
    subject: str | None = None


def _with_traceparent(
    headers: list[tuple[str, bytes]], traceparent: str | None
) -> list[tuple[str, bytes]]:
    if traceparent is None:
        return headers
    kept = [(name, value) for name, value in headers if name != "traceparent"]
    return [*kept, ("traceparent", traceparent.encode("ascii"))]


def _current_traceparent() -> str | None:
    return inject_traceparent()


@dataclass(frozen=True)
class EventRow:
    """An event as the arguments of `outbox_enqueue(topic, key, headers, payload)`, for a
    caller that writes it in a statement of its own (one round trip with its business rows)
    and then calls `written`."""

    envelope: Envelope
    topic: str
    key: str
    headers: list[list[str]]
    payload: bytes

    @property
    def args(self) -> tuple[str, str, list[list[str]], bytes]:
        """The arguments of `outbox_enqueue`, in order."""
        return (self.topic, self.key, self.headers, self.payload)


def enqueue_from(first: int) -> str:
    """The FROM clause of an `INSERT ... SELECT` that also enqueues an event, given as
    parameters $first..$first+3 (`EventRow.args`): the business row and its event in one
    statement. Run it with `write_many`, or call `written` after it."""
    params = ", ".join(f"${n}" for n in range(first, first + 4))
    return f"FROM (SELECT outbox_enqueue({params})) AS sent"


async def write_many(
    conn: asyncpg.Connection, statement: str, rows: Sequence[tuple[Sequence[Any], EventRow]]
) -> None:
    """Run `statement` (see `enqueue_from`) once per (its own arguments, event), in order,
    as one pipelined round trip; the relay wakes once they are committed."""
    if not rows:
        return
    await conn.executemany(statement, [(*args, *event.args) for args, event in rows])
    await written(conn)


def enqueue_each(first: int) -> str:
    """A query that enqueues several events in their order, given as the four array
    parameters $first..$first+3 (`event_columns`): for a statement that writes a business
    row and all its events together, as a CTE (`sent AS (... WHERE <condition>)`, counted
    by the main query so that it runs). Call `written` after it."""
    p = [f"${n}" for n in range(first, first + 4)]
    return (
        "SELECT outbox_enqueue(e.topic, e.key, e.headers::jsonb, e.payload)"
        f" FROM unnest({p[0]}::text[], {p[1]}::text[], {p[2]}::text[], {p[3]}::bytea[])"
        " WITH ORDINALITY AS e(topic, key, headers, payload, n)"
    )


def event_columns(
    rows: Sequence[EventRow],
) -> tuple[list[str], list[str], list[str], list[bytes]]:
    """The parameters of `enqueue_each`: topics, keys, headers (JSON text: asyncpg would
    read a list of lists as a nested array) and payloads."""
    return (
        [r.topic for r in rows],
        [r.key for r in rows],
        [orjson.dumps(r.headers).decode() for r in rows],
        [r.payload for r in rows],
    )


def event_row(
    *,
    source: str,
    topic: str,
    key: str,
    payload: Payload,
    subject: str | None = None,
    traceparent: str | None = None,
) -> EventRow:
    env = new_envelope(
        payload,
        source=source,
        subject=subject if subject is not None else key,
        traceparent=traceparent if traceparent is not None else _current_traceparent(),
    )
    headers = [[name, value.decode()] for name, value in build_headers(env)]
    return EventRow(env, topic, key, headers, encode_payload(payload))


async def written(conn: asyncpg.Connection) -> None:
    """Call after a statement of the caller's ran `outbox_enqueue`: the relay wakes once the
    row is committed (now, if the statement ran outside a transaction)."""
    if conn.is_in_transaction():
        _wake_after_commit(conn)
    else:
        await _after_commit(conn)


async def enqueue(
    conn: asyncpg.Connection,
    *,
    source: str,
    topic: str,
    key: str,
    payload: Payload,
    subject: str | None = None,
    traceparent: str | None = None,
) -> Envelope:
    """Write one event in the caller's transaction. `traceparent` defaults to the current span."""
    row = event_row(
        source=source, topic=topic, key=key, payload=payload, subject=subject,
        traceparent=traceparent,
    )  # fmt: skip
    return await enqueue_row(conn, row)


async def enqueue_row(conn: asyncpg.Connection, row: EventRow) -> Envelope:
    """Write an event built by `event_row` in the caller's transaction."""
    if not conn.is_in_transaction():
        raise RuntimeError("outbox.enqueue must run inside the business transaction")
    await conn.execute("SELECT outbox_enqueue($1, $2, $3, $4)", *row.args)
    _wake_after_commit(conn)
    return row.envelope


async def enqueue_tombstone(
    conn: asyncpg.Connection,
    *,
    source: str,
    topic: str,
    key: str,
    ce_type: str,
    traceparent: str | None = None,
) -> Envelope:
    """Write a tombstone (null value) for `key` of a compacted topic, in the caller's
    transaction: the record deletes the key from every read model and, after compaction,
    from the topic. The CloudEvents headers still name the entity type and the key.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("outbox.enqueue_tombstone must run inside the business transaction")
    env = Envelope(
        id=str(uuid.uuid4()),
        type=ce_type,
        source=source,
        time=datetime.now(UTC),
        subject=key,
        traceparent=traceparent if traceparent is not None else _current_traceparent(),
    )
    headers = [[name, value.decode()] for name, value in build_headers(env)]
    await conn.execute("SELECT outbox_enqueue($1, $2, $3, $4)", topic, key, headers, None)
    _wake_after_commit(conn)
    return env


async def enqueue_many(
    conn: asyncpg.Connection, *, source: str, events: Iterable[PendingEvent]
) -> list[Envelope]:
    """Write several events in order, in the caller's transaction."""
    return [
        await enqueue(
            conn, source=source, topic=e.topic, key=e.key, payload=e.payload, subject=e.subject
        )
        for e in events
    ]


async def backlog(conn: asyncpg.Connection, *, published: Sequence[int] = ()) -> tuple[int, float]:
    """Rows waiting and the age in seconds of the oldest (for /metrics); `published` are
    rows the relay sent whose delete waits for its next read, not waiting."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)"
        " AS age FROM outbox WHERE id <> ALL($1::bigint[])",
        list(published),
    )
    assert row is not None
    return int(row["n"]), float(row["age"])


# The rows the last round published are deleted by the next read: one round trip a round.
# Both parts see the same snapshot, so the read skips them itself. The relay's loop ends
# only after a read (a stop drains to an empty one), so nothing published stays behind
# but on a crash, which resends.
_READ_AND_DELETE_PUBLISHED = (
    "WITH published AS (DELETE FROM outbox WHERE id = ANY($2::bigint[]))"
    " SELECT id, topic, key, headers, payload FROM outbox"
    " WHERE id <> ALL($2::bigint[]) ORDER BY id LIMIT $1"
)


class OutboxRelay:
    """Publishes one schema's outbox. Run `run()` as a task; `stop()` drains and ends it."""

    def __init__(
        self,
        *,
        db: DatabaseSettings,
        schema: str,
        producer: Producer,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        standby_retry_s: float = 2.0,
        service: str | None = None,
    ) -> None:
        quote_ident(schema)
        self._service = service or schema
        self._db = db
        self._schema = schema
        self._producer = producer
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._standby_retry_s = standby_retry_s
        self._wake = asyncio.Event()
        self._stopping = False
        self.is_leader = False
        self.published = 0
        self.reads = 0  # reads of the outbox table (one statement each)
        # Rows sent and confirmed, deleted by the next read's statement.
        self._published: list[int] = []

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == self._schema:
            self._wake.set()

    @property
    def published_ids(self) -> list[int]:
        """Rows sent whose delete waits for the next read (still in the table)."""
        return list(self._published)

    def wake(self) -> None:
        """Publish now: a writer in this process committed outbox rows."""
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                await self._run_connected()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.is_leader = False
                log.warning("outbox relay lost its database connection: %s", exc)
                await self._sleep(self._standby_retry_s)

    async def _run_connected(self) -> None:
        conn = await connect(self._db, self._schema, service=self._service)
        try:
            lock_key = f"onegrid-outbox-relay:{self._schema}"
            while not self._stopping:
                if await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", lock_key):
                    break
                await self._sleep(self._standby_retry_s)  # another replica publishes
            if self._stopping:
                return
            self.is_leader = True
            _local_relays[self._schema] = self
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
            while True:
                # Cleared before the read: a commit after it sets the wake again.
                self._wake.clear()
                sent = await self._publish_batch(conn)
                # A full batch may have more behind it, and a stop drains to empty; after
                # a partial batch the next read waits for a wake, not one more empty read.
                if sent and (sent == self._batch_size or self._stopping):
                    continue
                if self._stopping:
                    return  # drained: nothing left to send
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
        finally:
            self.is_leader = False
            if _local_relays.get(self._schema) is self:
                del _local_relays[self._schema]
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def _publish_batch(self, conn: asyncpg.Connection) -> int:
        self.reads += 1
        rows = await conn.fetch(_READ_AND_DELETE_PUBLISHED, self._batch_size, self._published)
        self._published = []
        if not rows:
            return 0
        spans: list[Span] = []
        records = []
        for row in rows:
            headers = [(name, value.encode()) for name, value in row["headers"]]
            span = self._publish_span(row["topic"], row["key"], headers)
            if span is not None:
                spans.append(span)
                headers = _with_traceparent(headers, traceparent_of(span))
            records.append(
                OutgoingRecord(
                    topic=row["topic"], key=row["key"], value=row["payload"], headers=headers
                )
            )
        started = time.monotonic()
        while True:
            try:
                await self._producer.send_many(records)
                break
            except Exception as exc:  # broker unavailable: keep the rows, try again
                log.warning("outbox relay could not publish %d events: %s", len(records), exc)
                for span in spans:
                    span.add_event("publish retried", {"error": str(exc)[:500]})
                await asyncio.sleep(1.0)
        for span in spans:
            span.set_status(Status(StatusCode.OK))
            span.end()
        for record in records:
            metrics.MESSAGES_PRODUCED.labels(self._service, record.topic).inc()
        self._published = [r["id"] for r in rows]
        self.published += len(rows)
        log.debug(
            "outbox relay published %d events in %.3fs", len(rows), time.monotonic() - started
        )
        return len(rows)

    def _publish_span(self, topic: str, key: str, headers: list[tuple[str, bytes]]) -> Span | None:
        """A PRODUCER span for one record, child of the row's stored traceparent; None for
        a row written outside any trace (nothing to continue)."""
        stored = dict(headers)
        traceparent = stored.get("traceparent")
        if not traceparent:
            return None
        subject = stored.get("ce_subject")
        message_id = stored.get("ce_id")
        ce_type = stored.get("ce_type", b"").decode()
        return get_tracer().start_span(
            f"{topic} publish {ce_type}".rstrip(),
            context=context_from_traceparent(traceparent.decode()),
            kind=SpanKind.PRODUCER,
            attributes=messaging_attributes(
                topic=topic,
                key=key,
                case_id=subject.decode() if subject else None,
                operation="send",
                message_id=message_id.decode() if message_id else None,
                service=self._service,
            ),
        )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()
