"""Pure domain rules of intake: classification, case numbers, duplicates, assessment."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from onegrid_contracts.cases import Channel, ReviewReason
from onegrid_contracts.reports import ReporterInput
from onegrid_intake.domain.case_no import SequenceExhaustedError, format_case_no
from onegrid_intake.domain.classify import classify
from onegrid_intake.domain.dedup import OpenCase, choose_duplicate, distance_m, lock_keys
from onegrid_intake.domain.ports import CategoryRule, GridMatch
from onegrid_intake.domain.reports import allowed_channels, assess, fingerprint, reporter_id

GARBAGE = CategoryRule("environment.exposed_garbage", ("垃圾", "垃圾堆", "乱扔"), 50, 24)
BUILD_WASTE = CategoryRule(
    "environment.construction_waste", ("建筑垃圾", "渣土", "装修垃圾"), 100, 24
)
MANHOLE = CategoryRule("facilities.manhole_cover", ("井盖", "窨井"), 50, 24)
NOISE = CategoryRule("street_order.noise", ("噪音", "扰民"), 50, 24)
RULES = (GARBAGE, BUILD_WASTE, MANHOLE, NOISE)


def test_classify_picks_the_category_whose_keywords_match() -> None:
    proposal = classify("小区门口垃圾堆积多日无人清理", RULES)
    assert proposal.category_code == "environment.exposed_garbage"
    assert 0.5 <= proposal.confidence <= 1.0


def test_classify_prefers_longer_keywords() -> None:
    proposal = classify("楼下有人偷倒装修垃圾和渣土", RULES)
    assert proposal.category_code == "environment.construction_waste"


def test_classify_without_any_keyword_proposes_nothing() -> None:
    proposal = classify("请问社区办事大厅几点开门", RULES)
    assert proposal.category_code is None
    assert proposal.best_candidate is None
    assert proposal.confidence == 0.0


def test_classify_ambiguous_text_is_left_to_an_operator() -> None:
    proposal = classify("井盖旁边噪音很大", RULES)  # two categories, equal evidence
    assert proposal.category_code is None
    assert proposal.best_candidate is not None
    assert proposal.confidence < 0.5


def test_classify_ignores_retired_categories() -> None:
    retired = CategoryRule("facilities.manhole_cover", ("井盖",), 50, 24, active=False)
    assert classify("井盖丢了", (retired,)).category_code is None


def test_case_no_has_city_day_and_six_digit_sequence() -> None:
    assert format_case_no("420500", date(2026, 11, 23), 42) == "420500-20261123-000042"


def test_case_no_rejects_sequences_beyond_six_digits() -> None:
    with pytest.raises(SequenceExhaustedError):
        format_case_no("420500", date(2026, 11, 23), 1_000_000)
    with pytest.raises(ValueError, match="starts at 1"):
        format_case_no("420500", date(2026, 11, 23), 0)


def test_distance_of_a_thousandth_degree_of_latitude_is_about_111_m() -> None:
    assert distance_m(111.29, 30.70, 111.29, 30.701) == pytest.approx(111.2, abs=0.5)


NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def _case(lon: float, lat: float, hours_ago: float, **kw: object) -> OpenCase:
    fields: dict[str, object] = {
        "case_id": uuid4(),
        "category_code": GARBAGE.code,
        "lon": lon,
        "lat": lat,
        "reported_at": NOW - timedelta(hours=hours_ago),
    }
    fields.update(kw)
    return OpenCase(**fields)  # type: ignore[arg-type]


def test_duplicate_joins_the_nearest_open_case_within_radius_and_window() -> None:
    near = _case(111.29, 30.7002, 1)  # ~22 m
    nearer = _case(111.29, 30.7001, 3)  # ~11 m
    found = choose_duplicate(rule=GARBAGE, lon=111.29, lat=30.70, at=NOW, candidates=[near, nearer])
    assert found == nearer


@pytest.mark.parametrize(
    "candidate",
    [
        _case(111.29, 30.7010, 1),  # ~111 m: beyond 50 m
        _case(111.29, 30.7001, 25),  # beyond the 24 h window
        _case(111.29, 30.7001, 1, open=False),
        _case(111.29, 30.7001, 1, category_code=MANHOLE.code),
    ],
    ids=["too-far", "too-old", "closed", "other-category"],
)
def test_no_duplicate_outside_the_rules(candidate: OpenCase) -> None:
    assert (
        choose_duplicate(rule=GARBAGE, lon=111.29, lat=30.70, at=NOW, candidates=[candidate])
        is None
    )


def test_a_category_with_zero_radius_never_merges() -> None:
    rule = CategoryRule(GARBAGE.code, (), 0, 24)
    same_spot = _case(111.29, 30.70, 0)
    assert (
        choose_duplicate(rule=rule, lon=111.29, lat=30.70, at=NOW, candidates=[same_spot]) is None
    )


class FakeRegistry:
    def __init__(self, grids: dict[str, GridMatch], rules: Sequence[CategoryRule]) -> None:
        self.grids = grids
        self.rules = {r.code: r for r in rules}

    def locate(self, lon: float, lat: float) -> GridMatch | None:
        return self.grids.get("420502003001001") if lon > 111 else None

    def grid(self, code: str) -> GridMatch | None:
        return self.grids.get(code)

    def category(self, code: str) -> CategoryRule | None:
        return self.rules.get(code)

    def categories(self) -> Sequence[CategoryRule]:
        return tuple(self.rules.values())


GRID = GridMatch(
    "420502003001001", ("420500", "420502", "420502003", "420502003001", "420502003001001")
)
REGISTRY = FakeRegistry({GRID.code: GRID}, RULES)


def test_assess_locates_the_point_and_keeps_the_given_category() -> None:
    a = assess(
        registry=REGISTRY, lon=111.29, lat=30.70, grid_code=None,
        category_code=MANHOLE.code, description="井盖", )  # fmt: skip
    assert a.grid == GRID
    assert a.category == MANHOLE
    assert a.category_confidence is None
    assert a.review_reasons == ()
    assert a.errors == ()


def test_assess_flags_a_point_outside_every_grid_for_an_operator() -> None:
    a = assess(registry=REGISTRY, lon=100.0, lat=30.0, grid_code=None,
               category_code=None, description="垃圾堆了好多天")  # fmt: skip
    assert a.grid is None
    assert a.review_reasons == (ReviewReason.OUTSIDE_GRID,)
    assert a.category == GARBAGE
    assert a.category_confidence is not None


def test_assess_uses_the_named_grid_for_an_address_only_report() -> None:
    a = assess(registry=REGISTRY, lon=None, lat=None, grid_code=GRID.code,
               category_code=None, description="有事")  # fmt: skip
    assert a.grid == GRID
    assert a.review_reasons == (ReviewReason.NO_CATEGORY,)


def test_assess_names_every_unknown_code() -> None:
    a = assess(registry=REGISTRY, lon=None, lat=None, grid_code="420599999999999",
               category_code="nothing.such", description="x")  # fmt: skip
    assert {e.field for e in a.errors} == {"grid_code", "category_code"}


def test_low_confidence_is_a_review_reason() -> None:
    a = assess(registry=REGISTRY, lon=111.29, lat=30.70, grid_code=None,
               category_code=None, description="井盖旁边噪音很大")  # fmt: skip
    assert a.category is None
    assert a.review_reasons == (ReviewReason.LOW_CATEGORY_CONFIDENCE,)


def test_fingerprint_ignores_key_order_and_gateway_metadata() -> None:
    a = {"channel": "wechat", "description": "x", "received_at": "2026-01-01T00:00:00Z"}
    b = {"description": "x", "channel": "wechat"}
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint({**b, "description": "y"})


def test_reporter_id_is_stable_per_phone_and_hides_it() -> None:
    key = b"k" * 32
    one = reporter_id(key, ReporterInput(phone="13800138000"), subject="a", report_id="r1")
    two = reporter_id(key, ReporterInput(phone="13800138000", name="张三"), subject="b",
                      report_id="r2")  # fmt: skip
    assert one == two
    assert "13800138000" not in one
    assert one != reporter_id(b"x" * 32, ReporterInput(phone="13800138000"), subject=None,
                              report_id="r1")  # fmt: skip
    anon = reporter_id(key, None, subject=None, report_id="0b7e4d2c-1a3f")
    assert anon.startswith("rp-anon-")


def test_channels_by_role() -> None:
    assert allowed_channels({"reporter"}) == {Channel.WECHAT, Channel.RESIDENT_APP}
    assert allowed_channels({"grid_worker"}) == {Channel.GRID_WORKER_APP}
    assert allowed_channels({"service"}) == set(Channel)
    assert allowed_channels({"auditor"}) == set()


@pytest.mark.parametrize("radius_m", [30.0, 50.0, 200.0])
def test_two_reports_within_the_radius_always_share_a_duplicate_lock(radius_m: float) -> None:
    rng = random.Random(11)
    for _ in range(2000):
        lon, lat = rng.uniform(73, 135), rng.uniform(18, 54)
        bearing, d = rng.uniform(0, 2 * math.pi), rng.uniform(0, radius_m)
        dlat = d * math.cos(bearing) / 111_195
        dlon = d * math.sin(bearing) / (111_195 * math.cos(math.radians(lat)))
        other = (lon + dlon, lat + dlat)
        assert distance_m(lon, lat, *other) <= radius_m * 1.001
        a = lock_keys("environment.exposed_garbage", radius_m, lon, lat)
        b = lock_keys("environment.exposed_garbage", radius_m, *other)
        assert set(a) & set(b), (lon, lat, other)


def test_reports_far_apart_or_of_other_categories_take_different_locks_in_sorted_order() -> None:
    here = lock_keys("environment.exposed_garbage", 50, 111.29, 30.70)
    assert here == sorted(here)
    assert len(here) <= 12
    assert not set(here) & set(lock_keys("environment.exposed_garbage", 50, 111.30, 30.70))
    assert not set(here) & set(lock_keys("street_order.noise", 50, 111.29, 30.70))
