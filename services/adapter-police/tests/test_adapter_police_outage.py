"""adapter-police against the 接处警 simulator: signed callbacks become replies, a bad
signature is refused and logged, non-police matters are refused, and an outage in the
middle of a stream loses and duplicates nothing."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from onegrid_adapter_police.main import PoliceSettings, build
from onegrid_common.adapters import DeliveryPolicy
from onegrid_common.adapters.testkit import (
    complete,
    free_port,
    outage_in_the_middle,
    read_replies,
    sample_task,
    send_tasks,
    serve_app,
)
from onegrid_common.service import build_app
from onegrid_common.settings import Settings
from onegrid_common.signing import SIGNATURE_HEADER, sign_now
from onegrid_common.simulators.police import PoliceSim
from onegrid_common.testing.helpers import create_topic
from onegrid_contracts.catalogue import unit_replies_topic, unit_tasks_topic
from onegrid_contracts.tasks import DeptTaskCompleted, DeptTaskRefused

pytestmark = pytest.mark.integration

SECRET = "police-test-secret"
POLICY = DeliveryPolicy(
    max_attempts=3,
    backoff_base_s=0.2,
    backoff_cap_s=0.5,
    breaker_failures=3,
    breaker_reset_s=0.5,
    call_timeout_s=3.0,
)


@dataclass
class Stack:
    unit: str
    sim: PoliceSim
    sim_url: str
    adapter_url: str


@pytest.fixture(scope="module")
async def stack(settings: Settings, kafka_bootstrap: str) -> AsyncIterator[Stack]:
    unit = f"police-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, unit_tasks_topic(unit), partitions=1)
    await create_topic(kafka_bootstrap, unit_replies_topic(unit), partitions=1)
    sim = PoliceSim(secret=SECRET, status_delays_s=(0.2, 0.4, 0.6), callback_retry_s=0.2)
    port = free_port()
    async with serve_app(sim.app()) as sim_url:
        config = PoliceSettings(
            unit_code=unit,
            base_url=sim_url,
            callback_base_url=f"http://127.0.0.1:{port}",
            callback_secret=SecretStr(SECRET),
        )
        async with serve_app(build_app(build(config, POLICY), settings), port=port) as url:
            yield Stack(unit, sim, sim_url, url)


async def test_outage_in_the_middle_loses_nothing_and_duplicates_nothing(
    stack: Stack, settings: Settings, kafka_bootstrap: str
) -> None:
    first = [sample_task(stack.unit, category_code="dispute.neighbour") for _ in range(5)]
    during = [sample_task(stack.unit, category_code="security.gambling") for _ in range(5)]
    replies = await outage_in_the_middle(
        settings.kafka, stack.sim_url, first, during, received=lambda: len(stack.sim.by_source)
    )
    tasks = [*first, *during]
    incidents = [r["sourceRef"] for r in stack.sim.received if r["type"] == "incident"]
    assert incidents == [str(t.task_id) for t in tasks]
    completed = [r.payload for r in replies if isinstance(r.payload, DeptTaskCompleted)]
    assert {c.task_id for c in completed} == {t.task_id for t in tasks}
    assert all(c.result == "现场已处置，当事人已教育疏导" for c in completed)


async def test_non_police_matter_is_refused_by_the_police_system(
    stack: Stack, settings: Settings, kafka_bootstrap: str
) -> None:
    task = sample_task(stack.unit, category_code="environment.exposed_garbage")
    await send_tasks(settings.kafka, [task])
    replies = await read_replies(
        kafka_bootstrap, stack.unit, until=lambda rs: complete([task], rs), timeout_s=90
    )
    refusal = [
        r.payload
        for r in replies
        if isinstance(r.payload, DeptTaskRefused) and r.payload.task_id == task.task_id
    ]
    assert len(refusal) == 1
    assert refusal[0].refusal_reason == "not_our_matter"
    assert refusal[0].reason == "非警务事项，请转相关职能部门处理"


async def test_bad_signature_is_refused_and_logged(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps(
        {
            "jqbh": "J1",
            "eventId": "J1-01",
            "statusCode": "01",
            "status": "已派警",
            "statusTime": "2026-11-23T10:00:00+08:00",
        }
    ).encode()
    url = f"{stack.adapter_url}/v1/callbacks/{stack.unit}"
    with caplog.at_level(logging.WARNING, logger="onegrid.adapter_police"):
        async with httpx.AsyncClient() as client:
            forged = await client.post(
                url, content=body, headers={SIGNATURE_HEADER: sign_now("wrong-secret", body)}
            )
            missing = await client.post(url, content=body)
    assert forged.status_code == 401
    assert forged.headers["content-type"].startswith("application/problem+json")
    assert "mismatch" in forged.json()["detail"]
    assert missing.status_code == 401
    reasons = [getattr(r, "signature_failure", None) for r in caplog.records]
    assert reasons.count("mismatch") == 1
    assert reasons.count("missing") == 1


async def test_callback_for_unknown_incident_is_not_found(stack: Stack) -> None:
    body = json.dumps(
        {
            "jqbh": "J-nope",
            "eventId": "x",
            "statusCode": "01",
            "status": "已派警",
            "statusTime": "2026-11-23T10:00:00+08:00",
        }
    ).encode()
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{stack.adapter_url}/v1/callbacks/{stack.unit}",
            content=body,
            headers={SIGNATURE_HEADER: sign_now(SECRET, body)},
        )
    assert response.status_code == 404
