"""The bench's pure parts: percentiles, stage figures, the reports it makes."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import shapely.geometry

from onegrid_common.bench.city import Category, City, Grid, ReportMaker, resident_id
from onegrid_common.bench.stats import percentile, stage
from onegrid_contracts.reports import ReportBody, id_number_is_valid


def test_percentile_is_the_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_a_stage_counts_cases_that_reached_it_over_the_window() -> None:
    s = stage("report → dispatched", 10, [0.1, 0.2, 0.3, 0.4], window_s=2.0)
    assert (s.started, s.reached, s.per_s) == (10, 4, 2.0)
    assert (s.p50_ms, s.p99_ms, s.max_ms) == (200.0, 400.0, 400.0)
    assert stage("x", 3, [], window_s=1.0).p50_ms is None


def _city() -> City:
    squares = [
        Grid(f"G{n}", shapely.geometry.box(111.0 + n * 0.01, 30.0, 111.0 + (n + 1) * 0.01, 30.01))
        for n in range(20)
    ]
    categories = (
        Category("environment.exposed_garbage", "暴露垃圾"),
        Category("street_order.noise", "噪音扰民"),
        Category("civil.subsistence_allowance", "低保申请", requires_id_number=True),
    )
    return City(tuple(squares), categories, frozenset(), frozenset())


def test_reports_are_valid_inside_their_grid_and_gather_at_hotspots() -> None:
    city = _city()
    maker = ReportMaker(city, seed=3)
    shapes = {g.code: g.shape for g in city.grids}
    reports = [maker.next() for _ in range(2000)]
    for r in reports:
        body = ReportBody.model_validate(r.body)
        assert body.location is not None
        assert shapes[r.grid_code].contains(
            shapely.geometry.Point(body.location.lon, body.location.lat)
        )
        if r.category_code == "civil.subsistence_allowance":
            assert body.reporter is not None
            assert body.reporter.id_number
    per_grid = Counter(r.grid_code for r in reports).most_common()
    assert per_grid[0][1] > 5 * per_grid[-1][1]  # a hotspot, not a uniform spread


def test_resident_ids_pass_the_gb_11643_check() -> None:
    rng = random.Random(5)
    assert all(id_number_is_valid(resident_id(rng)) for _ in range(500))


def test_a_stages_throughput_counts_what_reached_it_inside_the_window() -> None:
    # 4 cases of the window got there (some after it ended); 3 arrivals fell inside it
    s = stage("report → evaluated", 4, [1.0, 2.0, 30.0, 40.0], window_s=10.0, reached_in_window=3)
    assert (s.reached, s.per_s) == (4, 0.3)
