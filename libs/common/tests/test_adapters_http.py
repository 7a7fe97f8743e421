"""DepartmentHttp against a real HTTP server on localhost: what each outcome becomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from fastapi import FastAPI, Request, Response

from onegrid_common.adapters import DepartmentHttp
from onegrid_common.adapters.client import (
    IDEMPOTENCY_HEADER,
    CallContext,
    DepartmentRejectedError,
    DepartmentUnavailableError,
)
from onegrid_common.adapters.testkit import free_port, serve_app

CTX = CallContext("urban", "task-1", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")


def department_app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        return {
            "body": await request.json(),
            "type": request.headers.get("content-type"),
            "key": request.headers.get(IDEMPOTENCY_HEADER),
            "trace": request.headers.get("traceparent"),
            "page": request.query_params.get("page"),
        }

    @app.get("/slow")
    async def slow() -> dict[str, Any]:
        await asyncio.sleep(2)
        return {}

    @app.get("/status/{code}")
    async def status(code: int) -> Response:
        return Response(status_code=code)

    return app


@pytest_asyncio.fixture
async def department() -> AsyncIterator[str]:
    async with serve_app(department_app()) as url:
        yield url + "/"


async def test_a_call_carries_its_json_idempotency_key_and_trace(department: str) -> None:
    http = DepartmentHttp(department)
    try:
        answer = await http.request(
            "POST", "/echo", CTX, json={"问题": "井盖缺失"}, params={"page": "2"}
        )
    finally:
        await http.aclose()
    assert answer.json() == {
        "body": {"问题": "井盖缺失"},
        "type": "application/json",
        "key": "task-1",
        "trace": CTX.traceparent,
        "page": "2",
    }


async def test_timeouts_refusals_and_5xx_are_retryable_other_4xx_are_not(
    department: str,
) -> None:
    http = DepartmentHttp(department, timeout_s=0.3)
    try:
        with pytest.raises(DepartmentUnavailableError) as slow_call:
            await http.request("GET", "/slow", CTX)
        with pytest.raises(DepartmentUnavailableError) as busy:
            await http.request("GET", "/status/503", CTX)
        with pytest.raises(DepartmentUnavailableError) as throttled:
            await http.request("GET", "/status/429", CTX)
        with pytest.raises(DepartmentRejectedError):
            await http.request("GET", "/status/404", CTX)
    finally:
        await http.aclose()
    assert slow_call.value.reason == "timeout"
    assert busy.value.reason == "http_503"
    assert throttled.value.reason == "http_429"

    nobody = DepartmentHttp(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(DepartmentUnavailableError) as refused:
            await nobody.request("GET", "/anything", CTX)
    finally:
        await nobody.aclose()
    assert refused.value.reason == "connect"
