"""The registry's HTTP API (DESIGN §7).

Every entity has `GET /v1/<things>` (cursor-paged, in code order, with filters),
`GET/PUT/DELETE /v1/<things>/{code}` and `POST /v1/<things>`: grids, buildings, units,
staff, categories, routes (routing rules) and calendars (keyed by year). Writes need the
`admin` role; reads any of service, operator, auditor, grid_worker or a unit role.
`POST` creates (409 if the code exists), `PUT` creates or replaces (the body's code must be
the path's), `DELETE` answers 409 naming what still refers to the entity. References are
checked (a grid's parent, a unit's jurisdiction and head, a staff member's grids and unit,
a route's category and units), as are a grid's polygon against its parent and siblings.
Each change commits with its outbox event; a deletion publishes a tombstone.

Bulk: `POST /v1/grids/import` (GeoJSON FeatureCollection) and `POST /v1/staff/import` (CSV)
validate the whole file and apply it in one transaction, or answer 422 with an error per
bad row and field and apply nothing.

`GET /v1/locate?lon=&lat=` answers from the service's own RegistryView (what every other
service computes); `GET /v1/grids/{code}/contact` is public: see `contact`.
"""

# No `from __future__ import annotations`: the CRUD factory annotates with runtime types.

import dataclasses
from enum import Enum
from typing import Annotated, Any, cast

import asyncpg
from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, Field, create_model

from onegrid_common.auth import Principal, require_roles
from onegrid_common.pagination import Page, PageParams, page_params
from onegrid_common.problems import PROBLEM_TYPE_PREFIX, VALIDATION_ERROR, Problem
from onegrid_common.registry_view import RegistryView
from onegrid_common.registry_view.codes import path_codes
from onegrid_common.registry_view.service_view import STATE_KEY
from onegrid_common.service import Runtime, RuntimeDep
from onegrid_contracts.registry import (
    Building,
    CalendarYear,
    Category,
    FixedUnit,
    Grid,
    GridLevel,
    RegistryEntity,
    RoutingRule,
    Staff,
    StaffRole,
    Unit,
    UnitKind,
)
from onegrid_registry.db import store
from onegrid_registry.db.store import EntitySpec, Stored
from onegrid_registry.domain.validation import (
    RowError,
    parse_grid_features,
    parse_staff_csv,
    validate_grid_import,
)

READ_ROLES = ("service", "operator", "auditor", "grid_worker", "unit:*")
Reader = Annotated[Principal, Depends(require_roles(*READ_ROLES))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
Paging = Annotated[PageParams, Depends(page_params)]

CONFLICT = PROBLEM_TYPE_PREFIX + "conflict"
NOT_FOUND = PROBLEM_TYPE_PREFIX + "not-found"
OUTSIDE_EVERY_GRID = PROBLEM_TYPE_PREFIX + "outside-every-grid"
NOT_READY = PROBLEM_TYPE_PREFIX + "registry-view-not-ready"
IMPORT_INVALID = PROBLEM_TYPE_PREFIX + "import-invalid"

router = APIRouter(prefix="/v1")


def _out_model(model: type[RegistryEntity]) -> type[BaseModel]:
    """The entity's contract fields plus the stored resource's id and times."""
    return create_model(
        f"{model.__name__}Resource",
        __base__=model,
        id=(Any, Field(description="stable id (UUID)")),
        created_at=(AwareDatetime, ...),
        updated_at=(AwareDatetime, ...),
    )


OUT: dict[type[RegistryEntity], type[BaseModel]] = {
    s.model: _out_model(s.model) for s in store.SPECS
}


def _resource(stored: Stored[Any]) -> dict[str, Any]:
    return {
        **stored.entity.model_dump(mode="json"),
        "id": str(stored.id),
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
    }


def _page(rows: list[Stored[Any]], params: PageParams) -> dict[str, Any]:
    page = Page[Stored[Any]].from_rows(rows, params, lambda s: {"code": s.entity.key})
    return {"items": [_resource(s) for s in page.items], "next_cursor": page.next_cursor}


def _after(params: PageParams) -> str | None:
    if params.after is None:
        return None
    code = params.after.get("code")
    if not isinstance(code, str):
        raise Problem(400, "Invalid cursor", "The cursor holds no code.", field="cursor")
    return code


def _field_error(field: str, message: str, kind: str = "reference") -> dict[str, Any]:
    return {
        "field": field,
        "pointer": "/" + field.replace(".", "/"),
        "in": "body",
        "message": message,
        "type": kind,
    }


def _invalid(errors: list[dict[str, Any]]) -> Problem:
    names = ", ".join(sorted({e["field"] for e in errors}))
    return Problem(
        422,
        "Invalid request",
        f"{len(errors)} invalid field(s): {names}.",
        type=VALIDATION_ERROR,
        errors=errors,
    )


def _not_found(spec: EntitySpec[Any], code: str) -> Problem:
    return Problem(
        404,
        "Not Found",
        f"No {spec.model.__name__.lower()} with code {code}.",
        type=NOT_FOUND,
        code=code,
    )


# --- reference checks ------------------------------------------------------------------


async def _check_grid(conn: asyncpg.Connection, grid: Grid) -> list[dict[str, Any]]:
    related: dict[str, Grid] = {}
    if grid.parent_code is not None:
        parent = await store.get(conn, store.GRIDS, grid.parent_code)
        if parent is not None:
            related[parent.entity.code] = parent.entity
    rows = await conn.fetch(
        "SELECT data FROM grid WHERE code <> $1 AND parent_code IS NOT DISTINCT FROM $2",
        grid.code,
        grid.parent_code,
    )
    for row in rows:
        sibling = Grid.model_validate(row["data"])
        related[sibling.code] = sibling
    errors = validate_grid_import([grid], related, replace_existing=True)
    return [_field_error(e.field, e.message, "grid") for e in errors]


async def _check_references(
    conn: asyncpg.Connection, entity: RegistryEntity
) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []

    async def need(spec: EntitySpec[Any], codes: list[str], field: str) -> None:
        known = await store.exists(conn, spec, codes)
        for index, code in enumerate(codes):
            if code not in known:
                name = field if len(codes) == 1 and not field.endswith("s") else f"{field}.{index}"
                errors.append(_field_error(name, f"unknown {spec.model.__name__.lower()} {code}"))

    if isinstance(entity, Grid):
        errors += await _check_grid(conn, entity)
    elif isinstance(entity, Building):
        grid = await store.get(conn, store.GRIDS, entity.grid_code)
        if grid is None or grid.entity.level is not GridLevel.GRID:
            errors.append(_field_error("grid_code", f"no grid-level cell {entity.grid_code}"))
    elif isinstance(entity, Unit):
        await need(store.GRIDS, list(entity.jurisdiction), "jurisdiction")
        if entity.head_staff_code is not None:
            await need(store.STAFF, [entity.head_staff_code], "head_staff_code")
    elif isinstance(entity, Staff):
        await need(store.GRIDS, list(entity.grid_codes), "grid_codes")
        if entity.unit_code is not None:
            await need(store.UNITS, [entity.unit_code], "unit_code")
    elif isinstance(entity, RoutingRule):
        await need(store.CATEGORIES, [entity.category_code], "category_code")
        if isinstance(entity.lead, FixedUnit):
            await need(store.UNITS, [entity.lead.unit_code], "lead.unit_code")
        for index, selector in enumerate(entity.assisting):
            if isinstance(selector, FixedUnit):
                await need(store.UNITS, [selector.unit_code], f"assisting.{index}.unit_code")
    return errors


async def _save(rt: Runtime, entity: RegistryEntity, *, create: bool) -> tuple[Stored[Any], bool]:
    spec = store.SPEC_OF[type(entity)]
    async with rt.db.acquire() as conn, conn.transaction():
        await store.lock(conn, spec)
        existed = await store.get(conn, spec, entity.key) is not None
        if create and existed:
            raise Problem(
                409,
                "Conflict",
                f"A {spec.model.__name__.lower()} with code "
                f"{entity.key} exists; PUT /v1/{spec.path}/{entity.key} replaces it.",
                type=CONFLICT,
                code=entity.key,
            )
        errors = await _check_references(conn, entity)
        if errors:
            raise _invalid(errors)
        await store.write(conn, [entity])
        saved = await store.get(conn, spec, entity.key)
    assert saved is not None
    return saved, not existed


def _add_crud(spec: EntitySpec[Any]) -> None:
    model = spec.model
    out = OUT[model]
    name = model.__name__.lower()

    async def get_one(code: str, rt: RuntimeDep, _: Reader) -> dict[str, Any]:
        async with rt.db.acquire() as conn:
            stored = await store.get(conn, spec, code)
        if stored is None:
            raise _not_found(spec, code)
        return _resource(stored)

    async def create(
        body: model,  # type: ignore[valid-type]
        rt: RuntimeDep,
        _: Admin,
        response: Response,
    ) -> dict[str, Any]:
        saved, _created = await _save(rt, body, create=True)
        response.status_code = 201
        response.headers["Location"] = f"/v1/{spec.path}/{saved.entity.key}"
        return _resource(saved)

    async def replace(
        code: str,
        body: model,  # type: ignore[valid-type]
        rt: RuntimeDep,
        _: Admin,
        response: Response,
    ) -> dict[str, Any]:
        entity = cast(RegistryEntity, body)
        if entity.key != code:
            field = "year" if isinstance(entity, CalendarYear) else "code"
            raise _invalid([_field_error(field, f"must equal the path's {code}", "mismatch")])
        saved, created = await _save(rt, entity, create=False)
        response.status_code = 201 if created else 200
        return _resource(saved)

    async def remove(code: str, rt: RuntimeDep, _: Admin) -> Response:
        async with rt.db.acquire() as conn, conn.transaction():
            await store.lock(conn, spec)
            refs = await store.references(conn, spec, code)
            if refs:
                raise Problem(
                    409,
                    "Conflict",
                    f"{name} {code} is still referred to by: " + ", ".join(refs) + ".",
                    type=CONFLICT,
                    code=code,
                    references=refs,
                )
            if not await store.delete(conn, spec, code):
                raise _not_found(spec, code)
        return Response(status_code=204)

    tag: list[str | Enum] = [spec.path]
    router.add_api_route(
        f"/{spec.path}/{{code}}",
        get_one,
        methods=["GET"],
        response_model=out,
        tags=tag,
        summary=f"One {name}",
    )
    router.add_api_route(
        f"/{spec.path}",
        create,
        methods=["POST"],
        response_model=out,
        status_code=201,
        tags=tag,
        summary=f"Create a {name}",
    )
    router.add_api_route(
        f"/{spec.path}/{{code}}",
        replace,
        methods=["PUT"],
        response_model=out,
        tags=tag,
        summary=f"Create or replace a {name}",
    )
    router.add_api_route(
        f"/{spec.path}/{{code}}",
        remove,
        methods=["DELETE"],
        status_code=204,
        tags=tag,
        summary=f"Delete a {name} (publishes a tombstone)",
    )


# --- lists (filters differ per entity) --------------------------------------------------


async def _list(
    rt: Runtime, spec: EntitySpec[Any], params: PageParams, **filters: Any
) -> dict[str, Any]:
    equals = {
        k: v
        for k, v in filters.items()
        if v is not None and k not in ("grid_codes", "jurisdiction")
    }
    contains = {
        k: v for k, v in filters.items() if v is not None and k in ("grid_codes", "jurisdiction")
    }
    async with rt.db.acquire() as conn:
        rows = await store.list_page(
            conn,
            spec,
            after=_after(params),
            limit=params.limit + 1,
            equals=equals,
            contains=contains,
        )
    return _page(rows, params)


@router.get("/grids", response_model=Page[OUT[Grid]], tags=["grids"])  # type: ignore[valid-type]
async def list_grids(
    rt: RuntimeDep,
    _: Reader,
    page: Paging,
    level: Annotated[GridLevel | None, Query()] = None,
    parent: Annotated[str | None, Query(description="parent grid code")] = None,
) -> dict[str, Any]:
    """Grids in code order, optionally of one level and/or under one parent."""
    return await _list(
        rt, store.GRIDS, page, level=level.value if level else None, parent_code=parent
    )


@router.get("/buildings", response_model=Page[OUT[Building]], tags=["buildings"])  # type: ignore[valid-type]
async def list_buildings(
    rt: RuntimeDep, _: Reader, page: Paging, grid: Annotated[str | None, Query()] = None
) -> dict[str, Any]:
    return await _list(rt, store.BUILDINGS, page, grid_code=grid)


@router.get("/units", response_model=Page[OUT[Unit]], tags=["units"])  # type: ignore[valid-type]
async def list_units(
    rt: RuntimeDep,
    _: Reader,
    page: Paging,
    kind: Annotated[UnitKind | None, Query()] = None,
    jurisdiction: Annotated[str | None, Query(description="units holding this grid code")] = None,
) -> dict[str, Any]:
    return await _list(
        rt, store.UNITS, page, kind=kind.value if kind else None, jurisdiction=jurisdiction
    )


@router.get("/staff", response_model=Page[OUT[Staff]], tags=["staff"])  # type: ignore[valid-type]
async def list_staff(
    rt: RuntimeDep,
    _: Reader,
    page: Paging,
    grid: Annotated[str | None, Query(description="staff assigned to this grid")] = None,
    unit: Annotated[str | None, Query()] = None,
    role: Annotated[StaffRole | None, Query()] = None,
) -> dict[str, Any]:
    return await _list(
        rt, store.STAFF, page, grid_codes=grid, unit_code=unit, role=role.value if role else None
    )


@router.get("/categories", response_model=Page[OUT[Category]], tags=["categories"])  # type: ignore[valid-type]
async def list_categories(
    rt: RuntimeDep,
    _: Reader,
    page: Paging,
    major: Annotated[str | None, Query(description="major category code")] = None,
) -> dict[str, Any]:
    return await _list(rt, store.CATEGORIES, page, major_code=major)


@router.get("/routes", response_model=Page[OUT[RoutingRule]], tags=["routes"])  # type: ignore[valid-type]
async def list_routes(
    rt: RuntimeDep, _: Reader, page: Paging, category: Annotated[str | None, Query()] = None
) -> dict[str, Any]:
    return await _list(rt, store.ROUTES, page, category_code=category)


@router.get("/calendars", response_model=Page[OUT[CalendarYear]], tags=["calendars"])  # type: ignore[valid-type]
async def list_calendars(rt: RuntimeDep, _: Reader, page: Paging) -> dict[str, Any]:
    return await _list(rt, store.CALENDARS, page)


# --- bulk imports -------------------------------------------------------------------------


class ImportResult(BaseModel):
    received: int
    changed: int = Field(description="rows that differed from what was stored (and were published)")


def _import_problem(errors: list[RowError]) -> Problem:
    rows = sorted({e.row for e in errors if e.row is not None})
    return Problem(
        422,
        "Import rejected",
        f"{len(errors)} error(s) in {len(rows)} row(s); nothing was applied.",
        type=IMPORT_INVALID,
        errors=[
            {"row": e.row, "code": e.code, "field": e.field, "message": e.message} for e in errors
        ],
    )


def _parse_features(collection: dict[str, Any]) -> tuple[list[Grid], list[int], list[RowError]]:
    """Each feature parsed on its own, so the rows that parse are still validated together
    (a file gets every error at once); returns the grids, their file rows, the errors."""
    features = collection.get("features")
    if collection.get("type") != "FeatureCollection" or not isinstance(features, list):
        return [], [], parse_grid_features(collection)[1]
    grids: list[Grid] = []
    rows: list[int] = []
    errors: list[RowError] = []
    for row, feature in enumerate(features):
        parsed, found = parse_grid_features({"type": "FeatureCollection", "features": [feature]})
        errors += [dataclasses.replace(e, row=row) for e in found]
        if parsed:
            grids.append(parsed[0])
            rows.append(row)
    return grids, rows, errors


@router.post("/grids/import", response_model=ImportResult, tags=["grids"])
async def import_grids(
    rt: RuntimeDep,
    _: Admin,
    collection: Annotated[dict[str, Any], Body(description="GeoJSON FeatureCollection of grids")],
    replace_existing: Annotated[bool, Query(description="replace grids whose code exists")] = False,
) -> ImportResult:
    """Grids from a FeatureCollection (feature properties: code, name, kind, households,
    residents, active). Valid polygons, parents known, codes unique, siblings not
    overlapping, children inside their parent, or a 422 listing every bad row."""
    grids, rows, errors = _parse_features(collection)
    async with rt.db.acquire() as conn, conn.transaction():
        await store.lock(conn, store.GRIDS)
        existing = await store.all_entities(conn, store.GRIDS)
        for error in validate_grid_import(grids, existing, replace_existing=replace_existing):
            # Rows of the parsed batch back to rows of the file.
            row = rows[error.row] if error.row is not None else None
            errors.append(dataclasses.replace(error, row=row))
        if errors:
            errors.sort(key=lambda e: (e.row if e.row is not None else -1, e.field))
            raise _import_problem(errors)
        changed = await store.write(conn, grids)
    return ImportResult(received=len(grids), changed=len(changed))


@router.post(
    "/staff/import",
    response_model=ImportResult,
    tags=["staff"],
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
async def import_staff(
    request: Request,
    rt: RuntimeDep,
    _: Admin,
    replace_existing: Annotated[bool, Query(description="replace staff whose code exists")] = True,
) -> ImportResult:
    """Staff from CSV (UTF-8; columns code, name, role, grid_codes separated by ';',
    unit_code, phone, active), validated as a whole."""
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "Bad Request", "The CSV body is not UTF-8.", field="body") from None
    async with rt.db.acquire() as conn, conn.transaction():
        await store.lock(conn, store.STAFF)
        grid_codes = {r["code"] for r in await conn.fetch("SELECT code FROM grid")}
        unit_codes = {r["code"] for r in await conn.fetch("SELECT code FROM unit")}
        staff_codes = {r["code"] for r in await conn.fetch("SELECT code FROM staff")}
        staff, errors = parse_staff_csv(
            text,
            grid_codes=grid_codes,
            unit_codes=unit_codes,
            existing_staff_codes=staff_codes,
            replace_existing=replace_existing,
        )
        if not errors and not staff:
            errors = [RowError(None, None, "body", "the CSV has no data rows")]
        if errors:
            raise _import_problem(errors)
        changed = await store.write(conn, staff)
    return ImportResult(received=len(staff), changed=len(changed))


# --- locate and the public contact card -------------------------------------------------


class GridRef(BaseModel):
    code: str
    name: str
    level: GridLevel


class NeighbourOut(BaseModel):
    code: str
    name: str
    distance_m: float
    boundary_level: GridLevel


class LocationOut(BaseModel):
    grid: Grid
    path: list[GridRef] = Field(description="from the city down to the grid")
    neighbours: list[NeighbourOut] = Field(description="other grids within near_m metres")


def _view(rt: Runtime) -> RegistryView:
    view = rt.state.get(STATE_KEY)
    if not isinstance(view, RegistryView):
        raise Problem(
            503, "Service Unavailable", "The registry view is still catching up.", type=NOT_READY
        )
    return view


@router.get("/locate", response_model=LocationOut, tags=["locate"])
async def locate(
    rt: RuntimeDep,
    _: Reader,
    lon: Annotated[float, Query(ge=-180, le=180, description="WGS84 longitude")],
    lat: Annotated[float, Query(ge=-90, le=90, description="WGS84 latitude")],
    near_m: Annotated[float, Query(ge=0, le=1000, description="also list grids this close")] = 0,
) -> LocationOut:
    """The grid covering a point and its path up to the city; 404 outside every grid."""
    location = _view(rt).locate(lon, lat, near_m=near_m)
    if location is None:
        raise Problem(
            404,
            "Outside every grid",
            f"({lon}, {lat}) lies outside every grid of the registry.",
            type=OUTSIDE_EVERY_GRID,
            lon=lon,
            lat=lat,
        )
    return LocationOut(
        grid=location.grid,
        path=[GridRef(code=g.code, name=g.name, level=g.level) for g in location.path],
        neighbours=[
            NeighbourOut(
                code=n.grid.code,
                name=n.grid.name,
                distance_m=n.distance_m,
                boundary_level=n.boundary_level,
            )
            for n in location.neighbours
        ],
    )


ROLE_TITLES = {
    StaffRole.GRID_HEAD: "网格长",
    StaffRole.GRID_INSTRUCTOR: "网格指导员",
    StaffRole.FULL_TIME_WORKER: "专职网格员",
    StaffRole.PART_TIME_WORKER: "兼职网格员",
}
_CARD_ORDER = list(ROLE_TITLES)


class ContactPerson(BaseModel):
    role: StaffRole
    title: str
    name: str
    phone: str | None


class ContactOffice(BaseModel):
    name: str
    phone: str | None


class ContactCard(BaseModel):
    grid_code: str
    grid_name: str
    address: list[str] = Field(description="names from the city down to the grid")
    workers: list[ContactPerson]
    office: ContactOffice | None = Field(description="the community office covering the grid")


def mask_name(name: str) -> str:
    """张燕 → 张*, 欧阳明月 → 欧***: the surname (first character) stays."""
    return name[:1] + "*" * (len(name) - 1)


def mask_phone(phone: str | None) -> str | None:
    """13907171234 → 139****1234; landlines (public office numbers) stay whole."""
    if phone is None or not phone.startswith("1") or len(phone) != 11:
        return phone
    return phone[:3] + "****" + phone[7:]


def contact_person(person: Staff) -> ContactPerson:
    """Grid heads, instructors and full-time workers act in office: name and work phone in
    full, as on the grid's public notice board. Part-time workers are mostly resident
    volunteers on private mobiles: surname only, phone masked."""
    volunteer = person.role is StaffRole.PART_TIME_WORKER
    return ContactPerson(
        role=person.role,
        title=ROLE_TITLES[person.role],
        name=mask_name(person.name) if volunteer else person.name,
        phone=mask_phone(person.phone) if volunteer else person.phone,
    )


@router.get("/grids/{code}/contact", response_model=ContactCard, tags=["grids"])
async def contact(code: str, rt: RuntimeDep) -> ContactCard:
    """The public contact card of a grid (the QR code on its buildings): no token needed.
    Staff codes and information officers are never shown; see `contact_person` for masking."""
    async with rt.db.acquire() as conn:
        grid = await store.get(conn, store.GRIDS, code)
        if grid is None or not grid.entity.active or grid.entity.level is not GridLevel.GRID:
            raise _not_found(store.GRIDS, code)
        path = await conn.fetch(
            "SELECT data->>'name' AS name FROM grid WHERE code = ANY($1::text[])"
            " ORDER BY length(code)",
            path_codes(code),
        )
        people = await conn.fetch(
            "SELECT data FROM staff WHERE $1 = ANY(grid_codes) AND role = ANY($2::text[])"
            " AND (data->>'active')::boolean ORDER BY code",
            code,
            [r.value for r in ROLE_TITLES],
        )
        office_row = await conn.fetchrow(
            "SELECT data FROM unit WHERE kind = 'community_office' AND $1 = ANY(jurisdiction)"
            " AND (data->>'active')::boolean ORDER BY code LIMIT 1",
            code[:12],
        )
    staff = sorted(
        (Staff.model_validate(r["data"]) for r in people),
        key=lambda s: (_CARD_ORDER.index(s.role), s.code),
    )
    office = Unit.model_validate(office_row["data"]) if office_row is not None else None
    return ContactCard(
        grid_code=code,
        grid_name=grid.entity.name,
        address=[r["name"] for r in path],
        workers=[contact_person(s) for s in staff],
        office=ContactOffice(name=office.name, phone=office.contact_phone) if office else None,
    )


for _spec in store.SPECS:
    _add_crud(_spec)
