"""The notification service killed with -9 between claiming a message and hearing the
gateway's answer, then restarted: the message reaches the handset once."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from onegrid_common.localstack import free_port
from onegrid_common.pii import PiiCipher
from onegrid_common.producer import OutgoingRecord, Producer
from onegrid_common.settings import Settings
from onegrid_common.testing.helpers import create_topic, eventually, pool_for
from onegrid_common.testing.plugin import RunModule
from onegrid_contracts.envelope import build_headers, encode_payload, new_envelope
from onegrid_contracts.notify import NotificationRequested
from onegrid_notification.domain.planning import reporter_recipient
from onegrid_notification.simulators import sms
from onegrid_notification.testing import Server, reporter

pytestmark = pytest.mark.integration


async def wait_ready(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"notification on port {port} not ready in {timeout_s}s")


async def test_a_restart_mid_send_sends_nothing_twice(
    settings: Settings, kafka_bootstrap: str, run_module: RunModule
) -> None:
    tag = uuid.uuid4().hex[:8]
    requests_topic = f"test.notification.requests.{tag}"
    await create_topic(kafka_bootstrap, requests_topic)
    sim = sms.SmsGatewaySim(sms.SmsSimSettings(reply_delay_ms=30_000))  # answers too late
    async with Server(sim.app()) as gateway:
        env = {
            "ONEGRID_NOTIFICATION_SMS_URL": gateway.url,
            "ONEGRID_NOTIFICATION_REQUESTS_TOPIC": requests_topic,
            "ONEGRID_NOTIFICATION_CASES_TOPIC": f"test.notification.cases.{tag}",
            "ONEGRID_NOTIFICATION_GROUP_SUFFIX": f"-{tag}",
            "ONEGRID_NOTIFICATION_SENDING_LEASE_S": "1",
            "ONEGRID_NOTIFICATION_SEND_TIMEOUT_S": "300",
            "ONEGRID_NOTIFICATION_QUIET_START": "00:00",  # start == end: no quiet hours
            "ONEGRID_NOTIFICATION_QUIET_END": "00:00",
        }
        await create_topic(kafka_bootstrap, env["ONEGRID_NOTIFICATION_CASES_TOPIC"])
        port = free_port()
        first = run_module("onegrid_cli.main", "run", "notification", "--port", str(port), env=env)
        await wait_ready(port)

        cipher = PiiCipher.from_settings(settings.security)
        recipient = reporter_recipient(reporter(cipher, "13800000009"))
        assert recipient is not None
        req = NotificationRequested(
            request_id=uuid.uuid4(),
            dedup_key=f"restart:{tag}",
            recipient=recipient,
            template_id="case_dispatched",
            variables={"case_no": "4205-20261123-000099", "unit_name": "宜昌市城市管理执法局"},
            requested_by="test",
            requested_at=datetime.now(UTC),
        )
        producer = Producer(settings.kafka, client_id=f"notification-restart-{tag}")
        await producer.start()
        try:
            envelope = new_envelope(req, source="test", subject=recipient.key)
            await producer.send(
                OutgoingRecord(
                    topic=requests_topic,
                    key=recipient.key,
                    value=encode_payload(req),
                    headers=build_headers(envelope),
                )
            )
        finally:
            await producer.stop()

        async def accepted_by_gateway() -> bool:
            return any(m["phone"] == "13800000009" for m in sim.messages)

        await eventually(accepted_by_gateway, timeout_s=60)
        first.kill()  # the gateway sent it; the service never heard back

        pool = await pool_for(settings.db.dsn, "notification")
        try:
            row = await pool.fetchrow(
                "SELECT * FROM notification WHERE dedup_key = $1", req.dedup_key
            )
            assert row is not None
            assert row["status"] == "sending"
            assert row["attempts"] == 1

            sim.settings = sms.SmsSimSettings(reply_delay_ms=0)
            second = run_module(
                "onegrid_cli.main", "run", "notification", "--port", str(port), env=env
            )
            await wait_ready(port)

            async def delivered() -> bool:
                status = await pool.fetchval(
                    "SELECT status FROM notification WHERE id = $1", row["id"]
                )
                return bool(status == "delivered")

            await eventually(delivered, timeout_s=60)
            done = await pool.fetchrow("SELECT * FROM notification WHERE id = $1", row["id"])
            attempts = await pool.fetch(
                "SELECT result FROM notification_attempt WHERE notification_id = $1 ORDER BY n",
                row["id"],
            )
            second.terminate()
        finally:
            await pool.close()
    assert [m["out_id"] for m in sim.messages].count(str(row["id"])) == 1
    assert sim.duplicates == 1  # the resend was recognised by its out_id
    assert done["attempts"] == 2
    assert done["provider_message_id"] == sim.messages[0]["biz_id"]
    assert [a["result"] for a in attempts] == ["interrupted", "delivered"]
