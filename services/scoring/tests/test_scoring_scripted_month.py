"""The scripted November 2026 (onegrid_scoring.testing.scripted_month), scored by hand.

Judged on 30 November 12:00 (+08:00). Response limit 2 h, resolution limit 24 h (clock
time, given in the events), civil's case H 15 days. Tiers: urban, police, civil =
department; community; street.

Case story (d = November day):
  A  S1 reports, urban: accepted on time, handled, verified by S1 in 55 min, closed on time,
     rated 5.
  B  S1 reports 19 m from A (repeat), urban: accepted late (12:00 > 11:02), handled d6 15:00
     after the due d6 09:02, S1's check fails (rework), sent back to urban (new round, due
     d7 16:01), accepted on time, handled d7 10:00, S1 verifies d8 11:00 (24 h 55 min after
     assignment: late), closed d8 11:01 late, rated 2.
  C  resident, police refuses at 09:20 (on time), re-routed to urban (mis-dispatch for
     police), accepted, handled, S2 verifies, closed on time. Never evaluated.
  D  resident, urban, resolution extended (approved deferral) to d16, closed d15, default
     evaluation 4.
  E  resident, community never answers; breach d17 09:02, escalated supervised to street
     d17 09:03 (a planned re-dispatch, not a mis-dispatch); street accepts, handles d18,
     closed d18 11:01 late against the d17 09:02 due (escalation keeps the clock), rated 3.
  F  S1 self-handles on the spot at L1 (repeat of A and B within 30 days).
  G  S2 reports, rejected.
  H  S2 files a 高龄补贴 (livelihood, on a resident's behalf) for civil, due 8 December: open.
  I  resident at 11 m from D (repeat), urban: on time, closed d24, rated 5, reopened d26,
     new round for urban, closed d27 09:01 on time, rated 4 (the latest rating counts).
"""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson

from onegrid_contracts.scores import SubjectKind
from onegrid_scoring.domain.composite import DEFAULT_WEIGHTS, composite, rank
from onegrid_scoring.domain.facts import CaseFacts, facts_from_json, facts_to_json, fold
from onegrid_scoring.domain.measures import (
    Checkin,
    Measures,
    Rules,
    grid_measures,
    unit_measures,
    worker_measures,
)
from onegrid_scoring.domain.periods import parse_period
from onegrid_scoring.testing import (
    CHECKINS,
    HOUSEHOLDS,
    NOW,
    scripted_month,
)

TZ = ZoneInfo("Asia/Shanghai")
D = Decimal

# --- units, 2026-Q4 ------------------------------------------------------------------------
#                        urban        police  community  street    civil
# tasks assigned         7 (A,B×2,C,  1 (C)   1 (E)      1 (E)     1 (H)
#                         D,I×2)
# responses due / on time 7 / 6 (B1    1 / 1   1 / 0      1 / 1     1 / 1
#                          late)
# resolutions decided     A B C D I    –       E (late,   –         – (H due 8 Dec)
#                                               decided
#                                               at due)
#   due / deferred / on   5 / 1 (D) /  0       1 / 0 / 0  0         0
#   time                  3 (A,C,I)
#   按期结案率             3/(5−1)=.75  null    0/1 = 0    null      null
# cases dispatched / closed 5 / 5      –       –          1 / 1 (E) 1 / 0 (H)
# handled / reworked      5 / 2 (B,I)  –       –          1 / 0     –
# first closed / reopened 5 / 1 (I)    –       –          1 / 0     –
# refused                 0            1       0          0         0
# lead tasks / rerouted   7 / 0        1 / 1   1 / 0      1 / 0     1 / 0
# evaluated / satisfied   4 / 3 (A5,   –       –          1 / 0     –
#                         D4 default,                     (E3)
#                         I4; B2 not)
# supervised              0            0       1 (E)      0         0
# handling hours (first dispatch to the unit → last handling before the closure):
#   urban A 5h58 = 358 min, B 2d0h58 = 2938, C 4h35 = 275, D 3d0h58 = 4378, I 2d23h28 = 4288
#   → mean 12237/5 = 2447.4 min = 40.79 h, p90 (rank ⌈4.5⌉ = 5th) = 4378 min = 72.966667 h
#   street E d17 09:03 → d18 10:00 = 24 h 57 min = 24.95 h
# composite (weights 15 resp, 30 res, 10 closure, 10 rework↓, 5 refusal↓, 0 mis-dispatch,
#   5 reopen↓, 25 satisfaction; nulls left out):
#   urban     15·.857143+30·.75+10·1+10·.6+5·1+5·.8+25·.75 = 79.107145 /100 → 79.11
#   police    (15·1 + 5·0) / 20                                          → 75.00
#   civil     (15·1 + 10·0 + 5·1) / 30                                    → 66.67
#   street    (15·1 + 10·1 + 10·1 + 5·1 + 5·1 + 25·0) / 70 = 45/70      → 64.29
#   community (15·0 + 30·0 + 5·1) / 50                                   → 10.00
EXPECTED_UNITS: dict[str, dict[str, Decimal | None]] = {
    "urban": {
        "tasks_assigned": D(7),
        "on_time_response_rate": D("0.857143"),
        "resolutions_due": D(5),
        "approved_deferrals": D(1),
        "closed_on_time": D(3),
        "on_time_resolution_rate": D("0.75"),
        "cases_dispatched": D(5),
        "closure_rate": D(1),
        "rework_rate": D("0.4"),
        "refusal_rate": D(0),
        "mis_dispatch_rate": D(0),
        "reopen_rate": D("0.2"),
        "avg_handling_hours": D("40.79"),
        "p90_handling_hours": D("72.966667"),
        "evaluations": D(4),
        "default_evaluations": D(1),
        "satisfaction_rate": D("0.75"),
        "supervised_cases": D(0),
    },
    "police": {
        "tasks_assigned": D(1),
        "on_time_response_rate": D(1),
        "resolutions_due": D(0),
        "on_time_resolution_rate": None,
        "cases_dispatched": D(0),
        "closure_rate": None,
        "rework_rate": None,
        "refusal_rate": D(1),
        "mis_dispatch_rate": D(1),
        "reopen_rate": None,
        "avg_handling_hours": None,
        "p90_handling_hours": None,
        "satisfaction_rate": None,
        "supervised_cases": D(0),
    },
    "community-420502003001": {
        "on_time_response_rate": D(0),
        "resolutions_due": D(1),
        "on_time_resolution_rate": D(0),
        "closure_rate": None,
        "refusal_rate": D(0),
        "mis_dispatch_rate": D(0),
        "supervised_cases": D(1),
    },
    "street-420502003": {
        "on_time_response_rate": D(1),
        "on_time_resolution_rate": None,
        "closure_rate": D(1),
        "rework_rate": D(0),
        "reopen_rate": D(0),
        "avg_handling_hours": D("24.95"),
        "p90_handling_hours": D("24.95"),
        "evaluations": D(1),
        "satisfaction_rate": D(0),
    },
    "civil": {
        "on_time_response_rate": D(1),
        "on_time_resolution_rate": None,
        "cases_dispatched": D(1),
        "closure_rate": D(0),
        "rework_rate": None,
    },
}
EXPECTED_UNIT_COMPOSITES = {
    "urban": (D("79.11"), 1),
    "police": (D("75.00"), 2),
    "civil": (D("66.67"), 3),
    "street-420502003": (D("64.29"), 4),
    "community-420502003001": (D("10.00"), 5),
}

# --- grid workers, 2026-11 -----------------------------------------------------------------
#                         S0000123 (S1)             S0000456 (S2)
# reports filed/registered 3 (A,B,F) / 3 → 1        2 (G,H) / 1 (H) → 0.5
# self-handled             1 (F)                     0
# services on behalf       0                         1 (H, livelihood)
# verifications assigned   3: A ✓, B1 (failed, 55    5: C, D, E, I×2, all within 1 h
#  / done / on time          min) ✓, B2 24h55 ✗        5 / 5 / 5 → 1
#                            3 / 3 / 2 → 0.666667
# residents' ratings       A 5, B 2 → 3.5;           none → null
#                            score (3.5−1)/4 = .625
# check-ins / patrols      4 / 3 (d2 08:00+08:30 is  2 / 2 (d2) ; 1 day met
#                            one patrol; d2 ×2, d3)
#                            1 day met
# patrol rate              3/(2×30) = 0.05           2/60 = 0.033333
# composite (25 valid, 20 verification, 30 patrol, 25 rating):
#   S1 25·1 + 20·.666667 + 30·.05 + 25·.625 = 55.45834 /100    → 55.46  rank 1
#   S2 (25·.5 + 20·1 + 30·.033333) / 75 = 33.49999/75·100     → 44.67  rank 2
EXPECTED_WORKERS: dict[str, dict[str, Decimal | None]] = {
    "S0000123": {
        "reports_filed": D(3),
        "reports_registered": D(3),
        "valid_report_rate": D(1),
        "self_handled": D(1),
        "services_on_behalf": D(0),
        "verifications_assigned": D(3),
        "verifications_done": D(3),
        "verifications_on_time": D(2),
        "on_time_verification_rate": D("0.666667"),
        "patrol_checkins": D(4),
        "patrols": D(3),
        "patrol_days_met": D(1),
        "patrol_rate": D("0.05"),
        "ratings": D(2),
        "average_rating": D("3.5"),
        "rating_score": D("0.625"),
    },
    "S0000456": {
        "reports_filed": D(2),
        "reports_registered": D(1),
        "valid_report_rate": D("0.5"),
        "self_handled": D(0),
        "services_on_behalf": D(1),
        "verifications_assigned": D(5),
        "verifications_on_time": D(5),
        "on_time_verification_rate": D(1),
        "patrol_checkins": D(2),
        "patrols": D(2),
        "patrol_days_met": D(1),
        "patrol_rate": D("0.033333"),
        "ratings": D(0),
        "average_rating": None,
        "rating_score": None,
    },
}
EXPECTED_WORKER_COMPOSITES = {"S0000123": (D("55.46"), 1), "S0000456": (D("44.67"), 2)}

# --- grids, 2026-11 ------------------------------------------------------------------------
#                         420502003001001 (G1)      420502003001002 (G2)
# households               300                       250
# registered cases         3 (A,B,F)                 5 (C,D,E,H,I; G rejected)
# per 1,000 households     3·1000/300 = 10           5·1000/250 = 20
# repeats (same category   B (A, 19 m, 3 d), F (A,   I (D, 11 m, 12 d) → 1 → 0.2
#  ≤ 50 m ≤ 30 d earlier)    B) → 2 → 0.666667
# closed / inside the grid 3 / 1 (F self-handled)    4 (C,D,E,I) / 0 → 0
#                            → 0.333333
# composite (60 in-grid, 40 repeat↓):
#   G1 60·.333333 + 40·.333333 = 33.3333    → 33.33  rank 1
#   G2 60·0 + 40·.8 = 32                    → 32.00  rank 2
EXPECTED_GRIDS: dict[str, dict[str, Decimal | None]] = {
    "420502003001001": {
        "households": D(300),
        "cases": D(3),
        "cases_per_1000_households": D(10),
        "repeat_hotspot_cases": D(2),
        "repeat_case_rate": D("0.666667"),
        "cases_closed": D(3),
        "in_grid_resolution_share": D("0.333333"),
    },
    "420502003001002": {
        "households": D(250),
        "cases": D(5),
        "cases_per_1000_households": D(20),
        "repeat_hotspot_cases": D(1),
        "repeat_case_rate": D("0.2"),
        "cases_closed": D(4),
        "in_grid_resolution_share": D(0),
    },
}
EXPECTED_GRID_COMPOSITES = {"420502003001001": (D("33.33"), 1), "420502003001002": (D("32.00"), 2)}


def assert_measures(
    actual: dict[str, Measures], expected: dict[str, dict[str, Decimal | None]]
) -> None:
    assert sorted(actual) == sorted(expected)
    for code, wanted in expected.items():
        got = {name: actual[code][name] for name in wanted}
        assert got == wanted, code


def assert_ranks(
    kind: SubjectKind,
    actual: dict[str, Measures],
    expected: dict[str, tuple[Decimal, int]],
) -> None:
    ranked = rank({code: composite(m, DEFAULT_WEIGHTS[kind]) for code, m in actual.items()})
    assert {c: (r.composite, r.rank) for c, r in ranked.items()} == expected


def facts() -> list[CaseFacts]:
    return [fold(case.case_id, case.events) for case in scripted_month()]


def test_unit_scores_of_the_scripted_quarter_match_the_hand_computation() -> None:
    units = unit_measures(facts(), parse_period("2026-Q4", TZ), NOW)
    assert_measures(units, EXPECTED_UNITS)
    assert_ranks(SubjectKind.UNIT, units, EXPECTED_UNIT_COMPOSITES)


def test_worker_scores_of_the_scripted_month_match_the_hand_computation() -> None:
    checkins = [Checkin(staff, grid, at) for staff, grid, at in CHECKINS]
    workers = worker_measures(facts(), checkins, parse_period("2026-11", TZ), NOW, TZ, Rules())
    assert_measures(workers, EXPECTED_WORKERS)
    assert_ranks(SubjectKind.WORKER, workers, EXPECTED_WORKER_COMPOSITES)


def test_grid_scores_of_the_scripted_month_match_the_hand_computation() -> None:
    grids = grid_measures(facts(), HOUSEHOLDS, parse_period("2026-11", TZ), NOW, Rules())
    assert_measures(grids, EXPECTED_GRIDS)
    assert_ranks(SubjectKind.GRID, grids, EXPECTED_GRID_COMPOSITES)


def test_a_month_outside_the_script_has_no_scores() -> None:
    october = parse_period("2026-10", TZ)
    assert grid_measures(facts(), HOUSEHOLDS, october, NOW, Rules()) == {}
    assert worker_measures(facts(), [], october, NOW, TZ, Rules()) == {}


def test_facts_stored_as_json_read_back_equal() -> None:
    for case in facts():
        stored = orjson.loads(orjson.dumps(facts_to_json(case)))
        assert facts_from_json(stored) == case


def test_folding_one_event_into_stored_facts_equals_folding_them_all() -> None:
    # What scoring does as each event arrives: read the stored facts, apply, store again.
    for case in scripted_month():
        stored = facts_to_json(CaseFacts(case.case_id))
        for n, event in enumerate(case.events, start=1):
            facts = facts_from_json(orjson.loads(orjson.dumps(stored)))
            facts.apply(event)
            stored = facts_to_json(facts)
            assert facts == fold(case.case_id, case.events[:n]), (case.name, n)


def test_scores_do_not_depend_on_the_order_of_the_cases() -> None:
    # A period is streamed from the database in no particular order.
    november, q4 = parse_period("2026-11", TZ), parse_period("2026-Q4", TZ)
    checkins = [Checkin(staff, grid, at) for staff, grid, at in CHECKINS]
    forward, backward = facts(), facts()[::-1]
    assert unit_measures(backward, q4, NOW) == unit_measures(forward, q4, NOW)
    assert worker_measures(backward, checkins[::-1], november, NOW, TZ, Rules()) == (
        worker_measures(forward, checkins, november, NOW, TZ, Rules())
    )
    assert grid_measures(backward, HOUSEHOLDS, november, NOW, Rules()) == (
        grid_measures(forward, HOUSEHOLDS, november, NOW, Rules())
    )
