"""The background sender: claims due notifications and sends them, exactly once.

How a crash mid-send sends nothing twice:
1. claim (one statement, committed): due rows are locked FOR UPDATE SKIP LOCKED (so
   replicas never take the same row) and become `sending` with attempts + 1 and an attempt
   row; then quiet hours and the per-recipient rate limit are checked, and a row that must
   wait is put back as `deferred` (not dropped). Only then is the provider called.
2. the provider call carries the notification id as its idempotency key (SMS `out_id`,
   push/webhook `Idempotency-Key`, e-mail `Message-ID`).
3. record: `delivered` (with its outcome event through the outbox) or retry later with
   backoff, each one statement, a round's together in one round trip; or `failed` after
   the budget (one transaction: dead letter + NotificationOutcome failed + the next
   fallback channel). Each applies only while the row is still in this attempt
   (`status = 'sending' AND attempts = n`).
If the process dies between 1 and 3, the row stays `sending`; after `sending_lease_s` a
sender claims it again and repeats the call with the same idempotency key, so the
provider answers with the first message id instead of sending again. (SMTP has no such
key: a repeated e-mail carries the same Message-ID, which mail clients de-duplicate.)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from onegrid_common import outbox
from onegrid_common.db import set_after_commit
from onegrid_common.logs import log_context
from onegrid_common.pii import EncryptedValue, PiiCipher, PiiDecryptError
from onegrid_common.rate_limits import count_hits
from onegrid_common.service import Runtime
from onegrid_common.telemetry import CASE_ID, SERVICE, context_from_traceparent, get_tracer
from onegrid_contracts.notify import (
    NotifyChannel,
    OutcomeStatus,
    Recipient,
    RecipientKind,
    Urgency,
)
from onegrid_contracts.primitives import EncryptedValue as SealedValue
from onegrid_notification.channels import (
    Delivered,
    Failed,
    PushGateway,
    SendResult,
    SmsGateway,
    SmtpMailer,
    WebhookSender,
)
from onegrid_notification.config import NotificationSettings
from onegrid_notification.db import store
from onegrid_notification.directory import NotifyDirectory
from onegrid_notification.domain.planning import PlanContext, operator_alert
from onegrid_notification.domain.policy import QuietHours, rate_window, retry_in_s

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def phone_aad(reporter_id: str) -> bytes:
    """Associated data intake seals a reporter's phone with (onegrid_intake.intake.phone_aad)."""
    return b"onegrid.reporter.phone:" + reporter_id.encode()


@dataclass
class Channels:
    sms: SmsGateway
    push: PushGateway
    webhook: WebhookSender
    mail: SmtpMailer


@dataclass
class Notifier:
    """Everything the handlers and the sender share (rt.state["notifier"])."""

    config: NotificationSettings
    rendering: store.Rendering
    plan_context: PlanContext
    directory: NotifyDirectory
    cipher: PiiCipher
    channels: Channels
    quiet_hours: QuietHours | None
    clock: Clock = system_clock
    redis: aioredis.Redis | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wake_after_commit(self, conn: asyncpg.Connection) -> None:
        """Wake the sender once `conn`'s transaction has ended."""
        set_after_commit(conn, self.wake)


def notifier_of(rt: Runtime) -> Notifier:
    notifier = rt.state["notifier"]
    assert isinstance(notifier, Notifier)
    return notifier


async def run(rt: Runtime) -> None:
    """Background loop: process due rows; sleep until woken or the poll interval passes."""
    notifier = notifier_of(rt)
    while True:
        # Cleared before the round looks: a row committed meanwhile wakes the next one.
        notifier.wake.clear()
        try:
            handled = await process_due(rt.db, notifier)
        except Exception:
            log.exception("notification sender: a round failed; retrying")
            handled = 0
        if handled < notifier.config.batch_size:  # nothing else was due when it looked
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(notifier.wake.wait(), notifier.config.poll_interval_s)


# A round's due rows claimed in one statement that commits on its own: locked SKIP LOCKED
# (replicas never take the same row), each becomes `sending` with attempts + 1 and an
# attempt row; a row resumed after its sender died (`sending` past its lease) has its open
# attempt marked interrupted. `claimed_from` is the status it had.
_CLAIM_DUE = """
WITH due AS (
  SELECT id, status, attempts FROM notification
  WHERE (status IN ('pending', 'deferred') AND next_attempt_at <= $1)
     OR (status = 'sending' AND claimed_at <= $2)
  ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED),
claimed AS (
  UPDATE notification n SET status = 'sending', attempts = n.attempts + 1, claimed_at = $1,
    updated_at = now()
  FROM due WHERE n.id = due.id RETURNING n.*, due.status AS claimed_from),
interrupted AS (
  UPDATE notification_attempt a SET result = 'interrupted', finished_at = $1
  FROM due WHERE due.status = 'sending' AND a.notification_id = due.id
    AND a.n = due.attempts AND a.result IS NULL),
attempt AS (
  INSERT INTO notification_attempt (notification_id, n, started_at)
  SELECT id, attempts, $1 FROM claimed)
SELECT * FROM claimed ORDER BY next_attempt_at"""


async def process_due(pool: asyncpg.Pool, n: Notifier) -> int:
    """One round: claim due rows, put back those that must wait, send the others
    concurrently. Returns rows handled."""
    now = n.clock()
    async with pool.acquire() as conn:
        claimed = await conn.fetch(
            _CLAIM_DUE,
            now,
            now - timedelta(seconds=n.config.sending_lease_s),
            n.config.batch_size,
        )
        waits = await _must_wait(n, claimed, now)
        # Rare (quiet hours, a recipient past its limit): claimed first so that the common
        # round is one statement, not a transaction of four.
        waiting = [(row, until) for row, until in zip(claimed, waits, strict=True) if until]
        if waiting:
            async with conn.transaction():
                for row, until in waiting:
                    await _defer(conn, row, until, now)
    to_send = [row for row, until in zip(claimed, waits, strict=True) if until is None]
    if to_send:
        sent = await asyncio.gather(*(_send_one(pool, n, row) for row in to_send))
        now = n.clock()
        await _record_deliveries(pool, [d for d in sent if isinstance(d, _Delivery)], now)
        await _record_retries(pool, [r for r in sent if isinstance(r, _Retry)], now)
    return len(claimed)


async def _must_wait(
    n: Notifier, rows: list[asyncpg.Record], now: datetime
) -> list[datetime | None]:
    """For each row, until when it must wait (quiet hours, the recipient's hourly limit),
    or None: send now. The limits of the round's rows are counted in one Redis command."""
    waits: list[datetime | None] = []
    counted: list[int] = []  # the rows whose send counts against their recipient's limit
    for i, row in enumerate(rows):
        until = None
        if n.quiet_hours is not None:
            until = n.quiet_hours.defer_until(now, Urgency(row["urgency"]))
        # A resumed send was counted when first claimed.
        if until is None and row["claimed_from"] != "sending" and n.redis is not None:
            counted.append(i)
        waits.append(until)
    if not counted or n.redis is None:
        return waits
    window, window_end = rate_window(now)
    keys = [f"onegrid:notification:rate:{rows[i]['recipient_key']}:{window}" for i in counted]
    try:
        # The key names the hour; it lives two, so it outlasts its window, then goes.
        hits = await count_hits(n.redis, keys, 7200)
    except Exception:  # Redis holds what may be lost: without it, no limit
        log.warning("notification rate limit unavailable (Redis); sending without it")
        return waits
    for i, (count, _ttl) in zip(counted, hits, strict=True):
        urgent = Urgency(rows[i]["urgency"]) is Urgency.URGENT
        if count > n.config.rate_limit_per_hour and not urgent:
            waits[i] = window_end
    return waits


# A claimed row that must wait, put back: `deferred` until then, its claim's attempt undone
# (a resumed row's interrupted attempt stays on record).
_DEFER = """
WITH put_back AS (
  UPDATE notification SET status = 'deferred', attempts = attempts - 1, next_attempt_at = $2,
    deferred_until = $2, updated_at = now()
  WHERE id = $1 AND status = 'sending' AND attempts = $3 RETURNING *),
attempt AS (
  DELETE FROM notification_attempt
  WHERE notification_id = $1 AND n = $3 AND EXISTS (SELECT FROM put_back))
SELECT * FROM put_back"""


async def _defer(
    conn: asyncpg.Connection, row: asyncpg.Record, until: datetime, now: datetime
) -> None:
    updated = await conn.fetchrow(_DEFER, row["id"], until, row["attempts"])
    if updated is not None and row["deferred_until"] != until:  # once per deferral
        await store.emit_outcome(conn, updated, OutcomeStatus.DEFERRED, now, deferred_until=until)


def _send_span(row: asyncpg.Record) -> AbstractContextManager[Span]:
    """The send as a CLIENT span in the case's trace: a child of the span that asked for
    the notification (stored with the row), however long it waited."""
    attributes: dict[str, AttributeValue] = {
        SERVICE: "notification",
        "onegrid.notification.id": str(row["id"]),
        "onegrid.notification.channel": row["channel"],
        "onegrid.notification.template": row["template_id"],
        "onegrid.notification.attempt": row["attempts"],
    }
    if row["case_id"]:
        attributes[CASE_ID] = str(row["case_id"])
    return get_tracer().start_as_current_span(
        f"notification send {row['channel']}",
        context=context_from_traceparent(row["traceparent"]),
        kind=SpanKind.CLIENT,
        attributes=attributes,
    )


@dataclass(frozen=True)
class _Delivery:
    row: asyncpg.Record
    result: Delivered
    span_id: str | None  # the send's span


@dataclass(frozen=True)
class _Retry:
    row: asyncpg.Record
    error: str
    retry_in_s: float
    span_id: str | None  # the failed send's span


async def _send_one(
    pool: asyncpg.Pool, n: Notifier, row: asyncpg.Record
) -> _Delivery | _Retry | None:
    """Send one claimed row. A delivery or a failure to retry is returned, to be recorded
    with the round's others (a gateway that throttles fails many sends of a round); a
    failure that ends the row is recorded now."""
    with (
        log_context(case_id=str(row["case_id"]) if row["case_id"] else None),
        _send_span(row) as span,
    ):
        try:
            result = await asyncio.wait_for(_send(pool, n, row), n.config.send_timeout_s)
        except TimeoutError:
            result = Failed("provider call timed out", permanent=False)
        except Exception as exc:  # a bug or an unexpected answer: retried, then dead-lettered
            log.exception("notification %s: send failed unexpectedly", row["id"])
            result = Failed(f"unexpected error: {type(exc).__name__}", permanent=False)
        if isinstance(result, Delivered):
            return _Delivery(row, result, _span_id())
        span.set_status(StatusCode.ERROR, result.error)
        delay = retry_in_s(
            row["attempts"],
            max_attempts=n.config.max_attempts,
            base_s=n.config.backoff_base_s,
            max_s=n.config.backoff_max_s,
            permanent=result.permanent,
            retry_after_s=result.retry_after_s,
        )
        if delay is not None:
            return _Retry(row, result.error, delay, _span_id())
        await _give_up(pool, n, row, result)
        return None


async def _give_up(pool: asyncpg.Pool, n: Notifier, row: asyncpg.Record, result: Failed) -> None:
    """Record a send that ends the row: dead-lettered and the next channel queued (the
    operators told when none is left)."""
    now = n.clock()
    attempt = row["attempts"]
    async with pool.acquire() as conn, conn.transaction():
        # Only while the row is still ours: another sender takes it over when our lease
        # runs out (then status or attempts differ and this changes nothing).
        current = await conn.fetchrow(
            "SELECT * FROM notification WHERE id = $1 AND status = 'sending' AND attempts = $2"
            " FOR UPDATE",
            row["id"],
            attempt,
        )
        if current is None:
            return
        failed = await conn.fetchrow(
            "UPDATE notification SET status = 'failed', last_error = $2, finished_at = $3,"
            " updated_at = now() WHERE id = $1 RETURNING *",
            row["id"],
            result.error,
            now,
        )
        await _attempt(conn, row, "failed", result.error, None, now)
        await store.dead_letter(conn, failed, result.error, now)
        log.warning(
            "notification failed after %d attempts",
            attempt,
            extra={
                "notification_id": str(row["id"]),
                "channel": row["channel"],
                "error": result.error,
            },
        )
        following = store.next_notification(failed)
        queued = None
        if following is not None:
            queued = await store.enqueue(conn, following, n.rendering, now)
        if queued is None and failed["recipient"]["kind"] != RecipientKind.OPERATORS.value:
            await _tell_operators(conn, n, failed, now)
    n.wake.set()


async def _tell_operators(
    conn: asyncpg.Connection, n: Notifier, failed: asyncpg.Record, now: datetime
) -> None:
    """Every channel of a notification failed: the command centre hears of it."""
    alert = operator_alert(
        n.plan_context,
        failed["case_no"] or "-",
        "通知发送失败",
        f"{failed['template_id']} 发给 {failed['recipient_key']} 的通知在所有渠道均发送失败",
    )
    await store.enqueue_choosing_channels(
        conn,
        [
            store.NewNotification(
                request_id=failed["request_id"],
                dedup_key=f"{failed['id']}:delivery_failed",
                recipient=alert.recipient,
                channels=(),  # the operators' preference and kind choose them
                template_id=alert.template_id,
                template_version=None,
                variables=alert.variables,
                urgency=alert.urgency,
                case_id=failed["case_id"],
                case_no=failed["case_no"],
                requested_by="notification",
                traceparent=failed["traceparent"],
            )
        ],
        n.rendering,
        now,
    )


# A delivery: the row (only while it is still in this attempt), its attempt and its
# outcome event, in one statement that commits on its own (most sends end here).
_DELIVERED = """
WITH done AS (
  UPDATE notification SET status = 'delivered', provider_message_id = $2, last_error = NULL,
    finished_at = $3, updated_at = now()
  WHERE id = $1 AND status = 'sending' AND attempts = $4 RETURNING id),
attempt AS (
  UPDATE notification_attempt SET result = 'delivered', error = NULL,
    provider_message_id = $2, finished_at = $3, span_id = $5
  WHERE notification_id = $1 AND n = $4 AND EXISTS (SELECT FROM done)),
event AS (SELECT outbox_enqueue($6, $7, $8, $9) FROM done)
SELECT count(*) FROM event"""


async def _record_deliveries(
    pool: asyncpg.Pool, deliveries: Sequence[_Delivery], now: datetime
) -> None:
    """Record a round's deliveries in one round trip; a row no longer in its attempt (its
    lease ran out and another sender took it) is left as it is."""
    if not deliveries:
        return
    args = []
    for d in deliveries:
        delivered = {**dict(d.row), "provider_message_id": d.result.provider_message_id}
        sent = store.outcome_event(delivered, OutcomeStatus.DELIVERED, now)
        args.append(
            (
                d.row["id"],
                d.result.provider_message_id,
                now,
                d.row["attempts"],
                d.span_id,
                *sent.args,
            )
        )
    async with pool.acquire() as conn:
        # One row (a count) per delivery, in order: the executions are pipelined.
        written = await conn.fetchmany(_DELIVERED, args)
        if any(r[0] for r in written):
            await outbox.written(conn)
    for d, count in zip(deliveries, written, strict=True):
        if count[0]:
            log.info(
                "notification delivered",
                extra={
                    "notification_id": str(d.row["id"]),
                    "recipient": d.row["recipient_key"],
                    "channel": d.row["channel"],
                    "attempts": d.row["attempts"],
                },
            )


# A failed send to try again: the row back to `pending` after its backoff and its attempt
# on record, only while the row is still in this attempt; one statement, on its own.
_RETRY = """
WITH again AS (
  UPDATE notification SET status = 'pending', next_attempt_at = $2, last_error = $3,
    updated_at = now()
  WHERE id = $1 AND status = 'sending' AND attempts = $4 RETURNING id),
attempt AS (
  UPDATE notification_attempt SET result = 'retry', error = $3, provider_message_id = NULL,
    finished_at = $5, span_id = $6
  WHERE notification_id = $1 AND n = $4 AND EXISTS (SELECT FROM again))
SELECT count(*) FROM again"""


async def _record_retries(pool: asyncpg.Pool, retries: Sequence[_Retry], now: datetime) -> None:
    """Record a round's failed sends to try again in one round trip; a row no longer in
    its attempt is left as it is."""
    if not retries:
        return
    args = [
        (r.row["id"], now + timedelta(seconds=r.retry_in_s), r.error, r.row["attempts"], now,
         r.span_id)
        for r in retries
    ]  # fmt: skip
    async with pool.acquire() as conn:
        written = await conn.fetchmany(_RETRY, args)
    for r, count in zip(retries, written, strict=True):
        if count[0]:
            log.info(
                "notification send failed; retrying",
                extra={
                    "notification_id": str(r.row["id"]),
                    "channel": r.row["channel"],
                    "error": r.error,
                    "retry_in_s": r.retry_in_s,
                },
            )


def _span_id() -> str | None:
    span = trace.get_current_span().get_span_context()  # the send span, when traced
    return format(span.span_id, "016x") if span.is_valid else None


async def _attempt(
    conn: asyncpg.Connection,
    row: asyncpg.Record,
    result: str,
    error: str | None,
    provider_message_id: str | None,
    now: datetime,
) -> None:
    await conn.execute(
        "UPDATE notification_attempt SET result = $3, error = $4, provider_message_id = $5,"
        " finished_at = $6, span_id = $7 WHERE notification_id = $1 AND n = $2",
        row["id"],
        row["attempts"],
        result,
        error,
        provider_message_id,
        now,
        _span_id(),
    )


# --- addresses, resolved at send time ----------------------------------------------------


async def _preference(pool: asyncpg.Pool, recipient: Recipient) -> store.Preference | None:
    async with pool.acquire() as conn:
        return await store.get_preference(conn, recipient.key)


async def _send(pool: asyncpg.Pool, n: Notifier, row: asyncpg.Record) -> SendResult:
    recipient = Recipient.model_validate(row["recipient"])
    channel = NotifyChannel(row["channel"])
    key = str(row["id"])
    if channel is NotifyChannel.SMS:
        phone = _phone(n, recipient)
        if isinstance(phone, Failed):
            return phone
        return await n.channels.sms.send(
            out_id=key, phone=phone, sign_name=n.config.sms_sign_name, content=row["body"]
        )
    if channel is NotifyChannel.APP_PUSH:
        target = _push_target(n, recipient)
        if target is None:
            return Failed(f"no app user for {recipient.key}", permanent=True)
        return await n.channels.push.send(
            idempotency_key=key, target=target, title=row["title"], body=row["body"]
        )
    # Only e-mail and webhooks read the recipient's preferences (their addresses).
    if channel is NotifyChannel.EMAIL:
        to = recipient.contact.email if recipient.contact else None
        if to is None and (pref := await _preference(pool, recipient)) is not None:
            to = pref.email
        if to is None and recipient.kind is RecipientKind.OPERATORS:
            to = n.config.operators_email
        if not to:
            return Failed(f"no e-mail address for {recipient.key}", permanent=True)
        return await n.channels.mail.send(
            message_id=key, to=to, subject=row["title"], text=row["body"]
        )
    pref = await _preference(pool, recipient)
    url = pref.webhook_url if pref else None
    if not url:
        return Failed(f"no webhook for {recipient.key}", permanent=True)
    payload: dict[str, Any] = {
        "notification_id": key,
        "recipient": recipient.key,
        "template_id": row["template_id"],
        "template_version": row["template_version"],
        "title": row["title"],
        "text": row["body"],
        "variables": row["variables"],
        "case_id": str(row["case_id"]) if row["case_id"] else None,
        "case_no": row["case_no"],
    }
    return await n.channels.webhook.send(url=url, idempotency_key=key, payload=payload)


def _phone(n: Notifier, recipient: Recipient) -> str | Failed:
    """The clear phone number, for this call only; never logged."""
    if recipient.kind is RecipientKind.REPORTER:
        sealed = recipient.contact.phone if recipient.contact else None
        if sealed is None:
            return Failed("reporter has no phone", permanent=True)
        try:
            return open_phone(n.cipher, sealed, recipient.id)
        except PiiDecryptError as exc:
            return Failed(f"reporter phone cannot be opened: {exc}", permanent=True)
    staff = recipient.id
    if recipient.kind is RecipientKind.UNIT:
        staff = n.directory.unit_head(recipient.id) or ""
    phone = n.directory.staff_phone(staff) if staff else None
    if phone is None:
        return Failed(f"no phone for {recipient.key}", permanent=True)
    return phone


def _push_target(n: Notifier, recipient: Recipient) -> str | None:
    if recipient.kind is RecipientKind.UNIT:
        return n.directory.unit_head(recipient.id)
    if recipient.kind is RecipientKind.REPORTER:
        return None  # residents are told by SMS; the resident app is not a push target here
    return recipient.id


def open_phone(cipher: PiiCipher, sealed: SealedValue, reporter_id: str) -> str:
    value = EncryptedValue(
        key_id=sealed.key_id,
        nonce=base64.b64decode(sealed.nonce),
        ciphertext=base64.b64decode(sealed.ciphertext),
    )
    return cipher.decrypt(value, associated_data=phone_aad(reporter_id))
