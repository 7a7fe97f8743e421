"""The 民政 applicant chain: intake seals the applicant of a service request, dispatch passes
it on to the lead unit's task unopened, and only the civil adapter's key opens it. The ID
number is never on a topic in clear."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from asgi_lifespan import LifespanManager

from onegrid_adapter_civil.main import CivilSettings
from onegrid_common.adapters.sealed import open_sealed
from onegrid_common.auth import mint_token
from onegrid_common.kafka_admin import ensure_topics
from onegrid_common.pii import PiiCipher, PiiDecryptError
from onegrid_common.service import build_app
from onegrid_common.settings import Settings
from onegrid_common.testing.helpers import with_own_groups
from onegrid_contracts.cases import CaseReported
from onegrid_contracts.catalogue import CASES_EVENTS, unit_tasks_topic, unit_topics
from onegrid_contracts.tasks import DeptTaskAssigned
from onegrid_dispatch.main import make_service as make_dispatch
from onegrid_intake.main import make_service as make_intake
from onegrid_intake.testing import body, grid_points, key

pytestmark = pytest.mark.integration

ELDERLY_ALLOWANCE = "livelihood.elderly_allowance"  # 高龄补贴申领: lead unit civil (民政)
NAME = "刘桂英"
PHONE = "13907170456"
ID_NUMBER = "11010519491231002X"


@dataclass
class Chain:
    intake: httpx.AsyncClient
    settings: Settings
    point: tuple[float, float]

    def headers(self) -> dict[str, str]:
        token = mint_token("op-chain", ("operator",), settings=self.settings.security)
        return {"Authorization": f"Bearer {token}", **key()}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def chain(settings: Settings, demo_registry: Any) -> AsyncIterator[Chain]:
    await ensure_topics(settings.kafka.bootstrap_servers, list(unit_topics("civil")))
    _, lon, lat = grid_points(demo_registry)[901]
    intake = build_app(make_intake(), settings)
    dispatch = build_app(
        make_dispatch(run_timers=False), with_own_groups(settings, f"chain-{uuid.uuid4().hex[:6]}")
    )
    async with contextlib.AsyncExitStack() as stack:
        for app in (intake, dispatch):
            await stack.enter_async_context(
                LifespanManager(app, startup_timeout=90, shutdown_timeout=30)
            )
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=intake), base_url="http://intake")
        )
        yield Chain(client, settings, (lon, lat))


async def record_for(bootstrap: str, topic: str, case_id: str, timeout_s: float = 90.0) -> Any:
    """The first record of `topic` keyed by `case_id` (read from the start, bounded wait)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key == case_id.encode():
                        return record
        raise AssertionError(f"no record for case {case_id} on {topic} within {timeout_s} s")
    finally:
        await consumer.stop()


def civil_cipher(settings: Settings) -> PiiCipher:
    """The key the civil adapter opens applicants with (as onegrid_adapter_civil.main)."""
    keys = CivilSettings().pii_keys or settings.security.pii_keys
    return PiiCipher.from_spec(keys.get_secret_value())


def reporter(**fields: Any) -> dict[str, Any]:
    return {"name": NAME, "phone": PHONE, "id_number": ID_NUMBER, **fields}


async def test_the_applicant_reaches_the_civil_adapter_sealed_and_opens_only_there(
    chain: Chain,
) -> None:
    lon, lat = chain.point
    report = body(
        lon,
        lat,
        channel="hotline_12345",
        category_code=ELDERLY_ALLOWANCE,
        description="辖区一位老人年满 80 周岁，申请高龄津贴",
        reporter=reporter(),
    )
    resp = await chain.intake.post("/v1/reports", json=report, headers=chain.headers())
    assert resp.status_code == 202, resp.text
    case_id = resp.json()["case_id"]
    bootstrap = chain.settings.kafka.bootstrap_servers

    reported = await record_for(bootstrap, CASES_EVENTS, case_id)
    raw = reported.value + b"".join(v for _, v in reported.headers)
    assert ID_NUMBER.encode() not in raw
    assert NAME.encode() not in raw
    assert PHONE.encode() not in raw
    event = CaseReported.model_validate_json(reported.value)
    assert event.applicant is not None
    assert event.applicant.masked_name == "刘**"

    assigned = await record_for(bootstrap, unit_tasks_topic("civil"), case_id)
    assert ID_NUMBER.encode() not in assigned.value
    task = DeptTaskAssigned.model_validate_json(assigned.value)
    assert task.role.value == "lead"
    assert task.applicant == event.applicant

    cipher = civil_cipher(chain.settings)
    applicant = task.applicant
    assert open_sealed(cipher, applicant.id_number, case_id=task.case_id, field="id_number") == (
        ID_NUMBER
    )
    assert open_sealed(cipher, applicant.name, case_id=task.case_id, field="name") == NAME
    assert applicant.phone is not None
    assert open_sealed(cipher, applicant.phone, case_id=task.case_id, field="phone") == PHONE
    # Bound to its case and field: a copied ciphertext opens nowhere else.
    with pytest.raises(PiiDecryptError):
        open_sealed(cipher, applicant.id_number, case_id=uuid.uuid4(), field="id_number")
    with pytest.raises(PiiDecryptError):
        open_sealed(cipher, applicant.id_number, case_id=task.case_id, field="name")


async def test_a_matter_that_is_no_service_request_carries_no_applicant(chain: Chain) -> None:
    lon, lat = chain.point
    report = body(lon + 0.0001, lat, reporter=reporter())
    resp = await chain.intake.post("/v1/reports", json=report, headers=chain.headers())
    assert resp.status_code == 202, resp.text
    reported = await record_for(
        chain.settings.kafka.bootstrap_servers, CASES_EVENTS, resp.json()["case_id"]
    )
    assert CaseReported.model_validate_json(reported.value).applicant is None
    assert ID_NUMBER.encode() not in reported.value


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"name": NAME, "phone": PHONE}, {"reporter.id_number"}),
        ({"phone": PHONE, "id_number": ID_NUMBER}, {"reporter.name"}),
        (None, {"reporter.id_number", "reporter.name"}),
    ],
    ids=["no-id-number", "no-name", "anonymous"],
)
async def test_a_service_request_without_the_applicants_id_is_a_422_naming_it(
    chain: Chain, given: dict[str, str] | None, missing: set[str]
) -> None:
    lon, lat = chain.point
    report = body(lon, lat, channel="hotline_12345", category_code=ELDERLY_ALLOWANCE)
    report["reporter"] = given
    resp = await chain.intake.post("/v1/reports", json=report, headers=chain.headers())
    assert resp.status_code == 422, resp.text
    assert {e["field"] for e in resp.json()["errors"]} == missing
