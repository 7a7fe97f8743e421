"""create_app's operational endpoints, tracing, metrics, OpenAPI and pagination, in process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import AwareDatetime, BaseModel

from onegrid_common import http as onegrid_http
from onegrid_common.http import create_app
from onegrid_common.pagination import (
    DEFAULT_LIMIT,
    Page,
    PageParams,
    decode_cursor,
    encode_cursor,
    page_params,
)
from onegrid_common.problems import PROBLEM_JSON, Problem
from onegrid_common.settings import SecuritySettings

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
SECURITY = SecuritySettings()
KEY = b"k" * 32

ITEMS: list[dict[str, Any]] = [
    {"id": n, "created_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n)}
    for n in range(1, 8)
]


class Item(BaseModel):
    id: int
    created_at: AwareDatetime


router = APIRouter()


@router.get("/v1/items/{item_id}")
async def get_item(item_id: int) -> Item:
    return Item(**ITEMS[item_id - 1])


@router.get("/v1/items")
async def list_items(page: Annotated[PageParams, Depends(page_params)]) -> Page[Item]:
    after = int(page.after["id"]) if page.after else 0
    rows = [Item(**i) for i in ITEMS if i["id"] > after][: page.limit + 1]
    return Page.from_rows(rows, page, lambda item: {"id": item.id}, key=None)


@router.get("/v1/local-time")
async def local_time() -> onegrid_http.OrjsonResponse:
    # Untyped content goes through orjson, which takes a naive datetime as UTC.
    return onegrid_http.OrjsonResponse(
        {
            "at": datetime(2026, 11, 23, 9, 30, tzinfo=timezone(timedelta(hours=8))),
            "naive": datetime(2026, 11, 23, 1, 30),
        }
    )


async def ok() -> None:
    return None


async def broker_down() -> None:
    raise ConnectionRefusedError("connect to 127.0.0.1:9092 refused")


async def hangs() -> None:
    await asyncio.sleep(60)


def make_app(readiness: dict[str, Any]) -> FastAPI:
    return create_app(
        "apptest",
        routers=[router],
        readiness=readiness,
        security=SECURITY,
        tracer_provider=PROVIDER,
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = make_app({"db": ok})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_healthz_answers_while_process_is_alive(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "service": "apptest"}


async def test_readyz_is_200_when_every_check_passes(client: httpx.AsyncClient) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json()["checks"] == {"db": {"status": "ok"}}


async def test_readyz_is_503_naming_the_failed_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onegrid_http, "READINESS_TIMEOUT_S", 0.1)
    app = make_app({"db": ok, "broker": broker_down, "redis": hangs})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        resp = await c.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "unready"
    assert sorted(body["failed"]) == ["broker", "redis"]
    assert body["checks"]["db"] == {"status": "ok"}
    assert "ConnectionRefusedError" in body["checks"]["broker"]["error"]
    assert "no answer" in body["checks"]["redis"]["error"]


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    for n in (1, 2, 3):
        assert (await client.get(f"/v1/items/{n}")).status_code == 200
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    line = (
        'onegrid_http_requests_total{method="GET",route="/v1/items/{item_id}",'
        'service="apptest",status="200"}'
    )
    counts = [ln for ln in resp.text.splitlines() if ln.startswith(line)]
    assert counts
    assert float(counts[0].split()[-1]) >= 3
    assert "onegrid_http_request_duration_seconds_bucket" in resp.text


async def test_request_continues_the_callers_trace(client: httpx.AsyncClient) -> None:
    EXPORTER.clear()
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    caller_span = "00f067aa0ba902b7"
    resp = await client.get(
        "/v1/items/1", headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"}
    )
    _, trace_id, span_id, _ = resp.headers["traceparent"].split("-")
    assert trace_id == caller_trace
    (span,) = [s for s in EXPORTER.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert span.name == "GET /v1/items/{item_id}"
    assert format(span.context.span_id, "016x") == span_id
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == caller_span
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200


async def test_probes_are_not_traced(client: httpx.AsyncClient) -> None:
    EXPORTER.clear()
    resp = await client.get("/healthz")
    assert "traceparent" not in resp.headers
    assert EXPORTER.get_finished_spans() == ()


async def test_times_are_rfc3339_with_offset(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/local-time")
    assert resp.json() == {"at": "2026-11-23T09:30:00+08:00", "naive": "2026-11-23T01:30:00+00:00"}
    item = (await client.get("/v1/items/1")).json()
    assert datetime.fromisoformat(item["created_at"]).tzinfo is not None


async def test_openapi_documents_422_as_problem_details(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    responses = doc["paths"]["/v1/items"]["get"]["responses"]
    assert list(responses["422"]["content"]) == [PROBLEM_JSON]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert "/healthz" not in doc["paths"]
    assert (await client.get("/docs")).status_code == 200


# --- pagination ---------------------------------------------------------------------------


async def test_pages_walk_the_whole_list_with_next_cursor(client: httpx.AsyncClient) -> None:
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/v1/items", params=params)).json()
        seen += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [1, 2, 3, 4, 5, 6, 7]


async def test_default_limit_applies(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/items")).json()
    assert len(body["items"]) == 7 <= DEFAULT_LIMIT
    assert body["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "501", "ten"])
async def test_limit_out_of_bounds_is_422_naming_limit(
    client: httpx.AsyncClient, limit: str
) -> None:
    resp = await client.get("/v1/items", params={"limit": limit})
    assert resp.status_code == 422
    (error,) = resp.json()["errors"]
    assert error["field"] == "limit"
    assert error["in"] == "query"


async def test_tampered_cursor_is_400(client: httpx.AsyncClient) -> None:
    first = (await client.get("/v1/items", params={"limit": 2})).json()
    payload, mac = first["next_cursor"].split(".")
    forged = encode_cursor({"id": 5}, key=b"attacker-key").split(".")[0] + "." + mac
    for bad in (forged, "garbage", payload, payload + ".AAAA"):
        resp = await client.get("/v1/items", params={"cursor": bad})
        assert resp.status_code == 400, bad
        assert resp.headers["content-type"] == PROBLEM_JSON
        assert resp.json()["field"] == "cursor"


def test_cursor_round_trips_json_values() -> None:
    at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    cursor = encode_cursor({"created_at": at, "id": "c-1"}, key=KEY)
    assert decode_cursor(cursor, key=KEY) == {
        "created_at": "2026-03-01T08:00:00+00:00",
        "id": "c-1",
    }


def test_cursor_from_another_key_is_rejected() -> None:
    cursor = encode_cursor({"id": 1}, key=KEY)
    with pytest.raises(Problem) as info:
        decode_cursor(cursor, key=b"x" * 32)
    assert info.value.status == 400


def test_last_page_has_no_cursor() -> None:
    params = PageParams(limit=3, after=None)
    page = Page[int].from_rows([1, 2, 3], params, lambda n: {"n": n}, key=KEY)
    assert page.next_cursor is None
    more = Page[int].from_rows([1, 2, 3, 4], params, lambda n: {"n": n}, key=KEY)
    assert more.items == [1, 2, 3]
    assert more.next_cursor is not None
    assert decode_cursor(more.next_cursor, key=KEY) == {"n": 3}
