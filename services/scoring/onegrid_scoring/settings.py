"""Scoring's own settings (`ONEGRID_SCORING_*`), beside the shared ones."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from onegrid_contracts.scores import SubjectKind
from onegrid_scoring.domain.composite import DEFAULT_WEIGHTS, check_weights
from onegrid_scoring.domain.measures import Rules


class ScoringSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONEGRID_SCORING_", extra="ignore")

    tick_s: float = Field(default=5.0, gt=0, le=3600, description="scorer loop interval")
    refresh_s: float = Field(
        default=60.0, gt=0, description="recompute running periods at least this often"
    )
    pass_spacing: float = Field(
        default=10.0,
        ge=0,
        description="a period's next pass waits this many times its last pass's duration "
        "(bounds scoring's CPU as a period's cases grow)",
    )
    freeze_grace_s: float = Field(
        default=3600.0, ge=0, description="a period freezes this long after it ends"
    )
    households_sync_s: float = Field(default=300.0, gt=0)
    # e.g. ONEGRID_SCORING_WEIGHTS='{"unit": {"on_time_resolution_rate": 50, ...}}'
    weights: dict[SubjectKind, dict[str, Decimal]] = Field(default_factory=dict)
    service_majors: list[str] = Field(default_factory=lambda: ["livelihood"])
    verification_limit_hours: float = Field(default=24.0, gt=0)
    patrol_min_gap_minutes: float = Field(default=120.0, ge=0)
    patrols_per_day: int = Field(default=2, ge=1, le=24)
    hotspot_radius_m: float = Field(default=50.0, gt=0, le=5000)
    hotspot_window_days: int = Field(default=30, ge=1, le=365)

    def rules(self) -> Rules:
        return Rules(
            service_majors=frozenset(self.service_majors),
            verification_limit=timedelta(hours=self.verification_limit_hours),
            patrol_min_gap=timedelta(minutes=self.patrol_min_gap_minutes),
            patrols_per_day=self.patrols_per_day,
            hotspot_radius_m=self.hotspot_radius_m,
            hotspot_window=timedelta(days=self.hotspot_window_days),
        )

    def all_weights(self) -> dict[SubjectKind, dict[str, Decimal]]:
        """The default weights, each kind replaced as a whole where configured (checked)."""
        return {
            kind: check_weights(kind, self.weights.get(kind, DEFAULT_WEIGHTS[kind]))
            for kind in SubjectKind
        }
