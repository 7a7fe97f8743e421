"""Idempotent inbox: a consumer records each message id in the same transaction as the
message's effect. A redelivered message finds its id and is skipped, so at-least-once
delivery gives an exactly-once effect."""

from __future__ import annotations

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


async def prune(conn: asyncpg.Connection, *, older_than_days: int) -> int:
    """Forget ids older than any message the broker can still redeliver (topic retention)."""
    status: str = await conn.execute(
        "DELETE FROM inbox WHERE received_at < now() - make_interval(days => $1)", older_than_days
    )
    return int(status.split()[-1])
