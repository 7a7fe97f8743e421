"""Bearer JWT authentication and role checks (DESIGN §6).

Tokens are HS256 JWTs signed with `SecuritySettings.jwt_secret`, with `iss`, `aud`, `exp`
checked. Claims: `sub`, `roles` (e.g. `["operator"]`, `["unit:URBAN"]`), optional `name`
and `grids` (the grid codes of a grid worker).

In an endpoint:

    @router.get("/v1/tasks")
    async def tasks(
        principal: Annotated[Principal, Depends(require_roles("operator", "unit:*"))],
    ) -> Page[Task]: ...

`admin` passes every role check. `unit:*` in `require_roles` accepts any unit role; the
endpoint then narrows with `principal.can_see_unit(code)`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from onegrid_common.problems import PROBLEM_TYPE_PREFIX, Problem
from onegrid_common.settings import SecuritySettings, get_settings

REPORTER: Final = "reporter"
GRID_WORKER: Final = "grid_worker"
OPERATOR: Final = "operator"
AUDITOR: Final = "auditor"
ADMIN: Final = "admin"
SERVICE: Final = "service"  # service-to-service reads
UNIT_PREFIX: Final = "unit:"
ANY_UNIT: Final = "unit:*"
BASE_ROLES: Final = frozenset({REPORTER, GRID_WORKER, OPERATOR, AUDITOR, ADMIN, SERVICE})
# Roles that may look at every unit's work (the command centre, auditors, other services).
_SEE_ALL_UNITS: Final = frozenset({ADMIN, OPERATOR, AUDITOR, SERVICE})
_UNIT_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_RESERVED_CLAIMS: Final = frozenset({"iss", "aud", "exp", "iat", "nbf", "sub", "jti", "roles"})
_ALGORITHM: Final = "HS256"
REALM: Final = "onegrid"
UNAUTHORIZED: Final = PROBLEM_TYPE_PREFIX + "unauthorized"
FORBIDDEN: Final = PROBLEM_TYPE_PREFIX + "forbidden"


def unit_role(code: str) -> str:
    """The role that lets a handling unit's staff work on its own tasks."""
    if not _UNIT_CODE.fullmatch(code):
        raise ValueError(f"invalid unit code {code!r}: letters, digits, '_', '.', '-' only")
    return UNIT_PREFIX + code


def check_role(role: str) -> str:
    """`role` if it is one of DESIGN §6's roles or `unit:<code>`, else ValueError."""
    if role in BASE_ROLES:
        return role
    if role.startswith(UNIT_PREFIX):
        return unit_role(role.removeprefix(UNIT_PREFIX))
    known = ", ".join(sorted(BASE_ROLES))
    raise ValueError(f"unknown role {role!r}: expected one of {known} or unit:<code>")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject and what it may do."""

    subject: str
    roles: frozenset[str]
    name: str | None = None
    grid_codes: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def unit_codes(self) -> frozenset[str]:
        return frozenset(
            r.removeprefix(UNIT_PREFIX) for r in self.roles if r.startswith(UNIT_PREFIX)
        )

    def has_role(self, role: str) -> bool:
        """Literal membership; `unit:*` matches any unit role. No admin shortcut here."""
        if role == ANY_UNIT:
            return bool(self.unit_codes)
        return role in self.roles

    def allowed(self, roles: Iterable[str]) -> bool:
        """Whether any of `roles` is held; `admin` is allowed everything."""
        return ADMIN in self.roles or any(self.has_role(r) for r in roles)

    def can_see_unit(self, code: str) -> bool:
        """A unit sees only its own tasks; operators, auditors, admins and services see all."""
        return code in self.unit_codes or not _SEE_ALL_UNITS.isdisjoint(self.roles)

    def can_see_grid(self, code: str) -> bool:
        """A grid worker sees their own grids; operators, auditors, admins and services all."""
        return code in self.grid_codes or not _SEE_ALL_UNITS.isdisjoint(self.roles)


class AuthError(Exception):
    """A token that cannot be accepted; `reason` is the RFC 6750 error code."""

    def __init__(
        self, description: str, reason: Literal["invalid_request", "invalid_token"]
    ) -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason


def mint_token(
    subject: str,
    roles: Iterable[str],
    *,
    settings: SecuritySettings,
    ttl_s: int | None = None,
    name: str | None = None,
    grid_codes: Iterable[str] = (),
    extra_claims: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """A signed token for `subject` with `roles` (validated), valid for `ttl_s` seconds."""
    if not subject:
        raise ValueError("subject must not be empty")
    checked = sorted({check_role(r) for r in roles})
    if not checked:
        raise ValueError("a token needs at least one role")
    ttl = settings.jwt_ttl_s if ttl_s is None else ttl_s
    if ttl <= 0:
        raise ValueError("ttl_s must be positive")
    extra = dict(extra_claims or {})
    clash = _RESERVED_CLAIMS.intersection(extra)
    if clash:
        raise ValueError(f"extra_claims may not set reserved claims: {', '.join(sorted(clash))}")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        **extra,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": issued,
        "exp": issued + ttl,
        "jti": uuid.uuid4().hex,
        "roles": checked,
    }
    if name is not None:
        claims["name"] = name
    grids = sorted(set(grid_codes))
    if grids:
        claims["grids"] = grids
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=_ALGORITHM)


# Tokens already verified, by token and the settings that verified them: a client sends the
# same token with every request, and checking its signature and claims again was ~5 % of
# intake's CPU per report. Only the expiry needs checking on a hit.
_VERIFIED: dict[tuple[str, str, str, str, int], Principal] = {}
_VERIFIED_MAX = 4096


def decode_token(token: str, *, settings: SecuritySettings, leeway_s: int = 30) -> Principal:
    """The principal of a valid token; AuthError saying why otherwise."""
    key = (
        token,
        settings.jwt_secret.get_secret_value(),
        settings.jwt_audience,
        settings.jwt_issuer,
        leeway_s,
    )
    known = _VERIFIED.get(key)
    if known is not None:
        # It was valid when verified (nbf included); only its expiry can have passed since.
        if time.time() >= float(known.claims["exp"]) + leeway_s:
            del _VERIFIED[key]
            raise AuthError("The token has expired.", "invalid_token")
        return known
    principal = _verify(token, settings=settings, leeway_s=leeway_s)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        del _VERIFIED[next(iter(_VERIFIED))]  # the oldest entry
    _VERIFIED[key] = principal
    return principal


def _verify(token: str, *, settings: SecuritySettings, leeway_s: int) -> Principal:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[_ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=leeway_s,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("The token has expired.", "invalid_token") from exc
    except jwt.InvalidAudienceError as exc:
        raise AuthError("The token is for another audience.", "invalid_token") from exc
    except jwt.InvalidIssuerError as exc:
        raise AuthError("The token is from another issuer.", "invalid_token") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"The token lacks the {exc.claim!r} claim.", "invalid_token") from exc
    except jwt.InvalidSignatureError as exc:
        raise AuthError("The token signature is not valid.", "invalid_token") from exc
    except jwt.PyJWTError as exc:
        raise AuthError(f"The token is not valid: {exc}.", "invalid_token") from exc
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise AuthError("The token's 'roles' claim must be a list of strings.", "invalid_token")
    grids = claims.get("grids", [])
    if not isinstance(grids, list) or not all(isinstance(g, str) for g in grids):
        raise AuthError("The token's 'grids' claim must be a list of strings.", "invalid_token")
    name = claims.get("name")
    return Principal(
        subject=str(claims["sub"]),
        # Unknown roles (from a newer issuer) are kept but grant nothing.
        roles=frozenset(roles),
        name=name if isinstance(name, str) else None,
        grid_codes=frozenset(grids),
        claims=claims,
    )


def security_settings(request: Request) -> SecuritySettings:
    """The app's SecuritySettings (set by `create_app(security=...)`), else the process'."""
    configured = getattr(request.app.state, "security", None)
    if isinstance(configured, SecuritySettings):
        return configured
    return get_settings().security


def _unauthorized(description: str, reason: str | None) -> Problem:
    challenge = f'Bearer realm="{REALM}"'
    if reason is not None:
        quoted = description.replace("\\", "").replace('"', "'")
        challenge += f', error="{reason}", error_description="{quoted}"'
    return Problem(
        401,
        "Unauthorized",
        description,
        type=UNAUTHORIZED,
        headers={"WWW-Authenticate": challenge},
    )


# Declared for the OpenAPI document ("Authorize" in /docs); the header is parsed below.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A JWT with onegrid roles (`onegrid token --role operator` in development).",
)


def principal_of(request: Request) -> Principal:
    """The caller, from `Authorization: Bearer <jwt>`; a 401 problem when absent or bad."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("This request needs a bearer token.", None)
    scheme, _sep, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("The Authorization header must be 'Bearer <token>'.", "invalid_request")
    try:
        principal = decode_token(token, settings=security_settings(request))
    except AuthError as exc:
        raise _unauthorized(exc.description, exc.reason) from exc
    request.state.principal = principal
    return principal


def check_roles(principal: Principal, roles: Sequence[str]) -> Principal:
    """The principal when it holds one of `roles` (or admin); a 403 problem otherwise."""
    if not principal.allowed(roles):
        held = ", ".join(sorted(principal.roles)) or "none"
        raise Problem(
            403,
            "Forbidden",
            f"This action needs one of the roles: {', '.join(roles)}; the token has: {held}.",
            type=FORBIDDEN,
            required_roles=list(roles),
        )
    return principal


async def current_principal(
    request: Request,
    _: Annotated[Any, Depends(_bearer_scheme)],
) -> Principal:
    """FastAPI dependency: the caller (`principal_of`)."""
    return principal_of(request)


def require_roles(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that returns the principal when it holds one of `roles` (or admin)."""
    if not roles:
        raise ValueError("require_roles needs at least one role")
    for role in roles:
        if role != ANY_UNIT:
            check_role(role)

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        return check_roles(principal, roles)

    return dependency
