"""POST /v1/callbacks/{unit}: the police system's signed status callbacks."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from prometheus_client import Counter

from onegrid_adapter_police.domain.translate import callback_update
from onegrid_common import metrics
from onegrid_common.adapters import AdapterEngine, request_engine
from onegrid_common.problems import Problem
from onegrid_common.signing import SIGNATURE_HEADER, SignatureError, verify

log = logging.getLogger("onegrid.adapter_police")

CALLBACKS_REFUSED = Counter(
    "onegrid_adapter_callbacks_refused",
    "Department callbacks refused, by unit and reason (bad signature, bad body).",
    ["service", "unit", "reason"],
    registry=metrics.REGISTRY,
)

router = APIRouter(prefix="/v1/callbacks", tags=["callbacks"])


@router.post("/{unit_code}", status_code=202)
async def status_callback(
    unit_code: str,
    request: Request,
    engine: Annotated[AdapterEngine, Depends(request_engine)],
) -> dict[str, Any]:
    secrets = request.app.state.runtime.state.get("police_secrets", {})
    if unit_code not in engine.workers or unit_code not in secrets:
        raise Problem(404, "Unknown unit", f"this adapter does not serve unit {unit_code!r}")
    body = await request.body()
    try:
        verify(secrets[unit_code], request.headers.get(SIGNATURE_HEADER), body)
    except SignatureError as exc:
        CALLBACKS_REFUSED.labels("adapter-police", unit_code, exc.reason).inc()
        log.warning(
            "refused a status callback for unit %s: signature %s (%s)",
            unit_code,
            exc.reason,
            exc,
            extra={
                "unit": unit_code,
                "signature_failure": exc.reason,
                "client": request.client.host if request.client else None,
            },
        )
        raise Problem(401, "Bad signature", f"callback signature {exc.reason}: {exc}") from exc
    try:
        update = callback_update(json.loads(body))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        CALLBACKS_REFUSED.labels("adapter-police", unit_code, "bad_body").inc()
        raise Problem(422, "Bad callback", str(exc)) from exc
    result = await engine.record_updates(unit_code, [update])
    if result.not_ready:
        raise Problem(409, "Not ready", "incident acceptance not recorded yet; retry")
    if result.unknown:
        raise Problem(404, "Unknown incident", f"no task has incident number {update.external_ref}")
    return {"recorded": result.recorded, "duplicates": result.duplicates, "stale": result.stale}
