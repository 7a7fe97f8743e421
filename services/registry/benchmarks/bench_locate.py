"""Locate latency in process: the demo city (1,110 grids) and a 10,000-grid variant.

Run: .venv/bin/python services/registry/benchmarks/bench_locate.py [--points N] [--seed S]
Prints the index build time and p50/p99/max latency of GridIndex.locate over random points
in and around the city (10% outside every grid), without and with the near-boundary query.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time

from onegrid_common.registry_view.locate import GridIndex
from onegrid_registry.seed.demo_city import CITY_BOUNDS, build_grid_hierarchy


def _points(count: int, rng: random.Random) -> list[tuple[float, float]]:
    west, south, east, north = CITY_BOUNDS
    margin_lon, margin_lat = (east - west) * 0.05, (north - south) * 0.05
    return [
        (
            rng.uniform(west - margin_lon, east + margin_lon),
            rng.uniform(south - margin_lat, north + margin_lat),
        )
        for _ in range(count)
    ]


def _p99(timings: list[float]) -> float:
    ordered = sorted(timings)
    return ordered[max(0, int(len(ordered) * 0.99) - 1)]


def _measure(index: GridIndex, points: list[tuple[float, float]], near_m: float) -> str:
    """Latencies in µs. Also the median of the p99s of 10 rounds: on a shared machine one
    burst of another process's work should not pass for the index's tail latency."""
    timings: list[float] = []
    found = 0
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for lon, lat in points:
            start = clock()
            location = index.locate(lon, lat, near_m=near_m)
            timings.append((clock() - start) / 1000)
            found += location is not None
    finally:
        gc.enable()
    rounds = 10
    size = len(timings) // rounds
    round_p99 = statistics.median(_p99(timings[i * size : (i + 1) * size]) for i in range(rounds))
    return (
        f"p50 {statistics.median(timings):6.1f}  p99 {_p99(timings):7.1f}  "
        f"median round p99 {round_p99:6.1f}  max {max(timings):8.1f} µs  "
        f"({found}/{len(points)} inside a grid)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    points = _points(args.points, rng)
    for grid_count in (1_110, 10_000):
        started = time.perf_counter()
        grids = build_grid_hierarchy(args.seed, grid_count=grid_count)
        generated = time.perf_counter() - started
        started = time.perf_counter()
        index = GridIndex(grids)
        built = time.perf_counter() - started
        print(
            f"{len(index):>6} grids: generated in {generated:.2f} s, "
            f"index built in {built * 1000:.0f} ms"
        )
        _measure(index, points[:1000], 0.0)  # warm up
        print(f"  locate                 {_measure(index, points, 0.0)}")
        print(f"  locate + near 50 m     {_measure(index, points, 50.0)}")


if __name__ == "__main__":
    main()
