"""An HTTP helper for department clients: timeouts, trace headers, error classification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from onegrid_common.adapters.client import (
    CallContext,
    DepartmentRejectedError,
    DepartmentUnavailableError,
)

# 408/425/429 and every 5xx may succeed later; any other 4xx will not.
_RETRYABLE_4XX = frozenset({408, 425, 429})


class DepartmentHttp:
    """One department's base URL and connection pool."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout_s, transport=transport
        )

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
    ) -> httpx.Response:
        """The response of a 2xx call; else DepartmentUnavailableError or DepartmentRejectedError.

        Error messages name the status and path only: request bodies may carry personal
        data and never go into errors or logs."""
        all_headers = {**ctx.headers(), **(headers or {})}
        try:
            response = await self._client.request(
                method, path, json=json, content=content, params=params, headers=all_headers
            )
        except httpx.TimeoutException as exc:
            raise DepartmentUnavailableError(
                f"timeout calling {method} {path}", reason="timeout"
            ) from exc
        except httpx.TransportError as exc:
            raise DepartmentUnavailableError(
                f"cannot reach department at {self.base_url}: {type(exc).__name__}",
                reason="connect",
            ) from exc
        status = response.status_code
        if status >= 500 or status in _RETRYABLE_4XX:
            raise DepartmentUnavailableError(
                f"HTTP {status} from department system ({method} {path})", reason=f"http_{status}"
            )
        if status >= 400:
            raise DepartmentRejectedError(f"HTTP {status} from department system ({method} {path})")
        return response

    async def aclose(self) -> None:
        await self._client.aclose()
