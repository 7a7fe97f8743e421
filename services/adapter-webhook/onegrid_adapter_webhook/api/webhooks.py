"""POST /v1/webhooks/{unit}: signed status callbacks of webhook departments."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from onegrid_adapter_webhook.config import UnitConfig
from onegrid_common.adapters import AdapterEngine, DeptUpdate, request_engine
from onegrid_common.problems import Problem
from onegrid_common.signing import SIGNATURE_HEADER, SignatureError, verify

log = logging.getLogger("onegrid.adapter_webhook")
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def callback_update(config: UnitConfig, body: Any) -> DeptUpdate | None:
    """The update a callback body means (None when its status maps to 'ignore'/accepted)."""
    if not isinstance(body, dict):
        raise ValueError("a callback body is a JSON object")
    names = config.callback
    status = str(body.get(names.status))
    outcome = config.status_mapping.get(status)
    if outcome is None:
        raise ValueError(f"status {status!r} is not in this unit's status_mapping")
    ref = body.get(names.ref)
    if not ref:
        raise ValueError(f"the callback has no {names.ref!r}")
    raw_at = body.get(names.at)
    at = datetime.fromisoformat(str(raw_at)) if raw_at else datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError(f"{names.at!r} needs a UTC offset")
    note = body.get(names.note)
    update_id = str(body.get(names.event_id) or f"{ref}:{status}")
    common: dict[str, Any] = {
        "update_id": update_id,
        "at": at,
        "external_ref": str(ref),
        "external_status": status[:64],
    }
    if outcome == "progressed":
        return DeptUpdate(kind="progressed", note=note or status, **common)
    if outcome in ("completed", "unfixed"):
        return DeptUpdate(
            kind="completed", result=note or status, fixed=outcome == "completed", **common
        )
    if outcome == "refused":
        return DeptUpdate(kind="refused", note=note or status, **common)
    return None


@router.post("/{unit_code}", status_code=202)
async def webhook_callback(
    unit_code: str,
    request: Request,
    engine: Annotated[AdapterEngine, Depends(request_engine)],
) -> dict[str, Any]:
    configs: dict[str, UnitConfig] = request.app.state.runtime.state.get("webhook_units", {})
    config = configs.get(unit_code)
    if config is None:
        raise Problem(404, "Unknown unit", f"this adapter does not serve unit {unit_code!r}")
    raw = await request.body()
    try:
        verify(config.secret.get_secret_value(), request.headers.get(SIGNATURE_HEADER), raw)
    except SignatureError as exc:
        log.warning(
            "refused a callback for unit %s: signature %s",
            unit_code,
            exc.reason,
            extra={"unit": unit_code, "signature_failure": exc.reason},
        )
        raise Problem(401, "Bad signature", f"callback signature {exc.reason}: {exc}") from exc
    try:
        update = callback_update(config, json.loads(raw))
    except ValueError as exc:
        raise Problem(422, "Bad callback", str(exc)) from exc
    if update is None:
        return {"recorded": 0}
    result = await engine.record_updates(unit_code, [update])
    if result.not_ready:
        raise Problem(409, "Not ready", "task acceptance not recorded yet; retry")
    if result.unknown:
        raise Problem(404, "Unknown reference", f"no task has reference {update.external_ref}")
    return {"recorded": result.recorded, "duplicates": result.duplicates}
