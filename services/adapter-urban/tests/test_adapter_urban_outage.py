"""adapter-urban against the 数字城管 simulator: a stream of tasks with the department
taken down and up in the middle; every task reaches the department exactly once, in order,
DeliveryFailed replies go out when the budget runs out, and the replies pass the testkit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from onegrid_adapter_urban.main import UrbanSettings, build
from onegrid_common.adapters import DeliveryPolicy
from onegrid_common.adapters.testkit import (
    outage_in_the_middle,
    refusals_of,
    sample_task,
    serve_app,
)
from onegrid_common.service import build_app
from onegrid_common.settings import Settings
from onegrid_common.simulators.urban import UrbanSim
from onegrid_common.testing.helpers import create_topic
from onegrid_contracts.catalogue import unit_replies_topic, unit_tasks_topic
from onegrid_contracts.tasks import (
    DeptTaskAccepted,
    DeptTaskFollowUp,
)

pytestmark = pytest.mark.integration

POLICY = DeliveryPolicy(
    max_attempts=3,
    backoff_base_s=0.2,
    backoff_cap_s=0.5,
    breaker_failures=3,
    breaker_reset_s=0.5,
    call_timeout_s=3.0,
    poll_interval_s=0.3,
)


@dataclass
class Stack:
    unit: str
    sim: UrbanSim
    sim_url: str
    pg_dsn: str


@pytest.fixture(scope="module")
async def stack(settings: Settings, kafka_bootstrap: str, pg_dsn: str) -> AsyncIterator[Stack]:
    unit = f"urban-{uuid.uuid4().hex[:8]}"
    # One partition each, so the order dispatch sent is the order to check at the department.
    await create_topic(kafka_bootstrap, unit_tasks_topic(unit), partitions=1)
    await create_topic(kafka_bootstrap, unit_replies_topic(unit), partitions=1)
    sim = UrbanSim(progress_after_s=0.3, complete_after_s=0.8)
    async with serve_app(sim.app()) as sim_url:
        service = build(UrbanSettings(unit_code=unit, base_url=sim_url), POLICY)
        async with serve_app(build_app(service, settings)):
            yield Stack(unit, sim, sim_url, pg_dsn)


async def test_outage_in_the_middle_loses_nothing_and_duplicates_nothing(
    stack: Stack, settings: Settings, kafka_bootstrap: str
) -> None:
    first = [sample_task(stack.unit) for _ in range(6)]
    during = [sample_task(stack.unit) for _ in range(6)]
    follow = DeptTaskFollowUp(
        task_id=during[0].task_id,
        unit_code=stack.unit,
        case_id=during[0].case_id,
        case_no=during[0].case_no,
        at=during[0].at,
        followup_id=uuid.uuid4(),
        kind="reporter_followup",
        text="垃圾堆旁边还有一个破沙发",
    )
    replies = await outage_in_the_middle(
        settings.kafka,
        stack.sim_url,
        first,
        [*during, follow],
        received=lambda: len(stack.sim.by_wbbh),
    )
    tasks = [*first, *during]

    cases = [r for r in stack.sim.received if r["type"] == "case"]
    assert [r["wbbh"] for r in cases] == [str(t.task_id) for t in tasks]  # once each, in order
    supplements = [r for r in stack.sim.received if r["type"] == "supplement"]
    assert [s["key"] for s in supplements] == [str(follow.followup_id)]
    ajbh_of_first_during = stack.sim.by_wbbh[str(during[0].task_id)]
    order = [r.get("ajbh") for r in stack.sim.received]
    assert order.index(ajbh_of_first_during) < len(order) - 1 - order[::-1].index(
        ajbh_of_first_during
    )  # the follow-up reached the department after its case
    accepted = {
        r.payload.task_id: r.payload.external_ref
        for r in replies
        if isinstance(r.payload, DeptTaskAccepted)
    }
    assert accepted == {uuid.UUID(w): a for w, a in stack.sim.by_wbbh.items()}


async def test_unmapped_and_refused_categories_get_refusals(
    stack: Stack, settings: Settings, kafka_bootstrap: str
) -> None:
    unmapped = sample_task(stack.unit, category_code="security.gambling", category_name="赌博")
    stack.sim.refuse_classes = frozenset({"02"})
    refused = sample_task(
        stack.unit, category_code="advertising.illegal_posters", category_name="非法小广告"
    )
    refusals = await refusals_of(settings.kafka, [unmapped, refused])
    assert refusals[unmapped.task_id].refusal_reason == "not_our_matter"
    assert "无对应数字城管事件编码" in refusals[unmapped.task_id].reason
    assert refusals[refused.task_id].reason == "该类事件不属于本系统受理范围"
    assert str(unmapped.task_id) not in stack.sim.by_wbbh
    conn = await asyncpg.connect(stack.pg_dsn)
    try:
        states = await conn.fetch(
            "SELECT state FROM adapter_urban.adapter_task WHERE task_id = ANY($1::uuid[])",
            [unmapped.task_id, refused.task_id],
        )
    finally:
        await conn.close()
    assert [s["state"] for s in states] == ["closed", "closed"]
