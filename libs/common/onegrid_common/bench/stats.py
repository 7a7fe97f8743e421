"""Percentiles and throughput of a set of per-case durations (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of `values` (need not be sorted); q in [0, 1]."""
    if not values:
        raise ValueError("no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q={q} is not in [0, 1]")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n q), at least 1
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class Stage:
    """One stage of the lifecycle (e.g. report → dispatched) over the measured window."""

    name: str
    started: int  # cases reported in the window
    reached: int  # of those, cases that reached the stage before the run ended
    per_s: float  # cases (any) reaching the stage inside the window, per second
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    def to_json(self) -> dict[str, float | int | str | None]:
        return dict(self.__dict__)


def stage(
    name: str,
    started: int,
    durations_s: Sequence[float],
    window_s: float,
    reached_in_window: int | None = None,
) -> Stage:
    """Latencies of the cases reported in the window; throughput from the cases that
    reached the stage inside the window (default: all that reached it)."""
    if window_s <= 0:
        raise ValueError("the window must be longer than zero")
    ms = [d * 1000 for d in durations_s]

    def p(q: float) -> float | None:
        return round(percentile(ms, q), 1) if ms else None

    return Stage(
        name=name,
        started=started,
        reached=len(ms),
        per_s=round((len(ms) if reached_in_window is None else reached_in_window) / window_s, 1),
        p50_ms=p(0.50),
        p95_ms=p(0.95),
        p99_ms=p(0.99),
        max_ms=round(max(ms), 1) if ms else None,
    )
