"""Scores: scoring publishes a subject's measures for a period on the compacted
`scores.updates.v1`, keyed `<subject_kind>:<code>:<period>` so every period's latest
snapshot is kept. Measures are decimals (JSON strings keep them exact); formulas are in
docs/scoring.md.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from onegrid_contracts.base import Payload
from onegrid_contracts.primitives import Timestamp

PERIOD_PATTERN = r"^[0-9]{4}-(Q[1-4]|0[1-9]|1[0-2])$"


class SubjectKind(StrEnum):
    UNIT = "unit"  # quarterly
    WORKER = "worker"  # monthly
    GRID = "grid"


MeasureName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Measure = Annotated[Decimal, Field(ge=-1_000_000_000, le=1_000_000_000, decimal_places=6)]


class ScoreUpdated(Payload):
    """A subject's score for a period changed (or its period was frozen)."""

    ce_type = "onegrid.score.updated.v1"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "subject_kind": "unit",
                    "code": "urban",
                    "period": "2026-Q4",
                    "measures": {
                        "on_time_response_rate": "0.9712",
                        "on_time_resolution_rate": "0.9365",
                        "closure_rate": "0.9810",
                        "rework_rate": "0.0420",
                        "refusal_rate": "0.0150",
                        "satisfaction_rate": "0.9530",
                        "avg_handling_hours": "18.5",
                        "supervised_cases": "3",
                    },
                    "composite": "92.41",
                    "rank": 2,
                    "rank_of": 9,
                    "final": False,
                    "computed_at": "2026-11-24T02:00:00+08:00",
                },
                {
                    "subject_kind": "worker",
                    "code": "S0000123",
                    "period": "2026-11",
                    "measures": {
                        "reports_filed": "46",
                        "valid_report_rate": "0.9565",
                        "self_handled": "12",
                        "patrol_checkins": "52",
                        "average_rating": "4.8",
                    },
                    "composite": "95.10",
                    "rank": 7,
                    "rank_of": 1110,
                    "final": True,
                    "computed_at": "2026-12-01T00:05:00+08:00",
                },
            ]
        }
    )

    subject_kind: SubjectKind
    code: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
        description="Unit code, staff code or grid code.",
    )
    period: str = Field(pattern=PERIOD_PATTERN, description="'2026-Q4' (quarter) or '2026-11'.")
    measures: dict[MeasureName, Measure] = Field(max_length=64)
    composite: Measure | None = Field(default=None, description="Weighted composite score.")
    rank: int | None = Field(default=None, ge=1, description="1 is best, among rank_of.")
    rank_of: int | None = Field(default=None, ge=1)
    final: bool = Field(default=False, description="The period has ended: frozen snapshot.")
    computed_at: Timestamp

    @model_validator(mode="after")
    def _rank_within(self) -> ScoreUpdated:
        if (self.rank is None) != (self.rank_of is None):
            raise ValueError("give rank and rank_of together")
        if self.rank is not None and self.rank_of is not None and self.rank > self.rank_of:
            raise ValueError("rank is greater than rank_of")
        return self

    @property
    def key(self) -> str:
        """The Kafka key: one compacted record per subject and period."""
        return f"{self.subject_kind.value}:{self.code}:{self.period}"
