"""The registry's HTTP API against real PostgreSQL and broker: CRUD, filters, paging, auth,
problem details, all-or-nothing imports, locate, the contact card, and changes reaching
another service's RegistryView (tombstones too).

The test city is Shanghai's code (310100) far from the demo city, so the shared registry
topics of the session keep the demo city intact."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager

from onegrid_common.auth import mint_token
from onegrid_common.registry_view import REGISTRY_TOPICS, RegistryView
from onegrid_common.registry_view.service_view import STATE_KEY
from onegrid_common.service import Runtime, build_app
from onegrid_common.settings import Settings
from onegrid_common.testing.helpers import unique
from onegrid_contracts.registry import Grid, Staff, Unit
from onegrid_registry.main import SERVICE

pytestmark = pytest.mark.integration

W, S = 121.40, 31.20  # south-west corner of the test city


def square(west: float, south: float, size: float = 0.01) -> dict[str, Any]:
    ring = [
        [west, south],
        [west + size, south],
        [west + size, south + size],
        [west, south + size],
        [west, south],
    ]
    return {"type": "Polygon", "coordinates": [ring]}


def grid_body(code: str, name: str, level: str, parent: str | None, **extra: Any) -> dict[str, Any]:
    return {"code": code, "name": name, "level": level, "parent_code": parent, **extra}


@dataclasses.dataclass
class Api:
    client: httpx.AsyncClient
    runtime: Runtime
    admin: dict[str, str]
    reader: dict[str, str]

    @property
    def view(self) -> RegistryView:
        view = self.runtime.state[STATE_KEY]
        assert isinstance(view, RegistryView)
        return view


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(settings: Settings) -> AsyncIterator[Api]:
    # A schema of its own, so this module never meets another test's registry rows.
    service = dataclasses.replace(SERVICE, name=unique("registry"))
    app = build_app(service, settings)
    security = settings.security
    admin = mint_token("admin-1", ["admin"], settings=security)
    reader = mint_token("intake", ["service"], settings=security)
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
            yield Api(
                client,
                app.state.runtime,
                {"Authorization": f"Bearer {admin}"},
                {"Authorization": f"Bearer {reader}"},
            )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def city(api: Api) -> dict[str, Any]:
    """City > district > street > community > two grids side by side, plus units and staff."""
    bodies = [
        grid_body("310100", "上海市", "city", None, geometry=square(W, S, 0.1)),
        grid_body("310101", "黄浦区", "district", "310100"),
        grid_body("310101001", "南京东路街道", "street", "310101"),
        grid_body("310101001001", "贵州路社区", "community", "310101001"),
        grid_body(
            "310101001001001",
            "贵州路社区第1网格",
            "grid",
            "310101001001",
            geometry=square(W, S),
            households=300,
            residents=870,
        ),
        grid_body(
            "310101001001002",
            "贵州路社区第2网格",
            "grid",
            "310101001001",
            geometry=square(W + 0.01, S),
        ),
    ]
    for body in bodies:
        response = await api.client.post("/v1/grids", json=body, headers=api.admin)
        assert response.status_code == 201, response.text
    units = [
        {
            "code": "ra-community",
            "name": "贵州路社区居委会",
            "kind": "community_office",
            "jurisdiction": ["310101001001"],
            "integration_mode": "workbench",
            "contact_phone": "021-63221234",
        },
        {
            "code": "ra-grid-1",
            "name": "第1网格服务团队",
            "kind": "grid",
            "jurisdiction": ["310101001001001"],
            "integration_mode": "workbench",
        },
    ]
    for body in units:
        response = await api.client.post("/v1/units", json=body, headers=api.admin)
        assert response.status_code == 201, response.text
    staff = [
        ("RA-0001", "王建国", "grid_head", "13900000001"),
        ("RA-0002", "李娜", "full_time_worker", "13900000002"),
        ("RA-0003", "张小燕", "part_time_worker", "13900000003"),
        ("RA-0004", "赵强", "information_officer", "13900000004"),
    ]
    for code, name, role, phone in staff:
        body = {
            "code": code,
            "name": name,
            "role": role,
            "grid_codes": ["310101001001001"],
            "unit_code": "ra-grid-1",
            "phone": phone,
        }
        response = await api.client.post("/v1/staff", json=body, headers=api.admin)
        assert response.status_code == 201, response.text
    return {"grids": bodies}


async def test_reads_need_a_token_and_writes_need_admin(api: Api, settings: Settings) -> None:
    response = await api.client.get("/v1/grids")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    reporter = mint_token("r", ["reporter"], settings=settings.security)
    response = await api.client.get("/v1/grids", headers={"Authorization": f"Bearer {reporter}"})
    assert response.status_code == 403
    body = grid_body("310102", "徐汇区", "district", "310100")
    response = await api.client.post("/v1/grids", json=body, headers=api.reader)
    assert response.status_code == 403
    assert response.json()["required_roles"] == ["admin"]


async def test_created_grids_are_read_back_with_id_and_times(
    api: Api, city: dict[str, Any]
) -> None:
    response = await api.client.get("/v1/grids/310101001001001", headers=api.reader)
    assert response.status_code == 200
    grid = response.json()
    assert grid["name"] == "贵州路社区第1网格"
    assert grid["households"] == 300
    assert len(grid["id"]) == 36
    assert grid["updated_at"].endswith(("Z", "+00:00"))
    missing = await api.client.get("/v1/grids/310101001001099", headers=api.reader)
    assert missing.status_code == 404
    assert missing.json()["code"] == "310101001001099"


async def test_lists_filter_by_level_and_parent_and_page_with_cursors(
    api: Api, city: dict[str, Any]
) -> None:
    response = await api.client.get(
        "/v1/grids", params={"level": "grid", "parent": "310101001001"}, headers=api.reader
    )
    assert [g["code"] for g in response.json()["items"]] == ["310101001001001", "310101001001002"]
    codes: list[str] = []
    params: dict[str, Any] = {"limit": 2, "parent": None}
    params = {"limit": 2}
    pages = 0
    while True:
        page = (await api.client.get("/v1/grids", params=params, headers=api.reader)).json()
        codes += [g["code"] for g in page["items"] if g["code"].startswith("3101")]
        pages += 1
        if page["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": page["next_cursor"]}
    assert codes == sorted(g["code"] for g in city["grids"])
    assert pages >= 3
    bad = await api.client.get("/v1/grids", params={"cursor": "forged"}, headers=api.reader)
    assert bad.status_code == 400
    assert bad.json()["field"] == "cursor"


async def test_categories_filter_by_major(api: Api) -> None:
    for code, major in (
        ("ratest.one", "ratest"),
        ("ratest.two", "ratest"),
        ("raother.xy", "raother"),
    ):
        body = {
            "code": code,
            "name_zh": "测试",
            "major_code": major,
            "major_name_zh": "测试类",
            "response_limit": {"amount": 2, "unit": "working_hours"},
            "resolution_limit": {"amount": 1, "unit": "working_days"},
            "default_tier": "grid",
        }
        response = await api.client.put(f"/v1/categories/{code}", json=body, headers=api.admin)
        assert response.status_code == 201, response.text
    page = (
        await api.client.get("/v1/categories", params={"major": "ratest"}, headers=api.reader)
    ).json()
    assert [c["code"] for c in page["items"]] == ["ratest.one", "ratest.two"]


async def test_bad_bodies_and_references_are_problems_naming_the_field(
    api: Api, city: dict[str, Any]
) -> None:
    bad_code = grid_body("31010x", "坏", "district", "310100")
    response = await api.client.post("/v1/grids", json=bad_code, headers=api.admin)
    assert response.status_code == 422
    assert "code" in {e["field"] for e in response.json()["errors"]}

    orphan = grid_body("310109001", "孤儿街道", "street", "310109")
    response = await api.client.post("/v1/grids", json=orphan, headers=api.admin)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["parent_code"]

    overlapping = grid_body(
        "310101001001003", "重叠网格", "grid", "310101001001", geometry=square(W + 0.005, S)
    )
    response = await api.client.post("/v1/grids", json=overlapping, headers=api.admin)
    assert response.status_code == 422
    assert "overlaps sibling" in response.json()["errors"][0]["message"]

    staff = {
        "code": "RA-0099",
        "name": "某",
        "role": "grid_head",
        "grid_codes": ["310101001001001", "310101001001077"],
        "unit_code": "ra-nowhere",
    }
    response = await api.client.post("/v1/staff", json=staff, headers=api.admin)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"grid_codes.1", "unit_code"}

    duplicate = await api.client.post("/v1/grids", json=city["grids"][1], headers=api.admin)
    assert duplicate.status_code == 409

    mismatch = await api.client.put("/v1/grids/310101", json=city["grids"][0], headers=api.admin)
    assert mismatch.status_code == 422
    assert mismatch.json()["errors"][0]["field"] == "code"


async def test_put_replaces_and_delete_refuses_while_referenced(
    api: Api, city: dict[str, Any]
) -> None:
    body = {**city["grids"][5], "name": "贵州路社区第二网格"}
    response = await api.client.put("/v1/grids/310101001001002", json=body, headers=api.admin)
    assert response.status_code == 200
    assert response.json()["name"] == "贵州路社区第二网格"
    response = await api.client.delete("/v1/grids/310101001001", headers=api.admin)
    assert response.status_code == 409
    assert "child grid 310101001001001" in response.json()["references"]


async def test_grid_import_is_all_or_nothing_with_an_error_per_bad_row(
    api: Api, city: dict[str, Any]
) -> None:
    def feature(code: str, west: float, parent_ok: bool = True) -> dict[str, Any]:
        return {
            "type": "Feature",
            "geometry": square(west, S + 0.02),
            "properties": {"code": code, "name": f"导入{code[-3:]}"},
        }

    bad = {
        "type": "FeatureCollection",
        "features": [
            feature("310101001001011", W),
            feature("310101001001012", W + 0.005),  # overlaps row 0
            feature("310101001077013", W + 0.05),  # unknown community
            {
                "type": "Feature",
                "geometry": None,
                "properties": {"code": "310101001001014", "name": "无形"},
            },
        ],
    }
    response = await api.client.post("/v1/grids/import", json=bad, headers=api.admin)
    assert response.status_code == 422
    problem = response.json()
    assert {(e["row"], e["field"]) for e in problem["errors"]} >= {
        (1, "geometry"),
        (2, "parent_code"),
    }
    assert 3 in {e["row"] for e in problem["errors"]}  # no geometry
    assert 0 not in {e["row"] for e in problem["errors"]}
    listed = (
        await api.client.get("/v1/grids", params={"parent": "310101001001"}, headers=api.reader)
    ).json()["items"]
    assert "310101001001011" not in {g["code"] for g in listed}

    good = {
        "type": "FeatureCollection",
        "features": [feature("310101001001011", W), feature("310101001001012", W + 0.01)],
    }
    response = await api.client.post("/v1/grids/import", json=good, headers=api.admin)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 2, "changed": 2}
    again = await api.client.post("/v1/grids/import", json=good, headers=api.admin)
    assert again.status_code == 422  # codes exist now
    replaced = await api.client.post(
        "/v1/grids/import", params={"replace_existing": "true"}, json=good, headers=api.admin
    )
    assert replaced.json() == {"received": 2, "changed": 0}


async def test_staff_csv_import_is_all_or_nothing_with_an_error_per_bad_row(
    api: Api, city: dict[str, Any]
) -> None:
    headers = {**api.admin, "Content-Type": "text/csv"}
    bad = (
        "code,name,role,grid_codes,unit_code,phone\n"
        "RA-0101,陈一,专职网格员,310101001001001,ra-grid-1,13900000101\n"
        "RA-0102,陈二,网格长,310101001001999,ra-grid-1,13900000102\n"
        "RA-0103,陈三,厨师,310101001001001,,12345\n"
    )
    response = await api.client.post("/v1/staff/import", content=bad.encode(), headers=headers)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert {(e["row"], e["field"]) for e in errors} >= {
        (1, "grid_codes"),
        (2, "role"),
        (2, "phone"),
    }
    assert (await api.client.get("/v1/staff/RA-0101", headers=api.reader)).status_code == 404
    good = "\n".join(bad.splitlines()[:2]) + "\n"
    response = await api.client.post("/v1/staff/import", content=good.encode(), headers=headers)
    assert response.json() == {"received": 1, "changed": 1}
    assert (await api.client.get("/v1/staff/RA-0101", headers=api.reader)).status_code == 200


async def test_locate_answers_the_grid_and_its_path_or_outside_every_grid(
    api: Api, city: dict[str, Any]
) -> None:
    grid = Grid.model_validate(city["grids"][4])
    await api.view.wait_until(lambda v: v.grid(grid.code) is not None, timeout_s=15)
    params = {"lon": W + 0.005, "lat": S + 0.005, "near_m": 600}
    response = await api.client.get("/v1/locate", params=params, headers=api.reader)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["grid"]["code"] == grid.code
    assert [p["code"] for p in body["path"]] == [
        "310100",
        "310101",
        "310101001",
        "310101001001",
        grid.code,
    ]
    assert "310101001001002" in {n["code"] for n in body["neighbours"]}
    outside = await api.client.get(
        "/v1/locate", params={"lon": 0.5, "lat": 0.5}, headers=api.reader
    )
    assert outside.status_code == 404
    assert outside.json()["type"] == "urn:onegrid:problem:outside-every-grid"
    bad = await api.client.get("/v1/locate", params={"lon": 200, "lat": 0}, headers=api.reader)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "lon"


async def test_the_contact_card_is_public_and_masks_volunteers(
    api: Api, city: dict[str, Any]
) -> None:
    response = await api.client.get("/v1/grids/310101001001001/contact")
    assert response.status_code == 200
    card = response.json()
    assert card["address"] == [
        "上海市",
        "黄浦区",
        "南京东路街道",
        "贵州路社区",
        "贵州路社区第1网格",
    ]
    workers = {w["role"]: w for w in card["workers"]}
    assert set(workers) == {"grid_head", "full_time_worker", "part_time_worker"}
    assert workers["grid_head"] == {
        "role": "grid_head",
        "title": "网格长",
        "name": "王建国",
        "phone": "13900000001",
    }
    assert workers["part_time_worker"]["name"] == "张**"
    assert workers["part_time_worker"]["phone"] == "139****0003"
    assert card["office"] == {"name": "贵州路社区居委会", "phone": "021-63221234"}
    assert "RA-0001" not in response.text
    assert (await api.client.get("/v1/grids/310101001/contact")).status_code == 404


async def test_changes_reach_another_services_view_and_deletions_are_tombstones(
    api: Api, city: dict[str, Any], settings: Settings
) -> None:
    other = await RegistryView.start(settings.kafka, topics=REGISTRY_TOPICS, timeout_s=60)
    try:
        body = {
            "code": "ra-market",
            "name": "临时市场监管所",
            "kind": "department",
            "jurisdiction": ["310100"],
            "integration_mode": "adapter",
        }
        created = await api.client.post("/v1/units", json=body, headers=api.admin)
        assert created.status_code == 201
        unit = Unit.model_validate(body)
        await other.wait_for_entity(Unit, "ra-market", unit, timeout_s=15)
        assert "ra-market" in {u.code for u in other.adapter_units()}

        staff = await api.client.get("/v1/staff/RA-0004", headers=api.reader)
        person = Staff.model_validate(staff.json())
        await other.wait_for_entity(Staff, "RA-0004", person, timeout_s=15)

        for path in ("/v1/units/ra-market", "/v1/staff/RA-0004"):
            response = await api.client.delete(path, headers=api.admin)
            assert response.status_code == 204
            assert (await api.client.delete(path, headers=api.admin)).status_code == 404
        await other.wait_for_entity(Unit, "ra-market", None, timeout_s=15)
        await other.wait_for_entity(Staff, "RA-0004", None, timeout_s=15)
        assert "ra-market" not in {u.code for u in other.adapter_units()}
    finally:
        await other.stop()
