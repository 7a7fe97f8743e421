"""HMAC-SHA256 signatures for department callbacks and webhooks.

The header value is `t=<unix seconds>,v1=<hex hmac>` where the HMAC covers
`"<t>." + body`. Binding the timestamp stops replays outside the tolerance window; more
than one `v1=` is accepted so a sender can sign with an old and a new secret while the
secret rotates.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Final, Literal

SIGNATURE_HEADER: Final = "X-Onegrid-Signature"
DEFAULT_TOLERANCE_S: Final = 300

SignatureFailure = Literal["missing", "malformed", "expired", "mismatch"]


class SignatureError(Exception):
    """A signature that cannot be accepted; `reason` says which check failed."""

    def __init__(self, reason: SignatureFailure, message: str) -> None:
        super().__init__(message)
        self.reason: SignatureFailure = reason


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _mac(secret: str | bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp` (unix seconds)."""
    if not secret:
        raise ValueError("signing secret must not be empty")
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def sign_now(secret: str | bytes, body: bytes) -> str:
    return sign(secret, int(time.time()), body)


def verify(
    secret: str | bytes | Sequence[str | bytes],
    header: str | None,
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """The signed timestamp when `header` is a valid signature of `body`.

    `secret` may be several secrets (during rotation); any one matching is enough.
    Raises SignatureError: missing, malformed, expired (outside ±tolerance_s), mismatch.
    """
    if not header or not header.strip():
        raise SignatureError("missing", f"the {SIGNATURE_HEADER} header is missing")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed", "signature header parts must be name=value")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("malformed", "signature timestamp is not an integer") from None
        elif name == "v1":
            signatures.append(value.lower())
    if timestamp is None or not signatures:
        raise SignatureError("malformed", "signature header needs t=<unix time> and v1=<hex>")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(
            "expired", f"signature timestamp is more than {tolerance_s} s from the current time"
        )
    secrets = [secret] if isinstance(secret, str | bytes) else list(secret)
    if not secrets or not all(secrets):
        raise ValueError("verification needs at least one non-empty secret")
    expected = [_mac(s, timestamp, body) for s in secrets]
    # Compare every pair, without an early exit, in constant time per comparison.
    matched = False
    for given in signatures:
        for candidate in expected:
            matched |= hmac.compare_digest(given.encode(), candidate.encode())
    if not matched:
        raise SignatureError("mismatch", "signature does not match the body")
    return timestamp
