"""adapter-civil against the 民政 simulator: applications with documents, results pulled
in batches after simulated review days, an outage in the middle of a stream, and the
applicant's ID number opened only in the adapter: never logged, never on a topic in clear,
never in the adapter's tables."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from pydantic import SecretStr

from onegrid_adapter_civil.main import CivilSettings, build
from onegrid_common.adapters import DeliveryPolicy
from onegrid_common.adapters.sealed import seal
from onegrid_common.adapters.testkit import (
    outage_in_the_middle,
    refusals_of,
    sample_task,
    serve_app,
)
from onegrid_common.pii import PiiCipher, id_number_check_char
from onegrid_common.service import build_app
from onegrid_common.settings import Settings
from onegrid_common.simulators.civil import CivilSim
from onegrid_common.testing.helpers import create_topic
from onegrid_contracts.catalogue import unit_replies_topic, unit_tasks_topic
from onegrid_contracts.tasks import (
    Applicant,
    DeptTaskAssigned,
    DeptTaskCompleted,
)

pytestmark = pytest.mark.integration

KEYS = f"civil-test:{base64.b64encode(os.urandom(32)).decode()}"
CIPHER = PiiCipher.from_spec(KEYS)
POLICY = DeliveryPolicy(
    max_attempts=3,
    backoff_base_s=0.2,
    backoff_cap_s=0.5,
    breaker_failures=3,
    breaker_reset_s=0.5,
    call_timeout_s=3.0,
    poll_interval_s=0.3,
)
HUKOU: dict[str, object] = {
    "url": "https://files.yichang.example/cases/2026/11/23/hukou.pdf",
    "media_type": "application/pdf",
    "size_bytes": 210544,
    "sha256": "0c5d9e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5",
}


def id_number(born: str, serial: str) -> str:
    first17 = f"420502{born}{serial}"
    return first17 + id_number_check_char(first17)


@dataclass
class Stack:
    unit: str
    sim: CivilSim
    sim_url: str
    pg_dsn: str


@pytest.fixture(scope="module")
async def stack(settings: Settings, kafka_bootstrap: str, pg_dsn: str) -> AsyncIterator[Stack]:
    unit = f"civil-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, unit_tasks_topic(unit), partitions=1)
    await create_topic(kafka_bootstrap, unit_replies_topic(unit), partitions=1)
    sim = CivilSim(review_days=2, day_seconds=0.3)
    async with serve_app(sim.app()) as sim_url:
        config = CivilSettings(unit_code=unit, base_url=sim_url, pii_keys=SecretStr(KEYS))
        async with serve_app(build_app(build(config, POLICY), settings)):
            yield Stack(unit, sim, sim_url, pg_dsn)


def application(
    unit: str,
    id_no: str,
    category: str = "livelihood.elderly_allowance",
    attachments: tuple[dict[str, object], ...] = (HUKOU,),
) -> DeptTaskAssigned:
    case_id = uuid.uuid4()
    applicant = Applicant(
        masked_name="刘*英",
        name=seal(CIPHER, "刘桂英", case_id=case_id, field="name"),
        id_number=seal(CIPHER, id_no, case_id=case_id, field="id_number"),
    )
    return sample_task(
        unit,
        category_code=category,
        category_name="高龄补贴",
        description="辖区居民申请高龄津贴，网格员已代办收集材料",
        applicant=applicant,
        case_id=case_id,
        attachments=attachments,
    )


async def test_outage_in_the_middle_and_the_id_number_stays_sealed(
    stack: Stack, settings: Settings, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    elderly = id_number("19400315", "123")
    young = id_number("19900101", "456")
    first = [application(stack.unit, elderly) for _ in range(4)]
    during = [application(stack.unit, young) for _ in range(4)]
    replies = await outage_in_the_middle(
        settings.kafka, stack.sim_url, first, during, received=lambda: len(stack.sim.by_wbywh)
    )
    tasks = [*first, *during]

    received = [r for r in stack.sim.received if r["type"] == "application"]
    assert [r["wbywh"] for r in received] == [str(t.task_id) for t in tasks]
    digests = {hashlib.sha256(n.encode()).hexdigest() for n in (elderly, young)}
    assert {r["sfzh_sha256"] for r in received} == digests  # the department got the real ID
    results = {
        r.payload.task_id: r.payload for r in replies if isinstance(r.payload, DeptTaskCompleted)
    }
    assert all(results[t.task_id].fixed for t in first)
    assert not any(results[t.task_id].fixed for t in during)  # under 80: 审批不通过
    assert "未满80周岁" in results[during[0].task_id].result

    for secret in (elderly, young, "刘桂英"):
        assert not any(secret in r.getMessage() for r in caplog.records)
        assert not any(secret in r.payload.model_dump_json() for r in replies if r.payload)
    conn = await asyncpg.connect(stack.pg_dsn)
    try:
        stored = await conn.fetch("SELECT message::text AS m FROM adapter_civil.adapter_delivery")
    finally:
        await conn.close()
    assert stored
    assert not any(elderly in row["m"] or young in row["m"] for row in stored)


async def test_missing_documents_and_missing_applicant_are_refused(
    stack: Stack, settings: Settings, kafka_bootstrap: str
) -> None:
    no_docs = application(
        stack.unit, id_number("19600101", "789"), category="livelihood.minimum_allowance"
    )
    no_applicant = sample_task(
        stack.unit, category_code="livelihood.temporary_assistance", category_name="临时救助"
    )
    refusals = await refusals_of(settings.kafka, [no_docs, no_applicant])
    assert refusals[no_docs.task_id].refusal_reason == "insufficient_info"
    assert refusals[no_docs.task_id].reason == "材料不全，缺少：家庭收入证明、家庭财产申报表"
    assert refusals[no_applicant.task_id].reason == "缺少申请人身份信息"
