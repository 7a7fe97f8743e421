"""The four channels. Each send carries the notification id as the provider-side
idempotency key, so a send repeated after a crash is recognised by the provider:
SMS `out_id`, push `Idempotency-Key`, webhook `Idempotency-Key` (+ signed body),
e-mail `Message-ID: <id@onegrid>`.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import aiohttp
import orjson

from onegrid_common.http_client import UNREACHABLE, HttpAnswer, send
from onegrid_common.signing import SIGNATURE_HEADER, sign_now


@dataclass(frozen=True)
class Delivered:
    provider_message_id: str


@dataclass(frozen=True)
class Failed:
    error: str
    permanent: bool  # no retry can fix it: the next channel is tried at once
    retry_after_s: float = 0.0


SendResult = Delivered | Failed

# SMS gateway answer codes (Aliyun Dysms-like) that no retry fixes.
SMS_PERMANENT_CODES = frozenset(
    {
        "isv.MOBILE_NUMBER_ILLEGAL",
        "isv.CONTENT_TOO_LONG",
        "isv.SIGN_NAME_ILLEGAL",
        "isv.INVALID_APP_KEY",
        "isv.INVALID_PARAMETERS",
    }
)


def _http_failure(resp: HttpAnswer, what: str) -> Failed:
    retry_after = float(resp.headers.get("Retry-After") or 0)
    permanent = resp.status in (400, 401, 403, 404, 410, 413, 422)
    return Failed(f"{what}: HTTP {resp.status}", permanent, retry_after)


class SmsGateway:
    """POST /v1/sms/send of the provider; `out_id` makes a repeated send a no-op."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, app_key: str, secret: str):
        self._http, self._url, self._key, self._secret = http, base_url, app_key, secret

    async def send(self, *, out_id: str, phone: str, sign_name: str, content: str) -> SendResult:
        body = json.dumps(
            {
                "app_key": self._key,
                "out_id": out_id,
                "phone_numbers": phone,
                "sign_name": sign_name,
                "content": content,
            },
            ensure_ascii=False,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Sms-Signature": sign_now(self._secret, body),
        }
        try:
            resp = await send(
                self._http, "POST", f"{self._url}/v1/sms/send", content=body, headers=headers
            )
        except UNREACHABLE as exc:
            return Failed(f"sms gateway unreachable: {type(exc).__name__}", permanent=False)
        if resp.status != 200:
            return _http_failure(resp, "sms gateway")
        answer = resp.json()
        code = str(answer.get("code"))
        if code == "OK":
            return Delivered(str(answer["biz_id"]))
        message = f"sms gateway {code}: {answer.get('message', '')}"
        if code == "isv.BUSINESS_LIMIT_CONTROL":
            return Failed(message, permanent=False, retry_after_s=60.0)
        return Failed(message, permanent=code in SMS_PERMANENT_CODES)


class PushGateway:
    """POST /v1/push of the app push gateway, to a staff code or desk id."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, api_key: str):
        self._http, self._url, self._key = http, base_url, api_key

    async def send(self, *, idempotency_key: str, target: str, title: str, body: str) -> SendResult:
        try:
            resp = await send(
                self._http,
                "POST",
                f"{self._url}/v1/push",
                content=orjson.dumps({"target": target, "title": title, "body": body}),
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {self._key}",
                    "Idempotency-Key": idempotency_key,
                },
            )
        except UNREACHABLE as exc:
            return Failed(f"push gateway unreachable: {type(exc).__name__}", permanent=False)
        if resp.status not in (200, 201):
            return _http_failure(resp, "push gateway")
        return Delivered(str(resp.json()["push_id"]))


class WebhookSender:
    """A signed POST to the unit's own URL (HMAC, onegrid_common.signing)."""

    def __init__(self, http: aiohttp.ClientSession, secret: str):
        self._http, self._secret = http, secret

    async def send(
        self, *, url: str, idempotency_key: str, payload: dict[str, object]
    ) -> SendResult:
        body = json.dumps(payload, ensure_ascii=False, default=str).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            SIGNATURE_HEADER: sign_now(self._secret, body),
        }
        try:
            resp = await send(self._http, "POST", url, content=body, headers=headers)
        except UNREACHABLE as exc:
            return Failed(f"webhook unreachable: {type(exc).__name__}", permanent=False)
        if resp.status >= 300:
            return _http_failure(resp, "webhook")
        return Delivered(idempotency_key)


class SmtpMailer:
    """Plain SMTP (submission relay); the blocking client runs in a worker thread."""

    def __init__(self, host: str, port: int, sender: str, timeout_s: float):
        self._host, self._port, self._from, self._timeout = host, port, sender, timeout_s

    async def send(self, *, message_id: str, to: str, subject: str, text: str) -> SendResult:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self._from, to, subject
        msg["Message-ID"] = f"<{message_id}@onegrid>"
        msg["Date"] = formatdate(localtime=False)
        msg.set_content(text)
        try:
            await asyncio.to_thread(self._deliver, msg)
        except smtplib.SMTPRecipientsRefused as exc:
            return Failed(f"smtp refused recipient: {list(exc.recipients.values())}", True)
        except (smtplib.SMTPException, OSError) as exc:
            return Failed(f"smtp: {type(exc).__name__}: {exc}", permanent=False)
        return Delivered(msg["Message-ID"])

    def _deliver(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
            smtp.send_message(msg)
