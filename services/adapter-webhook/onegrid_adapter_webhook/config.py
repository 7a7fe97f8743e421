"""The per-unit YAML configuration of the generic webhook adapter, validated.

    units:
      housing:
        endpoint: http://127.0.0.1:8204/hooks/onegrid
        secret: dev-housing-secret          # signs our calls and checks its callbacks
        callback_base_url: http://127.0.0.1:8114
        fields: {ref: task_id, title: category_name, detail: description, case: case_no}
        response: {ref: ticket, status: status}
        callback: {ref: ticket, status: state, note: message, event_id: event_id, at: at}
        status_mapping: {received: accepted, rejected: refused, working: progressed,
                         done: completed, unresolvable: unfixed}

`fields` maps the department's field name to a task field (dotted for nested ones, e.g.
`location.lon`) or to a constant written `=value`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from onegrid_contracts.catalogue import validate_unit_code
from onegrid_contracts.tasks import DeptTaskAssigned

Outcome = Literal["accepted", "refused", "progressed", "completed", "unfixed", "ignore"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResponseFields(_Strict):
    ref: str = "ref"
    status: str = "status"
    message: str = "message"


class CallbackFields(_Strict):
    ref: str = "ref"
    status: str = "status"
    note: str = "note"
    event_id: str = "event_id"
    at: str = "at"


class UnitConfig(_Strict):
    endpoint: str = Field(pattern=r"^https?://\S+$")
    secret: SecretStr
    callback_base_url: str = Field(pattern=r"^https?://\S+$")
    timeout_s: float = Field(default=10.0, gt=0)
    fields: dict[str, str] = Field(min_length=1)
    response: ResponseFields = ResponseFields()
    callback: CallbackFields = CallbackFields()
    status_mapping: dict[str, Outcome] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, fields: dict[str, str]) -> dict[str, str]:
        known = set(DeptTaskAssigned.model_fields)
        for name, source in fields.items():
            if not source.startswith("=") and source.split(".", 1)[0] not in known:
                raise ValueError(f"field {name!r}: the task has no field {source!r}")
        return fields

    def callback_url(self, unit_code: str) -> str:
        return f"{self.callback_base_url.rstrip('/')}/v1/webhooks/{unit_code}"


class WebhookConfig(_Strict):
    units: dict[str, UnitConfig] = Field(min_length=1)

    @field_validator("units")
    @classmethod
    def _unit_codes(cls, units: dict[str, UnitConfig]) -> dict[str, UnitConfig]:
        for code in units:
            validate_unit_code(code)
        return units


class ConfigError(ValueError):
    """The YAML file is missing or invalid; the message names the file and the field."""


def load_config(path: str | Path) -> WebhookConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the webhook configuration: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return WebhookConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


def _lookup(task: dict[str, Any], path: str) -> Any:
    value: Any = task
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def map_fields(fields: dict[str, str], task: DeptTaskAssigned) -> dict[str, Any]:
    """The department's body: each field from the task (or a `=constant`)."""
    data = task.model_dump(mode="json")
    return {
        name: source[1:] if source.startswith("=") else _lookup(data, source)
        for name, source in fields.items()
    }
