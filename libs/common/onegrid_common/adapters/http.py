"""An HTTP helper for department clients: timeouts, trace headers, error classification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from onegrid_common.adapters.client import (
    CallContext,
    DepartmentRejectedError,
    DepartmentUnavailableError,
)
from onegrid_common.http_client import UNREACHABLE, HttpAnswer, LazySession, send

# 408/425/429 and every 5xx may succeed later; any other 4xx will not.
_RETRYABLE_4XX = frozenset({408, 425, 429})


class DepartmentHttp:
    """One department's base URL and connection pool."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = LazySession(timeout_s)

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
    ) -> HttpAnswer:
        """The answer to a 2xx call; else DepartmentUnavailableError or DepartmentRejectedError.

        Error messages name the status and path only: request bodies may carry personal
        data and never go into errors or logs."""
        all_headers = {**ctx.headers(), **(headers or {})}
        if json is not None:
            content = orjson.dumps(json)
            all_headers.setdefault("Content-Type", "application/json")
        try:
            answer = await send(
                self._session.get(), method, self.base_url + path,
                content=content, params=params, headers=all_headers,
            )  # fmt: skip
        except TimeoutError as exc:
            raise DepartmentUnavailableError(
                f"timeout calling {method} {path}", reason="timeout"
            ) from exc
        except UNREACHABLE as exc:
            raise DepartmentUnavailableError(
                f"cannot reach department at {self.base_url}: {type(exc).__name__}",
                reason="connect",
            ) from exc
        status = answer.status
        if status >= 500 or status in _RETRYABLE_4XX:
            raise DepartmentUnavailableError(
                f"HTTP {status} from department system ({method} {path})", reason=f"http_{status}"
            )
        if status >= 400:
            raise DepartmentRejectedError(f"HTTP {status} from department system ({method} {path})")
        return answer

    async def aclose(self) -> None:
        await self._session.close()
