"""Cursor pagination (DESIGN §7): lists answer `{"items": [...], "next_cursor": "..."}`.

    @router.get("/v1/cases")
    async def cases(page: Annotated[PageParams, Depends(page_params)]) -> Page[CaseOut]:
        rows = await repo.list_cases(after=page.after, limit=page.limit + 1)
        return Page.from_rows(rows, page, lambda c: {"created_at": c.created_at, "id": c.id})

A cursor is the base64url JSON of the last item's sort key, with a short HMAC so that an
edited cursor is a clear 400 instead of a strange page. Values come back as JSON types
(a datetime or UUID as its string).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Generic, Self, TypeVar

import orjson
from fastapi import Query, Request
from pydantic import BaseModel

from onegrid_common.auth import security_settings
from onegrid_common.problems import PROBLEM_TYPE_PREFIX, Problem
from onegrid_common.settings import SecuritySettings, get_settings

T = TypeVar("T")

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500
MAX_CURSOR_CHARS: Final = 2048
INVALID_CURSOR: Final = PROBLEM_TYPE_PREFIX + "invalid-cursor"
_MAC_BYTES: Final = 12


def cursor_key(settings: SecuritySettings) -> bytes:
    """A cursor-signing key derived from the JWT secret (shared by every replica)."""
    return hashlib.sha256(
        b"onegrid-cursor:" + settings.jwt_secret.get_secret_value().encode()
    ).digest()


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_cursor(position: Mapping[str, Any], *, key: bytes | None = None) -> str:
    """An opaque cursor for `position` (the sort key of the last item returned)."""
    key = key if key is not None else cursor_key(get_settings().security)
    payload = orjson.dumps(dict(position), option=orjson.OPT_NAIVE_UTC | orjson.OPT_SORT_KEYS)
    return f"{_b64e(payload)}.{_b64e(_mac(key, payload))}"


def _invalid(detail: str) -> Problem:
    return Problem(400, "Invalid cursor", detail, type=INVALID_CURSOR, field="cursor")


def decode_cursor(cursor: str, *, key: bytes | None = None) -> dict[str, Any]:
    """The position inside a cursor from `encode_cursor`; a 400 problem when altered."""
    key = key if key is not None else cursor_key(get_settings().security)
    if len(cursor) > MAX_CURSOR_CHARS:
        raise _invalid("The cursor is too long; pass next_cursor from a previous page as is.")
    body, sep, mac = cursor.partition(".")
    try:
        payload, given = _b64d(body), _b64d(mac)
    except (binascii.Error, ValueError):
        payload, given = b"", b""
    if not sep or not payload or not hmac.compare_digest(given, _mac(key, payload)):
        raise _invalid("The cursor was altered or is not from this API; pass next_cursor as is.")
    position = orjson.loads(payload)
    if not isinstance(position, dict):
        raise _invalid("The cursor does not hold a position.")
    return position


@dataclass(frozen=True)
class PageParams:
    limit: int
    # The decoded cursor: the sort key to continue after, None for the first page.
    after: dict[str, Any] | None
    cursor: str | None = None


async def page_params(
    request: Request,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (1..{MAX_LIMIT}).")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_CHARS, description="`next_cursor` of the previous page."),
    ] = None,
) -> PageParams:
    """FastAPI dependency: `limit` (default 50) and the decoded `cursor`."""
    if cursor is None or cursor == "":
        return PageParams(limit=limit, after=None)
    key = cursor_key(security_settings(request))
    return PageParams(limit=limit, after=decode_cursor(cursor, key=key), cursor=cursor)


class Page(BaseModel, Generic[T]):
    """One page of a list; `next_cursor` is null on the last page."""

    items: list[T]
    next_cursor: str | None = None

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[T],
        params: PageParams,
        position: Callable[[T], Mapping[str, Any]],
        *,
        key: bytes | None = None,
    ) -> Self:
        """A page from up to `limit + 1` rows: the extra row only says there is more."""
        items = list(rows[: params.limit])
        more = len(rows) > params.limit
        next_cursor = encode_cursor(position(items[-1]), key=key) if more and items else None
        return cls(items=items, next_cursor=next_cursor)
