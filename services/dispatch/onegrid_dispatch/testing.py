"""Test support for dispatch (tests and the processes they spawn): a small city in a
StaticRegistry, reports and replies to publish, and a harness around an in-process runtime."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from onegrid_common.auth import mint_token
from onegrid_common.producer import OutgoingRecord, Producer
from onegrid_common.service import Runtime
from onegrid_common.settings import Settings
from onegrid_common.working_time import CHINA_TZ
from onegrid_contracts.base import Payload
from onegrid_contracts.cases import CaseReported, Channel
from onegrid_contracts.catalogue import CASES_EVENTS, unit_replies_topic
from onegrid_contracts.envelope import build_headers, encode_payload, new_envelope
from onegrid_contracts.primitives import Actor, ActorKind, Location, ReporterRef
from onegrid_contracts.registry import (
    Category,
    CoveringUnit,
    FixedUnit,
    IntegrationMode,
    RoutingRule,
    Staff,
    StaffRole,
    TimeLimit,
    Unit,
    UnitKind,
)
from onegrid_dispatch.domain.ports import ManualClock
from onegrid_dispatch.registry import StaticRegistry

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=CHINA_TZ)  # a Monday morning
GRID = "420502003001001"
COMMUNITY = GRID[:12]
STREET = GRID[:9]
WORKER = "S0000123"
STREET_HEAD = "S0000007"


@dataclass(frozen=True)
class City:
    """Codes of one test module's city; adapter units are unique per module (own topics)."""

    tag: str

    @property
    def urban(self) -> str:
        return f"urban-{self.tag}"

    @property
    def police(self) -> str:
        return f"police-{self.tag}"

    grid_unit = f"grid-{GRID}"
    community_unit = f"community-{COMMUNITY}"
    street_unit = f"street-{STREET}"
    # One category per tier.
    grid_category = "environment.exposed_garbage"
    community_category = "community.neighbour_dispute"
    street_category = "street_order.occupied_road_business"
    dept_category = "municipal.broken_manhole"
    disputed_category = "public_security.noise_at_night"
    adapter_category = "municipal.damaged_streetlight"  # the adapter unit alone


def _limit(amount: int, unit: str) -> TimeLimit:
    return TimeLimit.model_validate({"amount": amount, "unit": unit})


def build_registry(city: City) -> StaticRegistry:
    def unit(code: str, kind: UnitKind, scope: str, mode: IntegrationMode, head: str) -> Unit:
        return Unit(
            code=code,
            name="测试单位",
            kind=kind,
            jurisdiction=[scope],
            integration_mode=mode,
            head_staff_code=head,
        )

    wb, ad = IntegrationMode.WORKBENCH, IntegrationMode.ADAPTER
    units = [
        unit(city.grid_unit, UnitKind.GRID, GRID, wb, "S0000101"),
        unit(city.community_unit, UnitKind.COMMUNITY_OFFICE, COMMUNITY, wb, "S0000102"),
        unit(city.street_unit, UnitKind.STREET_OFFICE, STREET, wb, STREET_HEAD),
        unit(city.urban, UnitKind.DEPARTMENT, "420500", ad, "S0000901"),
        unit(city.police, UnitKind.DEPARTMENT, "420500", ad, "S0000902"),
    ]

    def category(code: str, tier: str) -> Category:
        major = code.split(".")[0]
        return Category(
            code=code,
            name_zh="测试类别",
            major_code=major,
            major_name_zh="测试大类",
            response_limit=_limit(2, "working_hours"),
            resolution_limit=_limit(1, "working_days"),
            default_tier=tier,
        )

    categories = [
        category(city.grid_category, "grid"),
        category(city.community_category, "community"),
        category(city.street_category, "street"),
        category(city.dept_category, "department"),
        category(city.disputed_category, "department"),
        category(city.adapter_category, "department"),
    ]
    routes = [
        RoutingRule(
            code="route.grid",
            category_code=city.grid_category,
            tier="grid",
            lead=CoveringUnit(tier="grid"),
        ),
        RoutingRule(
            code="route.community",
            category_code=city.community_category,
            tier="community",
            lead=CoveringUnit(tier="community"),
        ),
        RoutingRule(
            code="route.street",
            category_code=city.street_category,
            tier="street",
            lead=CoveringUnit(tier="street"),
        ),
        RoutingRule(
            code="route.dept",
            category_code=city.dept_category,
            tier="department",
            lead=FixedUnit(unit_code=city.urban),
            assisting=[CoveringUnit(tier="street")],
        ),
        RoutingRule(
            code="route.disputed",
            category_code=city.disputed_category,
            tier="department",
            lead=FixedUnit(unit_code=city.police),
            assisting=[FixedUnit(unit_code=city.urban)],
        ),
    ]
    routes.append(
        RoutingRule(
            code="route.adapter",
            category_code=city.adapter_category,
            tier="department",
            lead=FixedUnit(unit_code=city.urban),
        )
    )
    staff = [
        Staff(
            code=WORKER,
            name="王网格",
            role=StaffRole.FULL_TIME_WORKER,
            grid_codes=[GRID],
            unit_code=city.grid_unit,
        )
    ]
    return StaticRegistry(units=units, categories=categories, routes=routes, staff=staff)


# Case numbers unique within a run (random ones would collide among 1,000 cases).
_CASE_NUMBERS = itertools.count(uuid.uuid4().int % 900_000)


def report(
    category: str | None,
    *,
    grid: str | None = GRID,
    reporter: str = "rp-0001",
    resolved_on_site: bool = False,
    at: datetime = T0,
) -> CaseReported:
    n = next(_CASE_NUMBERS) % 1_000_000
    return CaseReported(
        case_id=uuid.uuid4(),
        case_no=f"YC-{at:%Y%m%d}-{n:06d}",
        actor=Actor(kind=ActorKind.GRID_WORKER, id=WORKER),
        at=at,
        report_id=uuid.uuid4(),
        channel=Channel.GRID_WORKER_APP,
        category_code=category,
        location=Location(lon=111.29, lat=30.70, address="西陵区夷陵大道 58 号"),
        grid_code=grid,
        grid_path=(GRID[:4] + "00", GRID[:6], STREET, COMMUNITY, GRID) if grid else (),
        description="小区门口垃圾堆积多日无人清理",
        occurred_at=at,
        reporter=ReporterRef(reporter_id=reporter),
        resolved_on_site=resolved_on_site,
    )


async def publish(producer: Producer, topic: str, key: str, payload: Payload) -> str:
    env = new_envelope(payload, source="test", subject=key)
    await producer.send(
        OutgoingRecord(
            topic=topic, key=key, value=encode_payload(payload), headers=build_headers(env)
        )
    )
    return env.id


class Harness:
    """One dispatch runtime in-process, its clock, and clients for every role."""

    def __init__(
        self, settings: Settings, city: City, client: httpx.AsyncClient, rt: Runtime
    ) -> None:
        self.settings = settings
        self.city = city
        self.client = client
        self.rt = rt
        self.clock: ManualClock = rt.state["workflow"].clock
        self.producer = Producer(settings.kafka, client_id="dispatch-test")

    def token(self, subject: str, *roles: str, grids: tuple[str, ...] = ()) -> dict[str, str]:
        jwt = mint_token(subject, roles, settings=self.settings.security, grid_codes=grids)
        return {"Authorization": f"Bearer {jwt}"}

    @property
    def operator(self) -> dict[str, str]:
        return self.token("S0000007", "operator")

    def unit(self, code: str) -> dict[str, str]:
        return self.token(f"staff-{code}"[:60], f"unit:{code}")

    @property
    def worker(self) -> dict[str, str]:
        return self.token(WORKER, "grid_worker", grids=(GRID,))

    def reporter(self, rid: str = "rp-0001") -> dict[str, str]:
        return self.token(rid, "reporter")

    async def report(self, event: CaseReported) -> None:
        await publish(self.producer, CASES_EVENTS, str(event.case_id), event)

    async def dispatched(self, event: CaseReported) -> dict[str, Any]:
        """Report `event` and wait until its case is dispatched."""
        await self.report(event)
        return await self.wait_case(event.case_id, lambda c: c["state"] == "dispatched")

    async def reply(self, payload: Any) -> str:
        return await publish(
            self.producer, unit_replies_topic(payload.unit_code), str(payload.case_id), payload
        )

    async def case(self, ref: object) -> dict[str, Any]:
        response = await self.client.get(f"/v1/cases/{ref}", headers=self.operator)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def wait_case(
        self, ref: object, check: Callable[[dict[str, Any]], bool], timeout_s: float = 90.0
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        last: dict[str, Any] | None = None
        while asyncio.get_running_loop().time() < deadline:
            response = await self.client.get(f"/v1/cases/{ref}", headers=self.operator)
            if response.status_code == 200:
                last = response.json()
                if check(last):
                    return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"case {ref} did not get there in {timeout_s}s; last: {last}")

    async def timeline_types(self, ref: object) -> list[str]:
        response = await self.client.get(
            f"/v1/cases/{ref}/timeline?limit=500", headers=self.operator
        )
        assert response.status_code == 200, response.text
        return [
            e["type"].removeprefix("onegrid.case.")
            for e in response.json()["items"]
            if e["kind"] == "lifecycle"  # the transitions, not task messages or replies
        ]
