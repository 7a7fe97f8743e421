"""Dispatch's own settings (`ONEGRID_DISPATCH_*`), beside the shared ones."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from onegrid_common.service import Runtime


class DispatchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONEGRID_DISPATCH_", extra="ignore")

    # A case this close to another grid is marked near a boundary (0 turns it off).
    near_boundary_m: float = Field(default=50.0, ge=0.0)
    # Cases applied concurrently per consumer: a batch is split by case id into lanes.
    consumer_lanes: int = Field(default=4, ge=1, le=64)
    # The notification service's base URL: a case's timeline includes its notifications.
    notification_url: str | None = None
    # A JSON file of registry entities instead of the registry topics (development
    # without a registry service).
    registry_file: str | None = None


def settings_of(rt: Runtime) -> DispatchSettings:
    settings = rt.state["settings"]
    assert isinstance(settings, DispatchSettings)
    return settings
