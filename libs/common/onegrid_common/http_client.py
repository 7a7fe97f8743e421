"""Outbound HTTP on hot paths (gateways, departments, simulators' callbacks, the bench).

aiohttp, not httpx: on this 2-core machine httpx took ~2 ms of CPU per request and aiohttp
~0.2 ms (docs/performance.md, change 26). One place for what every caller needs: the
errors that mean "no answer", an answer read whole, and a session made on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

# No answer at all: refused, reset, timed out (aiohttp raises TimeoutError for timeouts).
UNREACHABLE: tuple[type[Exception], ...] = (aiohttp.ClientError, TimeoutError)


@dataclass(frozen=True)
class HttpAnswer:
    """A response read whole: its connection is back in the pool."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return orjson.loads(self.content)


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> HttpAnswer:
    """One request; raises one of UNREACHABLE when nothing answered."""
    async with session.request(
        method, url, data=content, headers=headers, params=params
    ) as response:
        return HttpAnswer(response.status, dict(response.headers), await response.read())


class LazySession:
    """An aiohttp session made on first use: a session belongs to the event loop it was
    made in, and its owners are built before theirs runs."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
