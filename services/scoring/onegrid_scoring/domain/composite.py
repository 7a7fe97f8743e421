"""The weighted composite score and the ranking: configuration, not code.

composite = 100 × Σ wᵢ·vᵢ′ / Σ wᵢ over the weighted measures that are not null, where
vᵢ′ = vᵢ for a measure where more is better and 1 − vᵢ where less is better. Every weighted
measure is a rate in [0, 1]. No weighted measure known → no composite, and no rank.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from onegrid_contracts.scores import SubjectKind
from onegrid_scoring.domain.measures import Measures

# Rates where a smaller value is better.
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"rework_rate", "refusal_rate", "mis_dispatch_rate", "reopen_rate", "repeat_case_rate"}
)

DEFAULT_WEIGHTS: dict[SubjectKind, dict[str, Decimal]] = {
    SubjectKind.UNIT: {
        "on_time_response_rate": Decimal(15),
        "on_time_resolution_rate": Decimal(30),
        "closure_rate": Decimal(10),
        "rework_rate": Decimal(10),
        "refusal_rate": Decimal(5),
        "mis_dispatch_rate": Decimal(0),
        "reopen_rate": Decimal(5),
        "satisfaction_rate": Decimal(25),
    },
    SubjectKind.WORKER: {
        "valid_report_rate": Decimal(25),
        "on_time_verification_rate": Decimal(20),
        "patrol_rate": Decimal(30),
        "rating_score": Decimal(25),
    },
    SubjectKind.GRID: {
        "in_grid_resolution_share": Decimal(60),
        "repeat_case_rate": Decimal(40),
    },
}


class WeightsError(ValueError):
    """Weights that name an unknown measure, a non-rate, or are negative or all zero."""


RATE_MEASURES: dict[SubjectKind, frozenset[str]] = {
    SubjectKind.UNIT: frozenset(
        {
            "on_time_response_rate",
            "on_time_resolution_rate",
            "closure_rate",
            "rework_rate",
            "refusal_rate",
            "mis_dispatch_rate",
            "reopen_rate",
            "satisfaction_rate",
        }
    ),
    SubjectKind.WORKER: frozenset(
        {"valid_report_rate", "on_time_verification_rate", "patrol_rate", "rating_score"}
    ),
    SubjectKind.GRID: frozenset({"in_grid_resolution_share", "repeat_case_rate"}),
}


def check_weights(kind: SubjectKind, weights: Mapping[str, Decimal]) -> dict[str, Decimal]:
    unknown = sorted(set(weights) - RATE_MEASURES[kind])
    if unknown:
        allowed = ", ".join(sorted(RATE_MEASURES[kind]))
        raise WeightsError(
            f"{kind.value} weights name {', '.join(unknown)}; weights apply to: {allowed}"
        )
    if any(w < 0 for w in weights.values()):
        raise WeightsError(f"{kind.value} weights must not be negative")
    if not any(w > 0 for w in weights.values()):
        raise WeightsError(f"{kind.value} weights must have at least one positive weight")
    return dict(weights)


def composite(measures: Measures, weights: Mapping[str, Decimal]) -> Decimal | None:
    total = Decimal(0)
    weight_sum = Decimal(0)
    for name, weight in weights.items():
        value = measures.get(name)
        if value is None or weight == 0:
            continue
        total += weight * ((1 - value) if name in LOWER_IS_BETTER else value)
        weight_sum += weight
    if weight_sum == 0:
        return None
    return (100 * total / weight_sum).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Ranked:
    code: str
    composite: Decimal | None
    rank: int | None
    rank_of: int | None


def rank(composites: Mapping[str, Decimal | None]) -> dict[str, Ranked]:
    """Rank 1 is the highest composite; equal composites share a rank (1, 2, 2, 4) and are
    listed by code. Subjects without a composite are not ranked."""
    scored = sorted(
        ((c, v) for c, v in composites.items() if v is not None), key=lambda cv: (-cv[1], cv[0])
    )
    result = {c: Ranked(c, None, None, None) for c, v in composites.items() if v is None}
    previous: Decimal | None = None
    position = 0
    for index, (code, value) in enumerate(scored, start=1):
        if value != previous:
            position, previous = index, value
        result[code] = Ranked(code, value, position, len(scored))
    return result
