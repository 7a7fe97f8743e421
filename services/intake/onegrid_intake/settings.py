"""Intake's own settings (`ONEGRID_INTAKE_*`), beside the shared ones."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IntakeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONEGRID_INTAKE_", extra="ignore")

    # Fixed-window rate limits in Redis; 0 turns a limit off.
    rate_window_s: int = Field(default=60, ge=1, le=3600)
    reporter_rate_limit: int = Field(default=30, ge=0, description="reports per caller per window")
    channel_rate_limit: int = Field(
        default=120_000, ge=0, description="reports per channel per window"
    )
    min_category_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    max_body_bytes: int = Field(default=128 * 1024, ge=1024)
    # Only cases reported this recently are put back into Redis on a rebuild (longest window).
    geo_rebuild_horizon_hours: int = Field(default=24 * 30, ge=1)
    # Reports over HTTP are written in batches (group commit): at most this many in one
    # transaction, by this many writers at once.
    batch_max: int = Field(default=64, ge=1, le=1000)
    batch_writers: int = Field(default=1, ge=1, le=16)
