"""The ASGI app every onegrid service serves (DESIGN §7, §8).

    app = create_app(
        "intake",
        routers=[reports.router],
        readiness={"db": db.ping, "broker": broker.ping},
        lifespan=lifespan,
        max_body_bytes=256 * 1024,
    )

gives `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`, problem-details errors,
a body-size limit, a server span per request (its `traceparent` in the response) and the
shared request metrics. Declare response models with pydantic `AwareDatetime` fields so
times go out as RFC 3339 with an offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, cast

import orjson
from fastapi import APIRouter, FastAPI
from fastapi.datastructures import Default
from fastapi.openapi.utils import get_openapi
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from onegrid_common import metrics
from onegrid_common.direct_routes import DirectRoute, DirectRoutes, add_to_openapi
from onegrid_common.logs import redact
from onegrid_common.problems import (
    BodySizeLimitMiddleware,
    install_problem_handlers,
    internal_error_problem,
    problem_response,
)
from onegrid_common.settings import SecuritySettings
from onegrid_common.telemetry import (
    SERVICE,
    context_from_traceparent,
    get_tracer,
    traceparent_of,
)

ReadinessCheck = Callable[[], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
READINESS_TIMEOUT_S: Final = 2.0
# Probes and scrapes come every few seconds; spans for them would bury the case traces.
_UNTRACED_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
_UNMATCHED_ROUTE: Final = "<unmatched>"

_log = logging.getLogger("onegrid.http")


class OrjsonResponse(JSONResponse):
    """JSON via orjson; a naive datetime is taken as UTC so every time has an offset."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(
            content,
            option=orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY,
        )


class ObservabilityMiddleware:
    """A server span and the request metrics for every HTTP request, and the last line
    of defence: an exception nobody handled becomes a 500 problem, logged with the trace
    id, instead of a stack trace to the client."""

    def __init__(
        self,
        app: ASGIApp,
        service: str,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.tracer = get_tracer(tracer_provider)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        started = time.perf_counter()
        status = 500
        response_started = False
        span = None
        token = None
        if path not in _UNTRACED_PATHS:
            traceparent = _header(scope, b"traceparent")
            span = self.tracer.start_span(
                method,
                context=context_from_traceparent(traceparent),
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": method,
                    "url.path": path,
                    SERVICE: self.service,
                },
            )
            token = otel_context.attach(trace.set_span_in_context(span))

        async def send_observed(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                if span is not None:
                    tp = traceparent_of(span)
                    if tp is not None:
                        headers = list(message.get("headers", []))
                        headers.append((b"traceparent", tp.encode("ascii")))
                        message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except Exception as exc:
            _log.error(
                "unhandled error in %s %s",
                method,
                path,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            if span is not None:
                span.record_exception(exc)
            if response_started:
                raise
            await problem_response(internal_error_problem(), path)(scope, receive, send_observed)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or _UNMATCHED_ROUTE
            elapsed = time.perf_counter() - started
            labels = {
                "service": self.service,
                "method": method,
                "route": template,
                "status": str(status),
            }
            metrics.HTTP_REQUESTS.labels(**labels).inc()
            metrics.HTTP_REQUEST_DURATION.labels(**labels).observe(elapsed)
            if span is not None:
                span.update_name(f"{method} {template}")
                span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                span.end()
            if token is not None:
                otel_context.detach(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return cast(bytes, value).decode("latin-1")
    return None


async def _run_check(check: ReadinessCheck) -> dict[str, str]:
    try:
        await asyncio.wait_for(check(), timeout=READINESS_TIMEOUT_S)
    except TimeoutError:
        return {"status": "failed", "error": f"no answer within {READINESS_TIMEOUT_S} s"}
    except Exception as exc:
        # Probes are internal, but the message still must not carry PII or secrets.
        return {"status": "failed", "error": redact(f"{type(exc).__name__}: {exc}")[:300]}
    return {"status": "ok"}


def _operational_router(service: str, readiness: Mapping[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> Response:
        return OrjsonResponse({"status": "ok", "service": service})

    @router.get("/readyz")
    async def readyz() -> Response:
        names = list(readiness)
        results = await asyncio.gather(*(_run_check(readiness[n]) for n in names))
        checks = dict(zip(names, results, strict=True))
        failed = [n for n, r in checks.items() if r["status"] != "ok"]
        body = {
            "status": "unready" if failed else "ready",
            "service": service,
            "checks": checks,
            "failed": failed,
        }
        return OrjsonResponse(body, status_code=503 if failed else 200)

    @router.get("/metrics")
    async def metrics_endpoint() -> Response:
        content, content_type = metrics.render_metrics()
        return Response(content, media_type=content_type)

    return router


_PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "trace_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "pointer": {"type": "string"},
                    "in": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
                "required": ["field", "message", "type"],
            },
        },
    },
    "required": ["type", "title", "status"],
}


def _problem_openapi(
    app: FastAPI, direct_routes: Sequence[DirectRoute]
) -> Callable[[], dict[str, Any]]:
    """FastAPI documents 422 as its own JSON shape; onegrid answers problem details.
    Direct routes, which FastAPI does not know, are documented beside its own."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        problem_content = {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    responses["422"] = {
                        "description": "Invalid request: every bad field is named in `errors`.",
                        "content": problem_content,
                    }
        add_to_openapi(schema, direct_routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components["Problem"] = _PROBLEM_SCHEMA
        app.openapi_schema = schema
        return schema

    return openapi


def create_app(
    service: str,
    *,
    routers: Sequence[APIRouter] = (),
    direct_routes: Sequence[DirectRoute] = (),
    readiness: Mapping[str, ReadinessCheck] | None = None,
    lifespan: Lifespan[FastAPI] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    security: SecuritySettings | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    title: str | None = None,
    version: str = "0.1.0",
    description: str | None = None,
) -> FastAPI:
    """The FastAPI app of `service` with onegrid's conventions installed.

    `readiness` maps a name ("db", "broker") to an async check that raises when the
    dependency is not usable. `direct_routes` are served before FastAPI's router
    (`onegrid_common.direct_routes`). `security` overrides the process settings for the auth
    dependencies (tests); `tracer_provider` overrides the global one.
    """
    app = FastAPI(
        title=title or f"onegrid {service}",
        version=version,
        description=description or "",
        lifespan=lifespan,
        # A placeholder keeps FastAPI's pydantic fast path for typed endpoints; untyped
        # ones (dicts) are rendered by orjson.
        default_response_class=cast(type[Response], Default(OrjsonResponse)),
        # ObservabilityMiddleware makes the server span and the HTTP metrics; FastAPI's own
        # telemetry would add a second span tree per request (~9 % of intake's CPU).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.service = service
    if security is not None:
        app.state.security = security
    install_problem_handlers(app)
    app.include_router(_operational_router(service, readiness or {}))
    for router in routers:
        app.include_router(router)
    if direct_routes:
        app.add_middleware(DirectRoutes, routes=direct_routes)
    # Added last = outermost: the span covers the size check and every error path.
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=max_body_bytes)
    app.add_middleware(ObservabilityMiddleware, service=service, tracer_provider=tracer_provider)
    app.openapi = _problem_openapi(app, direct_routes)  # type: ignore[method-assign]
    return app
