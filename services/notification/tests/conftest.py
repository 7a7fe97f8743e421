"""Notification test fixtures: one notification runtime per test module."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from onegrid_common.auth import mint_token
from onegrid_common.localstack import free_port
from onegrid_common.pii import PiiCipher
from onegrid_common.producer import Producer
from onegrid_common.service import Runtime, build_app
from onegrid_common.settings import Settings
from onegrid_common.testing.helpers import create_topic, with_own_groups
from onegrid_notification.config import NotificationSettings
from onegrid_notification.directory import NotifyDirectory
from onegrid_notification.main import make_service
from onegrid_notification.simulators import mail, push, sms
from onegrid_notification.testing import DIRECTORY, Server, ShiftedClock, Stack, WebhookReceiver


@pytest.fixture(scope="module")
async def stack(settings: Settings, kafka_bootstrap: str) -> AsyncIterator[Stack]:
    tag = uuid.uuid4().hex[:8]
    cases_topic, requests_topic = (
        f"test.notification.cases.{tag}",
        f"test.notification.requests.{tag}",
    )
    await create_topic(kafka_bootstrap, cases_topic)
    await create_topic(kafka_bootstrap, requests_topic)
    secret = settings.security.callback_hmac_secret.get_secret_value()
    sms_sim, push_sim, receiver = (
        sms.SmsGatewaySim(),
        push.PushGatewaySim(),
        WebhookReceiver(secret),
    )
    smtp_port = free_port()
    controller, mail_store = mail.start_smtp("127.0.0.1", smtp_port)
    clock = ShiftedClock()
    clock.set_local(10)
    async with (
        Server(sms_sim.app()) as sms_srv,
        Server(push_sim.app()) as push_srv,
        Server(receiver.app()) as hook_srv,
    ):
        config = NotificationSettings(
            sms_url=sms_srv.url,
            push_url=push_srv.url,
            smtp_port=smtp_port,
            cases_topic=cases_topic,
            requests_topic=requests_topic,
            backoff_base_s=0.2,
            backoff_max_s=1.0,
            max_attempts=30,
            poll_interval_s=0.1,
        )

        async def directory(rt: Runtime) -> NotifyDirectory:
            return DIRECTORY

        service = make_service(config=config, directory=directory, clock=clock)
        app = build_app(service, with_own_groups(settings, tag))
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://n") as client:
                token = mint_token("S0000007", ["operator"], settings=settings.security)
                headers = {"Authorization": f"Bearer {token}"}
                resp = await client.put(
                    "/v1/preferences/unit:urban",
                    json={
                        "channels": ["webhook", "sms"],
                        "webhook_url": f"{hook_srv.url}/hook",
                    },
                    headers=headers,
                )
                assert resp.status_code == 200, resp.text
                producer = Producer(settings.kafka, client_id=f"notification-test-{tag}")
                await producer.start()
                try:
                    yield Stack(
                        settings=settings,
                        config=config,
                        client=client,
                        rt=app.state.runtime,
                        clock=clock,
                        sms=sms_sim,
                        push=push_sim,
                        mail=mail_store,
                        webhook=receiver,
                        producer=producer,
                        cipher=PiiCipher.from_settings(settings.security),
                        sms_url=sms_srv.url,
                        headers=headers,
                    )
                finally:
                    await producer.stop()
    controller.stop()
