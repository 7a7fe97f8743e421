"""Problem details and bearer auth through a real uvicorn server on a free port."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import APIRouter, Depends, HTTPException, Request
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, Field, SecretStr

from onegrid_common.auth import Principal, current_principal, mint_token, require_roles
from onegrid_common.http import create_app
from onegrid_common.logs import JsonFormatter, RedactionFilter
from onegrid_common.problems import PROBLEM_JSON, Problem
from onegrid_common.settings import SecuritySettings

SECURITY = SecuritySettings(
    jwt_secret=SecretStr("server-test-secret-0123456789abcdef0123456789"),
    jwt_issuer="onegrid-test",
    jwt_audience="onegrid-api",
)


class Location(BaseModel):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


class Attachment(BaseModel):
    url: str
    size: int = Field(ge=0)


class ReportIn(BaseModel):
    channel: str
    description: str = Field(min_length=1, max_length=50)
    location: Location
    attachments: list[Attachment] = []


router = APIRouter()


@router.post("/v1/reports", status_code=202)
async def post_report(report: ReportIn) -> dict[str, Any]:
    return {"accepted": report.description}


@router.post("/v1/raw")
async def post_raw(request: Request) -> dict[str, int]:
    return {"bytes": len(await request.body())}


@router.get("/v1/boom")
async def boom() -> dict[str, str]:
    raise RuntimeError("database password is hunter2; reporter 13812345678")


@router.get("/v1/conflict")
async def conflict() -> dict[str, str]:
    raise Problem(409, "Conflict", "Idempotency key reused with another body.", key="k-1")


@router.get("/v1/teapot")
async def teapot() -> dict[str, str]:
    raise HTTPException(status_code=418, detail="short and stout", headers={"X-Why": "tea"})


@router.get("/v1/me")
async def me(principal: Annotated[Principal, Depends(current_principal)]) -> dict[str, Any]:
    return {"subject": principal.subject, "units": sorted(principal.unit_codes)}


@router.get("/v1/tasks")
async def tasks(
    principal: Annotated[Principal, Depends(require_roles("operator", "unit:*"))],
) -> dict[str, Any]:
    return {"subject": principal.subject}


@router.get("/v1/admin")
async def admin_only(
    principal: Annotated[Principal, Depends(require_roles("admin"))],
) -> dict[str, str]:
    return {"subject": principal.subject}


EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


@pytest.fixture(scope="module")
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter("servertest"))
    logger = logging.getLogger("onegrid.http")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


@pytest.fixture(scope="module")
async def base_url(log_stream: io.StringIO) -> AsyncIterator[str]:
    app = create_app(
        "servertest",
        routers=[router],
        max_body_bytes=1000,
        security=SECURITY,
        tracer_provider=PROVIDER,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)
    sock.close()


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as c:
        yield c


def bearer(*roles: str, settings: SecuritySettings = SECURITY, **kwargs: Any) -> dict[str, str]:
    token = mint_token("user-1", roles, settings=settings, **kwargs)
    return {"Authorization": f"Bearer {token}"}


# --- problem details --------------------------------------------------------------------


async def test_invalid_body_names_every_bad_field(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/reports",
        json={
            "description": "",
            "location": {"lon": 200, "lat": "north"},
            "attachments": [{"url": "u", "size": -1}],
        },
    )
    assert resp.status_code == 422
    assert resp.headers["content-type"] == PROBLEM_JSON
    body = resp.json()
    assert body["status"] == 422
    assert body["instance"] == "/v1/reports"
    fields = {e["field"] for e in body["errors"]}
    assert fields == {
        "channel",
        "description",
        "location.lon",
        "location.lat",
        "attachments.0.size",
    }
    pointers = {e["pointer"] for e in body["errors"]}
    assert "/attachments/0/size" in pointers
    assert all(e["message"] and e["type"] and e["in"] == "body" for e in body["errors"])


async def test_malformed_json_is_a_400_saying_so(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/reports", content=b'{"channel": ', headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.headers["content-type"] == PROBLEM_JSON
    assert "not valid JSON" in resp.json()["detail"]


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == PROBLEM_JSON
    assert resp.json()["title"] == "Not Found"
    assert "/v1/nothing-here" in resp.json()["detail"]


async def test_wrong_method_is_a_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    resp = await client.delete("/v1/reports")
    assert resp.status_code == 405
    assert resp.headers["content-type"] == PROBLEM_JSON
    assert "POST" in resp.headers["allow"]


async def test_raised_problem_keeps_its_extension_members(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/conflict")
    assert resp.status_code == 409
    assert resp.json()["key"] == "k-1"
    assert resp.json()["detail"] == "Idempotency key reused with another body."


async def test_http_exception_becomes_problem_with_its_headers(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/teapot")
    assert resp.status_code == 418
    assert resp.headers["content-type"] == PROBLEM_JSON
    assert resp.headers["x-why"] == "tea"
    assert resp.json()["detail"] == "short and stout"


async def test_unhandled_error_is_500_without_internals_and_logged_with_trace_id(
    client: httpx.AsyncClient, log_stream: io.StringIO
) -> None:
    resp = await client.get("/v1/boom")
    assert resp.status_code == 500
    assert resp.headers["content-type"] == PROBLEM_JSON
    assert "hunter2" not in resp.text
    assert "RuntimeError" not in resp.text
    trace_id = resp.json()["trace_id"]
    assert len(trace_id) == 32
    assert resp.headers["traceparent"].split("-")[1] == trace_id
    lines = [orjson.loads(line) for line in log_stream.getvalue().splitlines()]
    logged = [e for e in lines if e["trace_id"] == trace_id]
    assert logged, "the 500 was not logged with its trace id"
    assert "RuntimeError" in logged[0]["exc"]
    assert "13812345678" not in log_stream.getvalue()


async def test_declared_oversize_body_is_413(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/raw", content=b"x" * 1001)
    assert resp.status_code == 413
    assert resp.headers["content-type"] == PROBLEM_JSON
    assert resp.json()["max_body_bytes"] == 1000


async def test_streamed_oversize_body_without_length_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 300

    resp = await client.post("/v1/raw", content=chunks())
    assert "content-length" not in resp.request.headers
    assert resp.status_code == 413
    assert resp.headers["content-type"] == PROBLEM_JSON


async def test_body_at_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/raw", content=b"z" * 1000)
    assert resp.status_code == 200
    assert resp.json() == {"bytes": 1000}


# --- bearer auth ------------------------------------------------------------------------


async def test_missing_token_is_401_with_challenge(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/me")
    assert resp.status_code == 401
    assert resp.headers["content-type"] == PROBLEM_JSON
    assert resp.headers["www-authenticate"] == 'Bearer realm="onegrid"'


async def test_non_bearer_scheme_is_401_invalid_request(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert resp.status_code == 401
    assert 'error="invalid_request"' in resp.headers["www-authenticate"]


async def test_expired_token_is_401_invalid_token(client: httpx.AsyncClient) -> None:
    headers = bearer("operator", ttl_s=60, now=1_000_000)
    resp = await client.get("/v1/me", headers=headers)
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    assert "expired" in resp.json()["detail"]


async def test_token_signed_with_another_secret_is_401(client: httpx.AsyncClient) -> None:
    other = SECURITY.model_copy(
        update={"jwt_secret": SecretStr("another-secret-0123456789abcdef0123456")}
    )
    resp = await client.get("/v1/me", headers=bearer("operator", settings=other))
    assert resp.status_code == 401
    assert "signature" in resp.json()["detail"]


async def test_token_for_another_audience_is_401(client: httpx.AsyncClient) -> None:
    other = SECURITY.model_copy(update={"jwt_audience": "someone-else"})
    resp = await client.get("/v1/me", headers=bearer("operator", settings=other))
    assert resp.status_code == 401
    assert "audience" in resp.json()["detail"]


async def test_garbage_token_is_401(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert resp.status_code == 401
    assert resp.headers["content-type"] == PROBLEM_JSON


async def test_valid_token_reaches_the_endpoint(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/me", headers=bearer("unit:URBAN", "unit:POLICE"))
    assert resp.status_code == 200
    assert resp.json() == {"subject": "user-1", "units": ["POLICE", "URBAN"]}


async def test_role_not_allowed_is_403_naming_the_roles(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/tasks", headers=bearer("reporter"))
    assert resp.status_code == 403
    assert resp.headers["content-type"] == PROBLEM_JSON
    assert resp.json()["required_roles"] == ["operator", "unit:*"]
    assert "reporter" in resp.json()["detail"]


@pytest.mark.parametrize("roles", [("operator",), ("unit:URBAN",), ("admin",)])
async def test_allowed_roles_pass(client: httpx.AsyncClient, roles: tuple[str, ...]) -> None:
    resp = await client.get("/v1/tasks", headers=bearer(*roles))
    assert resp.status_code == 200


async def test_only_admin_passes_an_admin_check(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/admin", headers=bearer("operator"))).status_code == 403
    assert (await client.get("/v1/admin", headers=bearer("admin"))).status_code == 200
