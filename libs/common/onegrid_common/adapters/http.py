"""An HTTP helper for department clients: timeouts, trace headers, error classification."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from onegrid_common.adapters.client import (
    CallContext,
    DepartmentRejectedError,
    DepartmentUnavailableError,
)

# 408/425/429 and every 5xx may succeed later; any other 4xx will not.
_RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True)
class DepartmentAnswer:
    """A department system's 2xx answer."""

    status: int
    content: bytes

    def json(self) -> Any:
        return orjson.loads(self.content)


class DepartmentHttp:
    """One department's base URL and connection pool (aiohttp: about a tenth of httpx's
    CPU per request, and an adapter makes one or more per task)."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the event loop it was made in.
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        ctx: CallContext,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> DepartmentAnswer:
        """The answer to a 2xx call; else DepartmentUnavailableError or DepartmentRejectedError.

        Error messages name the status and path only: request bodies may carry personal
        data and never go into errors or logs."""
        all_headers = {**ctx.headers(), **(headers or {})}
        if json is not None:
            content = orjson.dumps(json)
            all_headers.setdefault("Content-Type", "application/json")
        try:
            async with self._client().request(
                method, self.base_url + path, data=content, params=params, headers=all_headers
            ) as response:
                status, body = response.status, await response.read()
        except TimeoutError as exc:
            raise DepartmentUnavailableError(
                f"timeout calling {method} {path}", reason="timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            raise DepartmentUnavailableError(
                f"cannot reach department at {self.base_url}: {type(exc).__name__}",
                reason="connect",
            ) from exc
        if status >= 500 or status in _RETRYABLE_4XX:
            raise DepartmentUnavailableError(
                f"HTTP {status} from department system ({method} {path})", reason=f"http_{status}"
            )
        if status >= 400:
            raise DepartmentRejectedError(f"HTTP {status} from department system ({method} {path})")
        return DepartmentAnswer(status, body)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
