"""Direct routes: served before FastAPI, with the same span, metrics, limits, problem
details and OpenAPI entry as a FastAPI route. In process, over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response

from onegrid_common.auth import check_roles, mint_token, principal_of
from onegrid_common.direct_routes import DirectRoute, Documented, HeaderParam, read_request
from onegrid_common.http import create_app
from onegrid_common.problems import MALFORMED_JSON, PROBLEM_JSON, VALIDATION_ERROR, Problem
from onegrid_common.settings import SecuritySettings

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
SECURITY = SecuritySettings()


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=20)
    stars: int = Field(ge=1, le=5)


class NoteReceipt(BaseModel):
    text: str
    key: str
    by: str


TICKET = HeaderParam(
    "X-Ticket",
    Annotated[str, StringConstraints(min_length=3, max_length=8)],
    "A ticket number.",
)


async def post_note(request: Request) -> Response:
    principal = check_roles(principal_of(request), ("operator",))
    note, headers = await read_request(request, Note, (TICKET,))
    if note.text == "boom":
        raise RuntimeError("the endpoint failed")
    if note.text == "conflict":
        raise Problem(409, "Conflict", "taken", type="urn:onegrid:problem:test-conflict")
    receipt = NoteReceipt(text=note.text, key=headers[TICKET.name], by=principal.subject)
    return Response(receipt.model_dump_json(), 201, media_type="application/json")


NOTES = DirectRoute(
    "POST",
    "/v1/notes",
    post_note,
    Documented(
        summary="Post a note",
        body=Note,
        answer=NoteReceipt,
        status_code=201,
        headers=(TICKET,),
        responses={409: {"description": "Taken."}},
        operation_id="post_note",
    ),
)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        "directtest",
        direct_routes=[NOTES],
        max_body_bytes=2048,
        security=SECURITY,
        tracer_provider=PROVIDER,
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def auth(role: str = "operator") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token('ann', [role], settings=SECURITY)}"}


async def test_a_direct_route_answers_and_is_traced_under_its_template(
    client: httpx.AsyncClient,
) -> None:
    EXPORTER.clear()
    resp = await client.post(
        "/v1/notes", json={"text": "hi", "stars": 3}, headers={**auth(), "X-Ticket": "T-1"}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json() == {"text": "hi", "key": "T-1", "by": "ann"}
    assert "traceparent" in resp.headers
    (span,) = [s for s in EXPORTER.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert span.name == "POST /v1/notes"
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 201
    metrics = (await client.get("/metrics")).text
    assert (
        'onegrid_http_requests_total{method="POST",route="/v1/notes",'
        'service="directtest",status="201"}'
    ) in metrics


async def test_bad_header_and_body_fields_are_named_in_one_422(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/notes", json={"text": "", "stars": 9, "extra": 1}, headers={**auth(), "X-Ticket": "1"}
    )
    assert resp.status_code == 422
    assert resp.headers["content-type"] == PROBLEM_JSON
    problem = resp.json()
    assert problem["type"] == VALIDATION_ERROR
    assert {(e["in"], e["field"]) for e in problem["errors"]} == {
        ("header", "X-Ticket"),
        ("body", "text"),
        ("body", "stars"),
        ("body", "extra"),
    }
    missing = await client.post("/v1/notes", json={"text": "a", "stars": 1}, headers=auth())
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["X-Ticket"]


async def test_not_json_is_400_and_another_media_type_415(client: httpx.AsyncClient) -> None:
    headers = {**auth(), "X-Ticket": "T-1", "content-type": "application/json"}
    malformed = await client.post("/v1/notes", content=b'{"text": ', headers=headers)
    assert malformed.status_code == 400
    assert malformed.json()["type"] == MALFORMED_JSON
    assert "line 1 column" in malformed.json()["detail"]
    text = await client.post(
        "/v1/notes", content=b"hi", headers={**headers, "content-type": "text/plain"}
    )
    assert text.status_code == 415
    assert text.headers["content-type"] == PROBLEM_JSON


async def test_auth_problems_and_the_endpoints_own_problems_are_problem_details(
    client: httpx.AsyncClient,
) -> None:
    body = {"text": "conflict", "stars": 1}
    anonymous = await client.post("/v1/notes", json=body, headers={"X-Ticket": "T-1"})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    auditor = await client.post(
        "/v1/notes", json=body, headers={**auth("auditor"), "X-Ticket": "T-1"}
    )
    assert auditor.status_code == 403
    conflict = await client.post("/v1/notes", json=body, headers={**auth(), "X-Ticket": "T-1"})
    assert conflict.status_code == 409
    assert conflict.json()["type"] == "urn:onegrid:problem:test-conflict"
    assert conflict.json()["instance"] == "/v1/notes"


async def test_an_oversize_body_is_413_declared_or_streamed(client: httpx.AsyncClient) -> None:
    headers = {**auth(), "X-Ticket": "T-1", "content-type": "application/json"}
    declared = await client.post("/v1/notes", content=b"x" * 4096, headers=headers)
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(4):
            yield b"x" * 1024

    streamed = await client.post("/v1/notes", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == PROBLEM_JSON


async def test_an_endpoint_failure_is_a_500_problem_and_another_method_405(
    client: httpx.AsyncClient,
) -> None:
    failed = await client.post(
        "/v1/notes", json={"text": "boom", "stars": 1}, headers={**auth(), "X-Ticket": "T-1"}
    )
    assert failed.status_code == 500
    assert failed.headers["content-type"] == PROBLEM_JSON
    assert "the endpoint failed" not in failed.text
    other = await client.get("/v1/notes")
    assert other.status_code == 405
    assert other.headers["allow"] == "POST"
    assert (await client.post("/v1/elsewhere")).status_code == 404


async def test_openapi_documents_a_direct_route_from_its_models_and_headers(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    operation = doc["paths"]["/v1/notes"]["post"]
    assert operation["operationId"] == "post_note"
    (header,) = operation["parameters"]
    assert header["name"] == "X-Ticket"
    assert header["in"] == "header"
    assert header["schema"] == {"type": "string", "minLength": 3, "maxLength": 8}
    body_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    answer = operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    schemas = doc["components"]["schemas"]
    assert schemas[body_ref.rsplit("/", 1)[1]]["properties"]["stars"]["maximum"] == 5
    assert set(schemas[answer.rsplit("/", 1)[1]]["properties"]) == {"text", "key", "by"}
    assert list(operation["responses"]["422"]["content"]) == [PROBLEM_JSON]
    assert operation["responses"]["409"] == {"description": "Taken."}
    assert "bearer" in doc["components"]["securitySchemes"]
