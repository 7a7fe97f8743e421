"""Development mail server: a real aiosmtpd SMTP server that keeps what it receives, with
an HTTP side for /healthz and /_sim/records (the local stack checks health over HTTP)."""

from __future__ import annotations

import email
from email import policy
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI


class MailStore:
    """aiosmtpd handler: every accepted message, parsed."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(  # noqa: N802 (aiosmtpd hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=policy.default)
        body = parsed.get_body(preferencelist=("plain",))
        self.messages.append(
            {
                "message_id": str(parsed["Message-ID"]),
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(parsed["Subject"]),
                "text": body.get_content().strip() if body is not None else "",
            }
        )
        return "250 Message accepted for delivery"


def start_smtp(host: str, port: int) -> tuple[Controller, MailStore]:
    """A running SMTP server on host:port (its own thread); stop with `controller.stop()`."""
    store = MailStore()
    controller = Controller(store, hostname=host, port=port)
    controller.start()
    return controller, store


def create_app(store: MailStore) -> FastAPI:
    app = FastAPI(title="mail simulator", version="1")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_sim/records")
    async def records() -> list[dict[str, Any]]:
        return list(store.messages)

    return app
