"""RFC 9457 problem details (`application/problem+json`) for every onegrid HTTP API.

Raise `Problem(status, title, detail, type=..., **extra)` anywhere in a request; the
handlers installed by `install_problem_handlers(app)` turn it, FastAPI's validation
errors, HTTP exceptions, unknown routes and unhandled exceptions into problem responses.
`BodySizeLimitMiddleware` answers 413 for bodies over a per-app limit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from opentelemetry import trace
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON: Final = "application/problem+json"
# Problem types are URNs: stable identifiers that do not pretend to be fetchable pages.
PROBLEM_TYPE_PREFIX: Final = "urn:onegrid:problem:"
VALIDATION_ERROR: Final = PROBLEM_TYPE_PREFIX + "validation-error"
MALFORMED_JSON: Final = PROBLEM_TYPE_PREFIX + "malformed-json"
BODY_TOO_LARGE: Final = PROBLEM_TYPE_PREFIX + "body-too-large"
INTERNAL_ERROR: Final = PROBLEM_TYPE_PREFIX + "internal-error"

_log = logging.getLogger("onegrid.http")


def _status_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Problem(StarletteHTTPException):
    """An error answered as problem details.

    A subclass of Starlette's HTTPException so that FastAPI lets it pass through body
    parsing and dependencies untouched. `extra` members are added to the JSON object
    (RFC 9457 extension members), e.g. `errors=[...]` or `case_id=...`.
    """

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        *,
        type: str = "about:blank",  # the RFC's member name
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=dict(headers or {}))
        self.status = status
        self.title = title or _status_title(status)
        self.problem_detail = detail
        self.type = type
        self.extra = extra

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.problem_detail is not None:
            body["detail"] = self.problem_detail
        if instance is not None:
            body["instance"] = instance
        trace_id = current_trace_id()
        if trace_id is not None:
            body["trace_id"] = trace_id
        body.update(self.extra)
        return body

    def __str__(self) -> str:
        return f"{self.status} {self.title}" + (
            f": {self.problem_detail}" if self.problem_detail else ""
        )


class ProblemResponse(Response):
    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS)


def current_trace_id() -> str | None:
    """The trace id (32 hex digits) of the current OpenTelemetry span, if any."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def problem_response(problem: Problem, instance: str | None = None) -> ProblemResponse:
    return ProblemResponse(
        problem.to_dict(instance), status_code=problem.status, headers=problem.headers
    )


def _field_path(loc: Sequence[int | str]) -> tuple[str, str, str]:
    """(where, dotted field, JSON pointer) of a pydantic error location.

    FastAPI prefixes locations with body/query/path/header/cookie; the field names
    what the client sent, e.g. `location.lat` or `attachments.0.sha256`.
    """
    where = str(loc[0]) if loc else "body"
    rest = [str(part) for part in loc[1:]]
    dotted = ".".join(rest) if rest else where
    pointer = "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in rest)
    return where, dotted, pointer


def validation_problem(errors: Sequence[Any]) -> Problem:
    """A 422 naming every bad field, or a 400 when the body is not JSON at all."""
    malformed = [e for e in errors if e.get("type") == "json_invalid"]
    if malformed:
        err = malformed[0]
        reason = (err.get("ctx") or {}).get("error", "invalid JSON")
        # json.loads (FastAPI) gives the offset as the location's last part; pydantic's
        # own parser puts line and column in the reason.
        position = (err.get("loc") or ("body",))[-1]
        at = f" at position {position}" if isinstance(position, int) else ""
        return Problem(
            400,
            "Malformed JSON",
            f"The request body is not valid JSON: {reason}{at}.",
            type=MALFORMED_JSON,
        )
    items: list[dict[str, Any]] = []
    for err in errors:
        where, dotted, pointer = _field_path(tuple(err.get("loc", ())))
        items.append(
            {
                "field": dotted,
                "pointer": pointer,
                "in": where,
                "message": str(err.get("msg", "invalid value")),
                "type": str(err.get("type", "value_error")),
            }
        )
    names = ", ".join(sorted({i["field"] for i in items}))
    return Problem(
        422,
        "Invalid request",
        f"{len(items)} invalid field(s): {names}.",
        type=VALIDATION_ERROR,
        errors=items,
    )


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request.url.path)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(validation_problem(exc.errors()), request.url.path)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    # Starlette's default detail is the status phrase; repeating it as detail adds nothing.
    title = _status_title(exc.status_code)
    detail = None if exc.detail == title else str(exc.detail)
    if exc.status_code == 404 and detail is None:
        detail = f"No resource at {request.method} {request.url.path}."
    problem = Problem(exc.status_code, title, detail, headers=exc.headers)
    return problem_response(problem, request.url.path)


def internal_error_problem() -> Problem:
    return Problem(
        500,
        "Internal Server Error",
        "The server failed to handle the request; quote the trace_id when reporting it.",
        type=INTERNAL_ERROR,
    )


async def _on_unhandled(request: Request, exc: Exception) -> Response:
    _log.error(
        "unhandled error in %s %s",
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return problem_response(internal_error_problem(), request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of `app` as problem details."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unhandled)


def body_too_large_problem(limit: int) -> Problem:
    return Problem(
        413,
        "Content Too Large",
        f"The request body is larger than the limit of {limit} bytes.",
        type=BODY_TOO_LARGE,
        max_body_bytes=limit,
    )


class BodySizeLimitMiddleware:
    """Rejects request bodies over `max_body_bytes` with a 413 problem.

    A declared Content-Length over the limit is answered before the app runs; a body
    streamed without one is counted as it is read, and the read raises the Problem.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        if max_body_bytes < 0:
            raise ValueError("max_body_bytes must be >= 0")
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            response = problem_response(body_too_large_problem(limit), scope.get("path"))
            await response(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise body_too_large_problem(limit)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
