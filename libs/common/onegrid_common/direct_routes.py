"""Direct routes: an endpoint served without FastAPI's request machinery.

For the one route that carries a service's load (intake's `POST /v1/reports`, hundreds a
second). FastAPI's routing, dependency solving and body handling cost ~180 µs of CPU a
request there, more than the endpoint's own work (docs/performance.md, change 44). A
direct route is matched by exact method and path before FastAPI sees the request; it
still runs inside `ObservabilityMiddleware` (server span, request metrics, last-resort
500) and `BodySizeLimitMiddleware` (413), and answers its errors as problem details.
Everything else stays a FastAPI route.

    SUBMIT = DirectRoute(
        "POST", "/v1/reports", submit_report,
        Documented(summary="Submit a report", body=ReportBody, answer=ReportReceipt,
                   status_code=202, headers=(IDEMPOTENCY_KEY,), responses={...}),
    )

The endpoint reads its body and headers with `read_request(request, Model, headers)`:
400, 415 or one 422 naming every bad field, worded like FastAPI's.
`/openapi.json` documents the route from its `Documented` (`add_to_openapi`), so the
document is made from the same models and header declarations the endpoint checks with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from onegrid_common.problems import Problem, problem_response, validation_problem

Endpoint = Callable[[Request], Awaitable[Response]]
Model = TypeVar("Model", bound=BaseModel)

UNSUPPORTED_MEDIA_TYPE: Final = "urn:onegrid:problem:unsupported-media-type"
_REF: Final = "#/components/schemas/{model}"
_BEARER: Final = {"type": "http", "scheme": "bearer", "description": "A JWT with onegrid roles."}
_PROBLEM_CONTENT: Final = {
    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
}


@dataclass(frozen=True)
class HeaderParam:
    """A request header an endpoint requires: checked and documented from one annotation
    (e.g. `Annotated[str, StringConstraints(max_length=128)]`)."""

    name: str
    annotation: Any
    description: str = ""
    _adapter: TypeAdapter[Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_adapter", TypeAdapter(self.annotation))

    def parse(self, request: Request) -> tuple[Any, list[dict[str, Any]]]:
        """The header's value, or the errors that make it missing or invalid."""
        raw = request.headers.get(self.name)
        if raw is None:
            missing = {"loc": ("header", self.name), "msg": "Field required", "type": "missing"}
            return None, [missing]
        try:
            return self._adapter.validate_python(raw), []
        except ValidationError as exc:
            return None, [{**e, "loc": ("header", self.name, *e["loc"])} for e in exc.errors()]

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "header",
            "required": True,
            "description": self.description,
            "schema": self._adapter.json_schema(),
        }


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_request(
    request: Request, model: type[Model], headers: Sequence[HeaderParam] = ()
) -> tuple[Model, dict[str, Any]]:
    """The JSON body as `model` and the headers' values by name. 415 for another media
    type, 400 for malformed JSON, else one 422 naming every bad header and field
    (locations start with "header" or "body", as FastAPI's do)."""
    content_type = request.headers.get("content-type")
    if content_type is not None and not _is_json(content_type):
        raise Problem(
            415,
            "Unsupported Media Type",
            f"The body must be application/json, not {content_type!r}.",
            type=UNSUPPORTED_MEDIA_TYPE,
        )
    errors: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    for header in headers:
        values[header.name], wrong = header.parse(request)
        errors += wrong
    raw = await request.body()
    body: Model | None = None
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        body_errors = exc.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in body_errors):
            errors = []  # not JSON at all: a 400, whatever else is wrong
        errors += [{**e, "loc": ("body", *e["loc"])} for e in body_errors]
    if errors or body is None:
        raise validation_problem(errors)
    return body, values


@dataclass(frozen=True)
class Documented:
    """How `/openapi.json` describes a direct route."""

    summary: str
    body: type[BaseModel]
    answer: type[BaseModel]
    status_code: int = 200
    description: str = ""
    headers: Sequence[HeaderParam] = ()
    # Other answers, as FastAPI's `responses=`: {status: {"description": ..., "content": ...}}
    responses: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    tags: Sequence[str] = ()
    operation_id: str | None = None


@dataclass(frozen=True)
class DirectRoute:
    method: str
    path: str  # exact: a direct route has no path parameters
    endpoint: Endpoint
    doc: Documented


class DirectRoutes:
    """ASGI middleware: a request for a direct route goes to its endpoint; everything
    else to the app. Sits inside the observability and body-limit middleware."""

    def __init__(self, app: ASGIApp, routes: Sequence[DirectRoute]) -> None:
        self.app = app
        self.routes = {(r.method, r.path): r for r in routes}
        self.methods: dict[str, list[str]] = {}
        for r in routes:
            self.methods.setdefault(r.path, []).append(r.method)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        route = self.routes.get((scope["method"], path))
        if route is None:
            allowed = self.methods.get(path)
            if allowed is None:
                await self.app(scope, receive, send)
                return
            problem = Problem(405, headers={"Allow": ", ".join(allowed)})
            await problem_response(problem, path)(scope, receive, send)
            return
        scope["route"] = route  # the route template of the request metrics and span
        try:
            response = await route.endpoint(Request(scope, receive))
        except Problem as problem:
            response = problem_response(problem, path)
        await response(scope, receive, send)


def add_to_openapi(schema: dict[str, Any], routes: Sequence[DirectRoute]) -> None:
    """Document `routes` in an OpenAPI document FastAPI generated for the other routes."""
    if not routes:
        return
    models: list[tuple[type[BaseModel], Any]] = []
    for route in routes:
        models += [(route.doc.body, "validation"), (route.doc.answer, "serialization")]
    refs, definitions = models_json_schema(models, ref_template=_REF)
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).setdefault("bearer", _BEARER)
    components = components.setdefault("schemas", {})
    for name, definition in definitions.get("$defs", {}).items():
        components.setdefault(name, definition)
    paths = schema.setdefault("paths", {})
    for route in routes:
        doc = route.doc
        responses: dict[str, Any] = {
            str(doc.status_code): {
                "description": "Successful Response",
                "content": {"application/json": {"schema": refs[doc.answer, "serialization"]}},
            },
            "422": {
                "description": "Invalid request: every bad field is named in `errors`.",
                "content": _PROBLEM_CONTENT,
            },
        }
        for status, answer in doc.responses.items():
            responses[str(status)] = dict(answer)
        operation: dict[str, Any] = {
            "tags": list(doc.tags),
            "summary": doc.summary,
            "description": doc.description,
            "operationId": doc.operation_id or f"{route.method.lower()}{route.path}",
            "parameters": [h.openapi() for h in doc.headers],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": refs[doc.body, "validation"]}},
            },
            "responses": responses,
            "security": [{"bearer": []}],
        }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
