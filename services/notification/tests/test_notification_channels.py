"""The gateway clients against a real HTTP server on localhost: what each answer becomes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from onegrid_common.adapters.testkit import free_port, serve_app
from onegrid_notification.channels import Delivered, Failed, PushGateway, SmsGateway


def gateway_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/sms/send")
    async def sms(request: Request) -> JSONResponse:
        body = await request.json()
        content = body["content"]
        if content == "busy":
            return JSONResponse({"code": "throttled"}, 429, headers={"Retry-After": "7"})
        if content == "bad":
            return JSONResponse({"code": "invalid"}, 422)
        if content == "long":
            return JSONResponse({"code": "isv.CONTENT_TOO_LONG", "message": "too long"})
        return JSONResponse({"code": "OK", "biz_id": f"biz-{body['out_id']}"})

    @app.post("/v1/push", status_code=201)
    async def push(request: Request) -> dict[str, Any]:
        assert request.headers["Authorization"] == "Bearer push-key"
        assert (await request.json())["target"]
        return {"push_id": f"p-{request.headers['Idempotency-Key']}"}

    return app


@pytest_asyncio.fixture
async def gateway() -> AsyncIterator[str]:
    async with serve_app(gateway_app()) as url:
        yield url


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def send_sms(http: aiohttp.ClientSession, url: str, content: str) -> Delivered | Failed:
    gateway = SmsGateway(http, url, "app-key", "secret")
    return await gateway.send(out_id="n1", phone="13800138000", sign_name="宜昌", content=content)


async def test_an_accepted_sms_is_delivered_under_the_providers_id(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    assert await send_sms(http, gateway, "您的案件已受理") == Delivered("biz-n1")


async def test_gateway_answers_become_retryable_or_permanent_failures(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    assert await send_sms(http, gateway, "busy") == Failed("sms gateway: HTTP 429", False, 7.0)
    assert await send_sms(http, gateway, "bad") == Failed("sms gateway: HTTP 422", True)
    long = await send_sms(http, gateway, "long")
    assert isinstance(long, Failed)
    assert long.permanent


async def test_a_gateway_nobody_answers_on_is_a_retryable_failure(
    http: aiohttp.ClientSession,
) -> None:
    failed = await send_sms(http, f"http://127.0.0.1:{free_port()}", "您好")
    assert isinstance(failed, Failed)
    assert not failed.permanent
    assert failed.error.startswith("sms gateway unreachable: Client")


async def test_a_push_is_delivered_under_the_gateways_id(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    sent = await PushGateway(http, gateway, "push-key").send(
        idempotency_key="n2", target="S0000101", title="新任务", body="请处理"
    )
    assert sent == Delivered("p-n2")
