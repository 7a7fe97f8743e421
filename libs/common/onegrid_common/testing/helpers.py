"""Helpers for integration tests: a test payload, schema setup, creating and reading topics.

Used by the runtime tests and by processes they spawn (e.g. the exactly-once worker)."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, TypeVar, overload

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import ConfigDict

from onegrid_common import db, migrations
from onegrid_common.settings import DatabaseSettings, Settings
from onegrid_contracts.base import Payload

T = TypeVar("T")


class Counted(Payload):
    """A numbered event of one key: the tests check each arrives once, in order."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"key": "k-1", "seq": 1, "fail": None}]}
    )
    ce_type: ClassVar[str] = "onegrid.test.counted.v1"

    key: str
    seq: int
    fail: str | None = None  # "always": the handler raises on every attempt


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def with_own_groups(settings: Settings, tag: str, *, start_at_end: bool = False) -> Settings:
    """`settings` whose consumer groups are this test's own (suffix `.tag`): other tests'
    committed offsets don't apply. `start_at_end`: the new groups skip what the topics held
    before the services started (events that earlier tests of the session left there)."""
    kafka = settings.kafka.model_copy(
        update={
            "group_suffix": f".{tag}",
            "new_groups_start_at": "end" if start_at_end else "beginning",
        }
    )
    return settings.model_copy(update={"kafka": kafka})


async def migrate_schema(dsn: str, schema: str, extra_sql: str = "") -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(conn, schema, [])
        if extra_sql:
            await conn.execute(f"SET search_path TO {schema}; {extra_sql}")
    finally:
        await conn.close()


async def pool_for(dsn: str, schema: str) -> asyncpg.Pool:
    return await db.create_pool(DatabaseSettings(dsn=dsn, pool_min_size=1, pool_max_size=4), schema)


async def create_topic(bootstrap: str, name: str, partitions: int = 4) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def read_topic(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0
) -> list[ConsumerRecord[Any, Any]]:
    """Every record of `topic` from the start, waiting until `expected` have arrived."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(records) < expected and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


def by_key(records: Sequence[ConsumerRecord[Any, Any]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in records:
        payload = Counted.model_validate_json(r.value)
        out.setdefault(payload.key, []).append(payload.seq)
    return out


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout_s: float = ...,
    interval_s: float = ...,
    what: str = ...,
) -> T: ...
@overload
async def eventually(
    check: Callable[[], T | None],
    *,
    timeout_s: float = ...,
    interval_s: float = ...,
    what: str = ...,
) -> T: ...
async def eventually(
    check: Callable[[], Any],
    *,
    timeout_s: float = 90.0,
    interval_s: float = 0.1,
    what: str = "condition",
) -> Any:
    """Poll `check` (sync or async) until it returns something truthy and return that;
    AssertionError naming `what` and the last value after `timeout_s`. Tests wait with this,
    never with a fixed sleep: it ends as soon as the effect is there."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s (last: {result!r})")
        await asyncio.sleep(interval_s)
