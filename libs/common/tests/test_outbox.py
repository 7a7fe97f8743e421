"""The outbox relay publishes committed events once per row, in commit order per key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from onegrid_common import outbox
from onegrid_common.outbox import OutboxRelay
from onegrid_common.producer import Producer
from onegrid_common.settings import DatabaseSettings, KafkaSettings
from onegrid_common.testing.helpers import (
    Counted,
    by_key,
    create_topic,
    eventually,
    migrate_schema,
    pool_for,
    read_topic,
    unique,
)
from onegrid_contracts.envelope import parse_headers

pytestmark = pytest.mark.integration


def _kafka(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap, enable_idempotence=False)


@contextlib.asynccontextmanager
async def running_relay(dsn: str, schema: str, bootstrap: str, **kwargs: object):  # type: ignore[no-untyped-def]
    producer = Producer(_kafka(bootstrap), client_id="test-relay")
    await producer.start()
    relay = OutboxRelay(db=DatabaseSettings(dsn=dsn), schema=schema, producer=producer, **kwargs)  # type: ignore[arg-type]
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 20)
        await producer.stop()


async def waiting_after_its_first_read(relay: OutboxRelay) -> None:
    """Until the relay leads and its first read found the outbox empty: it waits now."""
    for _ in range(100):
        if relay.is_leader and relay.reads:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)  # the read's answer handled, the wait begun
    assert relay.reads == 1


@dataclass(frozen=True)
class OwnOutbox:
    schema: str
    topic: str  # one partition: the order of publishing is the order read
    pool: asyncpg.Pool


@pytest.fixture
async def own(pg_dsn: str, kafka_bootstrap: str) -> AsyncIterator[OwnOutbox]:
    """A migrated schema of the test's own with its pool, and a topic of its own."""
    schema, topic = unique("ob"), unique("test.outbox")
    await create_topic(kafka_bootstrap, topic, partitions=1)
    await migrate_schema(pg_dsn, schema)
    pool = await pool_for(pg_dsn, schema)
    try:
        yield OwnOutbox(schema, topic, pool)
    finally:
        await pool.close()


async def test_enqueue_outside_a_transaction_is_refused(pg_dsn: str) -> None:
    schema = unique("ob")
    await migrate_schema(pg_dsn, schema)
    pool = await pool_for(pg_dsn, schema)
    try:
        async with pool.acquire() as conn:
            with pytest.raises(RuntimeError, match="inside the business transaction"):
                await outbox.enqueue(
                    conn, source="test", topic="t", key="k", payload=Counted(key="k", seq=1)
                )
    finally:
        await pool.close()


async def test_relay_publishes_every_event_with_its_envelope_in_key_order(
    pg_dsn: str, kafka_bootstrap: str
) -> None:
    schema, topic = unique("ob"), unique("test.outbox")
    await create_topic(kafka_bootstrap, topic)
    await migrate_schema(pg_dsn, schema)
    pool = await pool_for(pg_dsn, schema)
    try:
        async with pool.acquire() as conn:
            for seq in range(50):
                for key in ("case-a", "case-b", "case-c"):
                    async with conn.transaction():
                        await outbox.enqueue(
                            conn,
                            source="test",
                            topic=topic,
                            key=key,
                            payload=Counted(key=key, seq=seq),
                        )
        async with running_relay(pg_dsn, schema, kafka_bootstrap, batch_size=40):
            records = await read_topic(kafka_bootstrap, topic, expected=150)
        left = await pool.fetchval("SELECT count(*) FROM outbox")
    finally:
        await pool.close()
    assert len(records) == 150
    assert by_key(records) == {k: list(range(50)) for k in ("case-a", "case-b", "case-c")}
    env = parse_headers(records[0].headers)
    assert env.type == "onegrid.test.counted.v1"
    assert env.source == "test"
    assert env.subject == records[0].key.decode()
    assert left == 0


async def test_a_later_transaction_on_the_same_key_waits_so_commit_order_is_publish_order(
    own: OwnOutbox, pg_dsn: str, kafka_bootstrap: str
) -> None:
    """Sequence ids are taken at insert, not commit. Without the per-key lock the second
    transaction would commit first and its event would be published before the first."""
    schema, topic, pool = own.schema, own.topic, own.pool
    first_enqueued = asyncio.Event()
    committed: list[str] = []

    async def slow_first() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(
                conn, source="t", topic=topic, key="case-1", payload=Counted(key="case-1", seq=1)
            )
            first_enqueued.set()
            await asyncio.sleep(0.5)
        committed.append("first")

    async def fast_second() -> None:
        await first_enqueued.wait()
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(
                conn, source="t", topic=topic, key="case-1", payload=Counted(key="case-1", seq=2)
            )
        committed.append("second")

    async def other_key() -> None:
        await first_enqueued.wait()
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(
                conn, source="t", topic=topic, key="case-2", payload=Counted(key="case-2", seq=1)
            )
        committed.append("other key")

    async with running_relay(pg_dsn, schema, kafka_bootstrap, poll_interval_s=0.05):
        await asyncio.gather(slow_first(), fast_second(), other_key())
        records = await read_topic(kafka_bootstrap, topic, expected=3)
    assert committed == ["other key", "first", "second"]
    assert by_key(records) == {"case-1": [1, 2], "case-2": [1]}


async def test_only_one_relay_per_schema_publishes_and_a_standby_takes_over(
    pg_dsn: str, kafka_bootstrap: str
) -> None:
    schema, topic = unique("ob"), unique("test.outbox")
    await create_topic(kafka_bootstrap, topic)
    await migrate_schema(pg_dsn, schema)
    pool = await pool_for(pg_dsn, schema)
    try:
        async with running_relay(pg_dsn, schema, kafka_bootstrap, standby_retry_s=0.1) as first:
            await asyncio.sleep(0.5)
            async with running_relay(
                pg_dsn, schema, kafka_bootstrap, standby_retry_s=0.1
            ) as second:
                await asyncio.sleep(0.5)
                assert first.is_leader
                assert not second.is_leader
                await first.stop()
                for _ in range(50):
                    if second.is_leader:
                        break
                    await asyncio.sleep(0.1)
                assert second.is_leader
                async with pool.acquire() as conn, conn.transaction():
                    await outbox.enqueue(
                        conn, source="t", topic=topic, key="k", payload=Counted(key="k", seq=7)
                    )
                records = await read_topic(kafka_bootstrap, topic, expected=1)
                for _ in range(50):  # the count follows the delete, after the broker's ack
                    if second.published:
                        break
                    await asyncio.sleep(0.1)
                assert second.published == 1
                assert first.published == 0
    finally:
        await pool.close()
    assert by_key(records) == {"k": [7]}


async def test_enqueued_but_rolled_back_events_are_never_published(
    own: OwnOutbox, pg_dsn: str, kafka_bootstrap: str
) -> None:
    schema, topic, pool = own.schema, own.topic, own.pool
    async with pool.acquire() as conn:
        with contextlib.suppress(ZeroDivisionError):
            async with conn.transaction():
                await outbox.enqueue(
                    conn, source="t", topic=topic, key="k", payload=Counted(key="k", seq=1)
                )
                _ = 1 / 0
        async with conn.transaction():
            await outbox.enqueue(
                conn, source="t", topic=topic, key="k", payload=Counted(key="k", seq=2)
            )
    async with running_relay(pg_dsn, schema, kafka_bootstrap):
        records = await read_topic(kafka_bootstrap, topic, expected=2, timeout_s=3)
    assert by_key(records) == {"k": [2]}


async def test_a_commit_wakes_the_relay_in_this_process_without_waiting_for_its_poll(
    own: OwnOutbox, pg_dsn: str, kafka_bootstrap: str
) -> None:
    schema, topic, pool = own.schema, own.topic, own.pool
    async with running_relay(pg_dsn, schema, kafka_bootstrap, poll_interval_s=60) as relay:
        await waiting_after_its_first_read(relay)
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(
                conn, source="t", topic=topic, key="k", payload=Counted(key="k", seq=1)
            )
        records = await read_topic(kafka_bootstrap, topic, expected=1, timeout_s=10)
    assert by_key(records) == {"k": [1]}


async def test_after_a_partial_batch_the_relay_waits_for_a_wake_not_another_read(
    own: OwnOutbox, pg_dsn: str, kafka_bootstrap: str
) -> None:
    schema, topic, pool = own.schema, own.topic, own.pool
    async with running_relay(
        pg_dsn, schema, kafka_bootstrap, poll_interval_s=60, batch_size=10
    ) as relay:
        await waiting_after_its_first_read(relay)
        for seq in (1, 2):
            async with pool.acquire() as conn, conn.transaction():
                for n in range(3):
                    await outbox.enqueue(
                        conn,
                        source="t",
                        topic=topic,
                        key="k",
                        payload=Counted(key="k", seq=seq * 10 + n),
                    )
            await read_topic(kafka_bootstrap, topic, expected=3 * seq, timeout_s=10)
            for _ in range(20):  # the relay deletes after publishing
                if relay.published == 3 * seq:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert relay.reads == 1 + seq  # one read a wake: 3 of 10 was partial


async def test_published_rows_are_deleted_by_the_next_read_and_are_not_counted_as_waiting(
    own: OwnOutbox, pg_dsn: str, kafka_bootstrap: str
) -> None:
    schema, topic, pool = own.schema, own.topic, own.pool

    async def write(seq: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(
                conn, source="t", topic=topic, key="k", payload=Counted(key="k", seq=seq)
            )

    async with running_relay(pg_dsn, schema, kafka_bootstrap, poll_interval_s=60) as relay:
        await waiting_after_its_first_read(relay)
        await write(1)
        await read_topic(kafka_bootstrap, topic, expected=1, timeout_s=10)
        await eventually(lambda: relay.published == 1, timeout_s=2, what="the send confirmed")
        first = relay.published_ids
        assert len(first) == 1
        async with pool.acquire() as conn:
            # Sent, still in the table until the next read, and not waiting.
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 1
            assert await outbox.backlog(conn, published=first) == (0, 0.0)
            assert (await outbox.backlog(conn))[0] == 1
        await write(2)
        records = await read_topic(kafka_bootstrap, topic, expected=2, timeout_s=10)
        await eventually(lambda: relay.published == 2, timeout_s=2, what="the send confirmed")
        # The read that found the second row deleted the first and did not send it again.
        ids = await pool.fetch("SELECT id FROM outbox")
        assert [r["id"] for r in ids] == relay.published_ids != first
        assert relay.reads == 3  # one read a wake
    assert by_key(records) == {"k": [1, 2]}
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0  # the stop's read


@contextlib.asynccontextmanager
async def outbox_notifications(pool: asyncpg.Pool) -> AsyncIterator[list[str]]:
    """The payloads of the outbox NOTIFYs heard while inside (a schema name each)."""
    listener = await pool.acquire()
    heard: list[str] = []

    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        heard.append(payload)

    await listener.add_listener(outbox.NOTIFY_CHANNEL, on_notify)
    try:
        yield heard
    finally:
        await listener.remove_listener(outbox.NOTIFY_CHANNEL, on_notify)
        await pool.release(listener)


async def heard_within(heard: list[str], seconds: float = 2.5) -> None:
    for _ in range(int(seconds / 0.05)):
        if heard:
            return
        await asyncio.sleep(0.05)


async def test_a_writer_without_a_leading_relay_here_notifies_after_commit_not_before(
    pg_dsn: str,
) -> None:
    schema = unique("ob")
    await migrate_schema(pg_dsn, schema)
    pool = await pool_for(pg_dsn, schema)
    try:
        async with outbox_notifications(pool) as heard, pool.acquire() as conn:
            async with conn.transaction():
                await outbox.enqueue(
                    conn, source="t", topic="t", key="k", payload=Counted(key="k", seq=1)
                )
                await asyncio.sleep(0.3)
                assert heard == []  # nothing inside the business transaction
            await heard_within(heard)
    finally:
        await pool.close()
    assert heard == [schema]


async def test_write_many_writes_each_row_with_its_event_in_order(pg_dsn: str) -> None:
    schema = unique("ob")
    await migrate_schema(pg_dsn, schema, "CREATE TABLE note (seq int, text text)")
    pool = await pool_for(pg_dsn, schema)
    statement = f"INSERT INTO note (seq, text) SELECT $1, $2 {outbox.enqueue_from(3)}"
    events = [
        outbox.event_row(source="test", topic="t", key="k", payload=Counted(key="k", seq=n))
        for n in (1, 2)
    ]
    try:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.write_many(conn, statement, [])  # nothing to write: no statement
            await outbox.write_many(
                conn, statement, [((1, "一"), events[0]), ((2, "二"), events[1])]
            )
        notes = await pool.fetch("SELECT seq, text FROM note ORDER BY seq")
        queued = await pool.fetch("SELECT key, payload FROM outbox ORDER BY id")
    finally:
        await pool.close()
    assert [(r["seq"], r["text"]) for r in notes] == [(1, "一"), (2, "二")]
    assert [bytes(r["payload"]) for r in queued] == [e.payload for e in events]


async def test_enqueue_each_writes_a_statements_events_in_order_only_when_it_is_told(
    pg_dsn: str,
) -> None:
    schema = unique("ob")
    await migrate_schema(pg_dsn, schema)
    pool = await pool_for(pg_dsn, schema)
    statement = f"WITH sent AS ({outbox.enqueue_each(2)} WHERE $1) SELECT count(*) FROM sent"
    events = [
        outbox.event_row(source="test", topic="t", key="k", payload=Counted(key="k", seq=n))
        for n in (1, 2, 3)
    ]
    try:
        async with pool.acquire() as conn:
            skipped = await conn.fetchval(statement, False, *outbox.event_columns(events))
            sent = await conn.fetchval(statement, True, *outbox.event_columns(events))
        queued = await pool.fetch("SELECT topic, key, headers, payload FROM outbox ORDER BY id")
    finally:
        await pool.close()
    assert (skipped, sent) == (0, 3)
    assert [bytes(r["payload"]) for r in queued] == [e.payload for e in events]
    assert [r["headers"] for r in queued] == [e.headers for e in events]
    assert {(r["topic"], r["key"]) for r in queued} == {("t", "k")}


async def test_write_many_wakes_the_relay_once_its_rows_are_committed(pg_dsn: str) -> None:
    # No relay leads this schema here: the wake is a NOTIFY after commit.
    schema = unique("ob")
    await migrate_schema(pg_dsn, schema, "CREATE TABLE note (seq int)")
    pool = await pool_for(pg_dsn, schema)
    event = outbox.event_row(source="test", topic="t", key="k", payload=Counted(key="k", seq=1))
    try:
        async with outbox_notifications(pool) as heard, pool.acquire() as conn:
            async with conn.transaction():
                await outbox.write_many(
                    conn, f"INSERT INTO note SELECT $1 {outbox.enqueue_from(2)}", [((1,), event)]
                )
            await heard_within(heard)
    finally:
        await pool.close()
    assert heard == [schema]
