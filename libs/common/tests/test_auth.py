"""Token minting and decoding, principals and role checks (pure); the CLI that mints."""

from __future__ import annotations

import time

import jwt
import pytest
from pydantic import SecretStr
from typer import Typer
from typer.testing import CliRunner

from onegrid_cli.token import token as token_command
from onegrid_common.auth import AuthError, Principal, check_role, decode_token, mint_token
from onegrid_common.settings import SecuritySettings, get_settings

SECURITY = SecuritySettings(jwt_secret=SecretStr("auth-test-secret-0123456789abcdef012345"))


def test_minted_token_decodes_to_the_same_principal() -> None:
    token = mint_token(
        "worker-7",
        ["grid_worker", "unit:COMM-01"],
        settings=SECURITY,
        name="李四",
        grid_codes=["420502001001"],
    )
    principal = decode_token(token, settings=SECURITY)
    assert principal.subject == "worker-7"
    assert principal.roles == {"grid_worker", "unit:COMM-01"}
    assert principal.unit_codes == {"COMM-01"}
    assert principal.grid_codes == {"420502001001"}
    assert principal.name == "李四"


def test_token_carries_issuer_audience_and_expiry() -> None:
    token = mint_token("u", ["operator"], settings=SECURITY, ttl_s=120, now=1_800_000_000)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == SECURITY.jwt_issuer
    assert claims["aud"] == SECURITY.jwt_audience
    assert claims["exp"] - claims["iat"] == 120


def test_expired_token_is_refused() -> None:
    token = mint_token("u", ["operator"], settings=SECURITY, ttl_s=60, now=time.time() - 3600)
    with pytest.raises(AuthError, match="expired"):
        decode_token(token, settings=SECURITY)


def test_a_token_verified_before_is_still_refused_once_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = mint_token("u", ["operator"], settings=SECURITY, ttl_s=60)
    assert decode_token(token, settings=SECURITY, leeway_s=0).subject == "u"
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(AuthError, match="expired"):
        decode_token(token, settings=SECURITY, leeway_s=0)


def test_a_token_verified_under_one_secret_is_refused_under_another() -> None:
    token = mint_token("u", ["operator"], settings=SECURITY)
    assert decode_token(token, settings=SECURITY).subject == "u"
    other = SECURITY.model_copy(update={"jwt_secret": SecretStr("another-secret-" + "x" * 32)})
    with pytest.raises(AuthError, match="signature"):
        decode_token(token, settings=other)


def test_token_from_another_issuer_is_refused() -> None:
    other = SECURITY.model_copy(update={"jwt_issuer": "elsewhere"})
    token = mint_token("u", ["operator"], settings=other)
    with pytest.raises(AuthError, match="issuer"):
        decode_token(token, settings=SECURITY)


def test_token_without_expiry_is_refused() -> None:
    claims = {
        "sub": "u",
        "iss": SECURITY.jwt_issuer,
        "aud": SECURITY.jwt_audience,
        "iat": int(time.time()),
        "roles": ["admin"],
    }
    token = jwt.encode(claims, SECURITY.jwt_secret.get_secret_value(), algorithm="HS256")
    with pytest.raises(AuthError, match="'exp'"):
        decode_token(token, settings=SECURITY)


def test_unsigned_token_is_refused() -> None:
    claims = {
        "sub": "u",
        "iss": SECURITY.jwt_issuer,
        "aud": SECURITY.jwt_audience,
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
        "roles": ["admin"],
    }
    token = jwt.encode(claims, "", algorithm="none")
    with pytest.raises(AuthError):
        decode_token(token, settings=SECURITY)


def test_roles_claim_must_be_a_list_of_strings() -> None:
    token = mint_token("u", ["operator"], settings=SECURITY, extra_claims={"grids": "g1"})
    with pytest.raises(AuthError, match="grids"):
        decode_token(token, settings=SECURITY)


@pytest.mark.parametrize("role", ["superuser", "unit:", "unit:bad code", "Operator"])
def test_unknown_roles_cannot_be_minted(role: str) -> None:
    with pytest.raises(ValueError, match=r"role|unit code"):
        mint_token("u", [role], settings=SECURITY)


def test_extra_claims_cannot_override_reserved_ones() -> None:
    with pytest.raises(ValueError, match="roles"):
        mint_token("u", ["reporter"], settings=SECURITY, extra_claims={"roles": ["admin"]})


def test_a_token_needs_a_role_and_a_positive_ttl() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        mint_token("u", [], settings=SECURITY)
    with pytest.raises(ValueError, match="ttl_s"):
        mint_token("u", ["reporter"], settings=SECURITY, ttl_s=0)


def test_check_role_accepts_design_roles_and_units() -> None:
    for role in ("reporter", "grid_worker", "operator", "auditor", "admin", "service"):
        assert check_role(role) == role
    assert check_role("unit:URBAN_MGMT") == "unit:URBAN_MGMT"


def test_a_unit_sees_only_its_own_unit() -> None:
    unit = Principal("u", frozenset({"unit:URBAN"}))
    assert unit.can_see_unit("URBAN")
    assert not unit.can_see_unit("POLICE")


@pytest.mark.parametrize("role", ["operator", "auditor", "admin", "service"])
def test_command_centre_roles_see_every_unit(role: str) -> None:
    assert Principal("u", frozenset({role})).can_see_unit("POLICE")


def test_reporter_and_grid_worker_see_no_unit() -> None:
    assert not Principal("u", frozenset({"reporter"})).can_see_unit("URBAN")
    worker = Principal("u", frozenset({"grid_worker"}), grid_codes=frozenset({"g1"}))
    assert not worker.can_see_unit("URBAN")
    assert worker.can_see_grid("g1")
    assert not worker.can_see_grid("g2")


def test_role_checks_match_unit_wildcard_and_admin() -> None:
    unit = Principal("u", frozenset({"unit:URBAN"}))
    assert unit.allowed(["unit:*"])
    assert not unit.allowed(["operator"])
    assert Principal("u", frozenset({"admin"})).allowed(["operator"])
    assert not Principal("u", frozenset({"reporter"})).allowed(["unit:*", "operator"])


# --- onegrid token -------------------------------------------------------------------------


def _cli() -> Typer:
    app = Typer()
    app.command()(token_command)
    return app


def test_cli_prints_a_token_the_services_accept() -> None:
    result = CliRunner().invoke(
        _cli(), ["--role", "operator", "--unit", "URBAN", "--subject", "alice", "--ttl", "60"]
    )
    assert result.exit_code == 0, result.output
    principal = decode_token(result.stdout.strip(), settings=get_settings().security)
    assert principal.subject == "alice"
    assert principal.roles == {"operator", "unit:URBAN"}
    assert principal.claims["exp"] - principal.claims["iat"] == 60


def test_cli_rejects_an_unknown_role() -> None:
    result = CliRunner().invoke(_cli(), ["--role", "root"])
    assert result.exit_code == 2
    assert "unknown role" in result.output


def test_cli_refuses_in_prod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEGRID_ENVIRONMENT", "prod")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(_cli(), ["--role", "admin"])
    finally:
        monkeypatch.delenv("ONEGRID_ENVIRONMENT")
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "refused in prod" in result.output
