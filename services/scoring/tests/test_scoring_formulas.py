"""Every formula on its own, edge cases first: zero denominators are null, never 0."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from onegrid_contracts.cases import Tier
from onegrid_contracts.scores import SubjectKind
from onegrid_scoring.domain.composite import WeightsError, check_weights, composite, rank
from onegrid_scoring.domain.facts import CaseFacts, fold
from onegrid_scoring.domain.measures import (
    Rules,
    distance_m,
    grid_measures,
    mean,
    p90,
    patrol_rate,
    patrols,
    ratio,
    repeats,
    unit_measures,
    worker_measures,
)
from onegrid_scoring.domain.periods import (
    PeriodError,
    local_days,
    parse_period,
    period_for,
    period_label,
    periods_touching,
)
from onegrid_scoring.testing import G1, GARBAGE, L1, S1, URBAN, ScriptedCase, nov

TZ = ZoneInfo("Asia/Shanghai")
D = Decimal


def test_ratio_of_nothing_is_null_not_zero() -> None:
    assert ratio(0, 0) is None
    assert ratio(0, 3) == D(0)
    assert ratio(2, 3) == D("0.666667")


def test_mean_and_p90_of_nothing_are_null() -> None:
    assert mean([]) is None
    assert p90([]) is None


def test_p90_is_the_nearest_rank() -> None:
    assert p90([5.0]) == D(5)
    assert p90([float(v) for v in range(1, 11)]) == D(9)  # ⌈0.9·10⌉ = 9th
    assert p90([float(v) for v in range(1, 12)]) == D(10)  # ⌈0.9·11⌉ = 10th


def test_composite_leaves_out_null_measures_and_turns_lower_is_better_around() -> None:
    weights = {"on_time_resolution_rate": D(3), "rework_rate": D(1)}
    assert composite({"on_time_resolution_rate": D("0.8"), "rework_rate": D("0.2")}, weights) == D(
        "80.00"
    )
    assert composite({"on_time_resolution_rate": None, "rework_rate": D("0.25")}, weights) == D(
        "75.00"
    )
    assert composite({"on_time_resolution_rate": None, "rework_rate": None}, weights) is None


def test_equal_composites_share_a_rank_and_unscored_subjects_are_not_ranked() -> None:
    ranked = rank({"b": D("90"), "a": D("90"), "c": D("80"), "d": None})
    assert [(c, ranked[c].rank, ranked[c].rank_of) for c in "abcd"] == [
        ("a", 1, 3),
        ("b", 1, 3),
        ("c", 3, 3),
        ("d", None, None),
    ]


def test_weights_must_name_rates_of_the_kind_and_not_all_be_zero() -> None:
    with pytest.raises(WeightsError, match="supervised_cases"):
        check_weights(SubjectKind.UNIT, {"supervised_cases": D(1)})
    with pytest.raises(WeightsError, match="positive"):
        check_weights(SubjectKind.GRID, {"repeat_case_rate": D(0)})
    with pytest.raises(WeightsError, match="negative"):
        check_weights(SubjectKind.WORKER, {"patrol_rate": D(-1)})


def test_periods_are_local_months_and_quarters() -> None:
    q4 = parse_period("2026-Q4", TZ)
    assert (q4.start.isoformat(), q4.end.isoformat()) == (
        "2026-10-01T00:00:00+08:00",
        "2027-01-01T00:00:00+08:00",
    )
    # 31 December 16:30 UTC is already 1 January in Beijing.
    new_year = datetime(2026, 12, 31, 16, 30, tzinfo=ZoneInfo("UTC"))
    assert period_label(SubjectKind.WORKER, new_year, TZ) == "2027-01"
    assert period_label(SubjectKind.UNIT, new_year, TZ) == "2027-Q1"
    assert periods_touching(SubjectKind.WORKER, nov(30, 9), nov(33, 9), TZ) == [
        "2026-11",
        "2026-12",
    ]


@pytest.mark.parametrize("label", ["2026-13", "2026-Q5", "26-11", "2026-11-01", ""])
def test_a_bad_period_label_is_refused(label: str) -> None:
    with pytest.raises(PeriodError):
        parse_period(label, TZ)


def test_units_are_scored_by_quarter_and_workers_by_month() -> None:
    with pytest.raises(PeriodError, match="quarter"):
        period_for(SubjectKind.UNIT, "2026-11", TZ)
    with pytest.raises(PeriodError, match="month"):
        period_for(SubjectKind.WORKER, "2026-Q4", TZ)


def test_local_days_count_days_begun() -> None:
    november = parse_period("2026-11", TZ)
    assert local_days(november.start, november.start, TZ) == 0
    assert local_days(november.start, nov(1, 0, 1), TZ) == 1
    assert local_days(november.start, november.end, TZ) == 30


def test_check_ins_closer_than_the_gap_are_one_patrol() -> None:
    taps = [nov(2, 8), nov(2, 8, 5), nov(2, 9, 59), nov(2, 10, 0)]
    assert patrols(taps, timedelta(hours=2)) == [nov(2, 8), nov(2, 10)]


def test_patrol_rate_caps_each_day_at_two_patrols() -> None:
    november = parse_period("2026-11", TZ)
    taps = [nov(1, 6), nov(1, 9), nov(1, 12), nov(2, 9)]  # three patrols on the 1st count as two
    assert patrol_rate(taps, november, nov(2, 23), TZ, Rules()) == (4, 1, D("0.75"))
    assert patrol_rate([], november, november.start, TZ, Rules()) == (0, 0, None)


def test_distance_of_a_thousandth_of_a_degree_of_latitude_is_about_111_m() -> None:
    assert distance_m((111.0, 30.0), (111.0, 30.001)) == pytest.approx(111.2, abs=0.5)


def _case(
    name: str, at: datetime, location: tuple[float, float], category: str = GARBAGE
) -> CaseFacts:
    case = ScriptedCase(name, grid=G1, category=category, location=location, worker=S1)
    return fold(case.case_id, case.reported(at).registered(at).events)


def test_repeats_need_the_same_category_within_the_radius_and_window() -> None:
    first = _case("r1", nov(1, 9), L1)
    same = _case("r2", nov(20, 9), (L1[0] + 0.0003, L1[1]))  # ~29 m, 19 days later
    far = _case("r3", nov(21, 9), (L1[0] + 0.001, L1[1]))  # ~96 m
    other = _case("r4", nov(22, 9), L1, category="street_order.occupied_road_business")
    late = _case("r5", nov(1, 9) + timedelta(days=61), L1)  # 41 days after r2
    found = repeats([first, same, far, other, late], Rules())
    assert found == {same.case_id}


def test_a_grid_without_households_has_no_rate_per_household() -> None:
    case = _case("h1", nov(3, 9), L1)
    grids = grid_measures([case], {G1: 0}, parse_period("2026-11", TZ), nov(30, 9), Rules())
    assert grids[G1]["cases"] == D(1)
    assert grids[G1]["households"] is None
    assert grids[G1]["cases_per_1000_households"] is None
    assert grids[G1]["in_grid_resolution_share"] is None  # nothing closed: null


def test_a_deadline_still_running_is_not_counted_yet() -> None:
    case = ScriptedCase("p1", grid=G1, category=GARBAGE, location=L1)
    case.reported(nov(3, 9)).registered(nov(3, 9)).dispatched(
        nov(3, 9, 1), URBAN, Tier.DEPARTMENT, new_round=True
    )
    facts = fold(case.case_id, case.events)
    q4 = parse_period("2026-Q4", TZ)
    early = unit_measures([facts], q4, nov(3, 10))[URBAN]
    assert early["on_time_response_rate"] is None  # response due 11:01, not yet passed
    assert early["on_time_resolution_rate"] is None
    later = unit_measures([facts], q4, nov(5, 10))[URBAN]
    assert later["on_time_response_rate"] == D(0)
    assert later["resolutions_due"] == D(1)
    assert later["on_time_resolution_rate"] == D(0)


def test_a_task_withdrawn_before_its_response_deadline_is_not_held_against_the_unit() -> None:
    case = ScriptedCase("w1", grid=G1, category=GARBAGE, location=L1)
    case.reported(nov(3, 9)).registered(nov(3, 9)).dispatched(
        nov(3, 9, 1), URBAN, Tier.DEPARTMENT, new_round=True
    )
    case.cancelled(nov(3, 9, 30), URBAN)
    facts = fold(case.case_id, case.events)
    units = unit_measures([facts], parse_period("2026-Q4", TZ), nov(4, 10))
    assert units[URBAN]["on_time_response_rate"] is None


def test_a_worker_with_nothing_but_check_ins_has_null_rates() -> None:
    from onegrid_scoring.domain.measures import Checkin

    november = parse_period("2026-11", TZ)
    workers = worker_measures([], [Checkin(S1, G1, nov(1, 9))], november, nov(1, 20), TZ, Rules())
    assert workers[S1]["valid_report_rate"] is None
    assert workers[S1]["on_time_verification_rate"] is None
    assert workers[S1]["average_rating"] is None
    assert workers[S1]["patrol_rate"] == D("0.5")
