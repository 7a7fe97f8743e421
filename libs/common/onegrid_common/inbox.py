"""Idempotent inbox: a consumer records each message id in the same transaction as the
message's effect. A redelivered message finds its id and is skipped, so at-least-once
delivery gives an exactly-once effect."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def record(conn: asyncpg.Connection, *, consumer: str, message_id: str, topic: str) -> bool:
    """True when the message is new (go on), False when it was already processed."""
    if not conn.is_in_transaction():
        raise RuntimeError("inbox.record must run inside the effect's transaction")
    status: str = await conn.execute(
        "INSERT INTO inbox (consumer, message_id, topic) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING",
        consumer,
        message_id,
        topic,
    )
    return status.endswith(" 1")


async def record_many(
    conn: asyncpg.Connection, *, consumer: str, messages: Sequence[tuple[str, str]]
) -> set[str]:
    """Record several (message id, topic) at once; the ids that are new."""
    if not conn.is_in_transaction():
        raise RuntimeError("inbox.record_many must run inside the effect's transaction")
    rows = await conn.fetch(
        "INSERT INTO inbox (consumer, message_id, topic)"
        " SELECT $1, m.id, m.topic FROM unnest($2::text[], $3::text[]) AS m(id, topic)"
        " ON CONFLICT DO NOTHING RETURNING message_id",
        consumer,
        [message_id for message_id, _ in messages],
        [topic for _, topic in messages],
    )
    return {row["message_id"] for row in rows}


async def prune(conn: asyncpg.Connection, *, older_than_days: int) -> int:
    """Forget ids older than any message the broker can still redeliver (topic retention)."""
    status: str = await conn.execute(
        "DELETE FROM inbox WHERE received_at < now() - make_interval(days => $1)", older_than_days
    )
    return int(status.split()[-1])
