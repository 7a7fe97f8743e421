"""HMAC signatures of department callbacks and webhooks."""

from __future__ import annotations

import pytest

from onegrid_common.signing import SignatureError, sign, verify

SECRET = "callback-secret"
BODY = '{"case_id": "c-1", "status": "completed", "note": "已处理"}'.encode()
T = 1_790_000_000


def test_signed_body_verifies_and_returns_its_timestamp() -> None:
    header = sign(SECRET, T, BODY)
    assert header.startswith(f"t={T},v1=")
    assert verify(SECRET, header, BODY, now=T + 10) == T


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_signature(header: str | None) -> None:
    with pytest.raises(SignatureError) as info:
        verify(SECRET, header, BODY, now=T)
    assert info.value.reason == "missing"


@pytest.mark.parametrize("header", ["garbage", "t=abc,v1=00", f"t={T}", "v1=abcd", "t=1;v1=2"])
def test_malformed_signature(header: str) -> None:
    with pytest.raises(SignatureError) as info:
        verify(SECRET, header, BODY, now=T)
    assert info.value.reason == "malformed"


@pytest.mark.parametrize("now", [T + 301, T - 301])
def test_signature_outside_tolerance_is_expired(now: int) -> None:
    with pytest.raises(SignatureError) as info:
        verify(SECRET, sign(SECRET, T, BODY), BODY, now=now)
    assert info.value.reason == "expired"


def test_altered_body_does_not_match() -> None:
    with pytest.raises(SignatureError) as info:
        verify(SECRET, sign(SECRET, T, BODY), BODY.replace(b"completed", b"refused"), now=T)
    assert info.value.reason == "mismatch"


def test_replayed_signature_with_a_new_timestamp_does_not_match() -> None:
    mac = sign(SECRET, T, BODY).split("v1=")[1]
    with pytest.raises(SignatureError) as info:
        verify(SECRET, f"t={T + 100},v1={mac}", BODY, now=T + 100)
    assert info.value.reason == "mismatch"


def test_wrong_secret_does_not_match() -> None:
    with pytest.raises(SignatureError) as info:
        verify("other", sign(SECRET, T, BODY), BODY, now=T)
    assert info.value.reason == "mismatch"


def test_rotation_accepts_any_configured_secret_and_any_v1() -> None:
    header = sign("new", T, BODY) + ",v1=" + sign("old", T, BODY).split("v1=")[1]
    assert verify(["old"], header, BODY, now=T) == T
    assert verify(["new", "old"], sign("old", T, BODY), BODY, now=T) == T


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign("", T, BODY)
    with pytest.raises(ValueError, match="secret"):
        verify([], sign(SECRET, T, BODY), BODY, now=T)
