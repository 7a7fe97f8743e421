"""The measures, as pure functions over case facts and patrol check-ins. The formulas
are written out in docs/scoring.md; each function here says which one it computes.

Conventions: a rate whose denominator is zero is None (null), never 0; rates and
averages are Decimals with 6 places; counts are Decimals too so a score is one mapping.

Each kind has a tally (`UnitTallies`, `WorkerTallies`, `GridTallies`) that takes cases one
at a time and keeps only counts and a few small values per case, so a period of any size
is computed in bounded memory from a stream of cases; `unit_measures` and friends are the
same over a list. The result does not depend on the order the cases come in.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

from onegrid_contracts.cases import TaskRole, Tier
from onegrid_scoring.domain.facts import CaseFacts
from onegrid_scoring.domain.periods import Period, local_days

Measures = dict[str, Decimal | None]
Within = Callable[[datetime | None], bool]
PLACES = Decimal("0.000001")


def dec(value: float | int | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(PLACES, rounding=ROUND_HALF_EVEN)


def ratio(numerator: int, denominator: int) -> Decimal | None:
    """numerator / denominator, or None when nothing was counted."""
    if denominator == 0:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(PLACES, rounding=ROUND_HALF_EVEN)


def mean(values: Sequence[float]) -> Decimal | None:
    # fsum is exactly rounded: the same values in any order give the same mean.
    return dec(math.fsum(values) / len(values)) if values else None


def p90(values: Sequence[float]) -> Decimal | None:
    """The 90th percentile by nearest rank: the ⌈0.9·n⌉-th smallest value."""
    if not values:
        return None
    ordered = sorted(values)
    return dec(ordered[math.ceil(0.9 * len(ordered)) - 1])


def count(n: int) -> Decimal:
    return Decimal(n)


@dataclass(frozen=True)
class Rules:
    """Configuration of what counts (documented in docs/scoring.md)."""

    # Reports in these major categories are services done on a resident's behalf (代办).
    service_majors: frozenset[str] = frozenset({"livelihood"})
    # An on-site check is on time within this, unless its task carries its own deadline.
    verification_limit: timedelta = timedelta(hours=24)
    # Check-ins closer together than this are one patrol (一日双巡 needs two patrols).
    patrol_min_gap: timedelta = timedelta(hours=2)
    patrols_per_day: int = 2
    hotspot_radius_m: float = 50.0
    hotspot_window: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class Checkin:
    staff_code: str
    grid_code: str
    at: datetime


# --- units (quarterly) ------------------------------------------------------------------


@dataclass
class _UnitTally:
    tasks_assigned: int = 0
    responses_due: int = 0
    responses_on_time: int = 0
    refused: int = 0
    lead_assigned: int = 0
    misdispatched: int = 0
    resolutions_due: int = 0
    approved_deferrals: int = 0
    closed_on_time: int = 0
    cases_dispatched: int = 0
    cases_closed: int = 0
    handled_cases: int = 0
    reworked_cases: int = 0
    first_closed: int = 0
    reopened: int = 0
    evaluated: int = 0
    satisfied: int = 0
    default_evaluations: int = 0
    supervised: set[object] = field(default_factory=set)
    handling_hours: list[float] = field(default_factory=list)


class UnitTallies:
    """Every unit's measures for `period`, judged at `period.as_of(now)`."""

    def __init__(self, period: Period, now: datetime) -> None:
        self.period = period
        self.as_of = period.as_of(now)
        self.tally: dict[str, _UnitTally] = defaultdict(_UnitTally)

    def within(self, at: datetime | None) -> bool:
        return at is not None and self.period.contains(at) and at <= self.as_of

    def add(self, case: CaseFacts) -> None:
        tally, within, as_of = self.tally, self.within, self.as_of
        for task in case.tasks.values():
            if task.role is TaskRole.VERIFY or not within(task.assigned_at):
                continue
            t = tally[task.unit_code]
            t.tasks_assigned += 1
            t.refused += task.refused_at is not None and task.refused_at <= as_of
            if task.role is TaskRole.LEAD:
                t.lead_assigned += 1
                t.misdispatched += task.rerouted
            due, answered = task.response_due_at, task.responded_at
            if answered is not None and answered > as_of:
                answered = None
            if due is not None:
                withdrawn = task.cancelled_at is not None and task.cancelled_at < due
                if answered is not None and answered < due:
                    t.responses_due += 1
                    t.responses_on_time += 1
                elif due <= as_of and not (withdrawn and answered is None):
                    t.responses_due += 1

        _resolution(case, tally, within, as_of)
        _closure_and_handling(case, tally, within, as_of)

        for at, supervised, lead in ((e.at, e.supervised, e.lead_unit) for e in case.escalations):
            if supervised and lead is not None and within(at):
                tally[lead].supervised.add(case.case_id)

        rated = [e for e in case.evaluations if within(e.at)]
        if rated:
            last = rated[-1]  # a reopened case may be rated again: its latest rating counts
            lead = case.lead_at(last.at)
            if lead is not None:
                t = tally[lead]
                t.evaluated += 1
                t.satisfied += last.satisfied
                t.default_evaluations += last.is_default

    def measures(self) -> dict[str, Measures]:
        return {code: _unit_result(t) for code, t in sorted(self.tally.items())}


def unit_measures(cases: Iterable[CaseFacts], period: Period, now: datetime) -> dict[str, Measures]:
    """Every unit's measures for `period`, judged at `period.as_of(now)`."""
    tallies = UnitTallies(period, now)
    for case in cases:
        tallies.add(case)
    return tallies.measures()


def _resolution(
    case: CaseFacts, tally: dict[str, _UnitTally], within: Within, as_of: datetime
) -> None:
    """按期结案: decided when closed, or when the resolution deadline passed unclosed."""
    closure = case.closure
    if closure is not None and closure.at > as_of:
        closure = None
    if closure is not None and closure.self_handled:
        return  # closed on the spot in the grid: no unit was given a deadline
    due = (closure.due_at if closure is not None else None) or case.resolution_due_at
    if due is None or not case.dispatches:
        return
    if closure is not None:
        on_time = closure.on_time if closure.on_time is not None else closure.at < due
        decided = closure.at if on_time else min(closure.at, due)
    elif due <= as_of:
        on_time, decided = False, due
    else:
        return
    lead = case.lead_at(decided)
    if lead is None or not within(decided):
        return
    t = tally[lead]
    t.resolutions_due += 1
    if case.deferred:
        t.approved_deferrals += 1
    elif on_time:
        t.closed_on_time += 1


def _closure_and_handling(
    case: CaseFacts, tally: dict[str, _UnitTally], within: Within, as_of: datetime
) -> None:
    lead = case.current_lead
    closure = case.closure if case.closure is not None and case.closure.at <= as_of else None
    if lead is not None:
        first = case.first_lead_dispatch(lead)
        if within(first):
            tally[lead].cases_dispatched += 1
            tally[lead].cases_closed += closure is not None
    if closure is not None and within(closure.at):
        closer = case.lead_at(closure.at)
        handled = [h for h in case.handled if h <= closure.at]
        start = case.first_lead_dispatch(closer) if closer else None
        if closer is not None and handled and start is not None:
            tally[closer].handling_hours.append((handled[-1] - start).total_seconds() / 3600)
    handled_at = [h for h in case.handled if h <= as_of]
    if handled_at and within(handled_at[0]):
        handler = case.lead_at(handled_at[0])
        if handler is not None:
            tally[handler].handled_cases += 1
            tally[handler].reworked_cases += any(
                handled_at[0] <= at <= as_of for at, _ in case.reworks
            )
    if case.closures and within(case.closures[0].at) and not case.closures[0].self_handled:
        closer = case.lead_at(case.closures[0].at)
        if closer is not None:
            tally[closer].first_closed += 1
            tally[closer].reopened += any(at <= as_of for at in case.reopens)


def _unit_result(t: _UnitTally) -> Measures:
    return {
        "tasks_assigned": count(t.tasks_assigned),
        "on_time_response_rate": ratio(t.responses_on_time, t.responses_due),
        "resolutions_due": count(t.resolutions_due),
        "approved_deferrals": count(t.approved_deferrals),
        "closed_on_time": count(t.closed_on_time),
        "on_time_resolution_rate": ratio(
            t.closed_on_time, t.resolutions_due - t.approved_deferrals
        ),
        "cases_dispatched": count(t.cases_dispatched),
        "closure_rate": ratio(t.cases_closed, t.cases_dispatched),
        "rework_rate": ratio(t.reworked_cases, t.handled_cases),
        "refusal_rate": ratio(t.refused, t.tasks_assigned),
        "mis_dispatch_rate": ratio(t.misdispatched, t.lead_assigned),
        "reopen_rate": ratio(t.reopened, t.first_closed),
        "avg_handling_hours": mean(t.handling_hours),
        "p90_handling_hours": p90(t.handling_hours),
        "evaluations": count(t.evaluated),
        "default_evaluations": count(t.default_evaluations),
        "satisfaction_rate": ratio(t.satisfied, t.evaluated),
        "supervised_cases": count(len(t.supervised)),
    }


# --- grid workers (monthly) ---------------------------------------------------------------


@dataclass
class _WorkerTally:
    reports_filed: int = 0
    reports_registered: int = 0
    self_handled: int = 0
    services_on_behalf: int = 0
    verifications_assigned: int = 0
    verifications_done: int = 0
    verifications_on_time: int = 0
    verifications_decided: int = 0
    ratings: list[int] = field(default_factory=list)
    checkins: list[datetime] = field(default_factory=list)


def patrols(checkins: Sequence[datetime], min_gap: timedelta) -> list[datetime]:
    """Check-ins that start a patrol: the first, then each at least `min_gap` after the
    last counted one (two taps a minute apart are one patrol)."""
    counted: list[datetime] = []
    for at in sorted(checkins):
        if not counted or at - counted[-1] >= min_gap:
            counted.append(at)
    return counted


def patrol_rate(
    checkins: Sequence[datetime], period: Period, as_of: datetime, tz: ZoneInfo, rules: Rules
) -> tuple[int, int, Decimal | None]:
    """(patrols, days with the daily quota met, rate): rate = Σ_days min(patrols, quota)
    / (quota × local days begun in the period by as_of)."""
    per_day: dict[object, int] = defaultdict(int)
    counted = patrols(checkins, rules.patrol_min_gap)
    for at in counted:
        per_day[at.astimezone(tz).date()] += 1
    days = local_days(period.start, as_of, tz)
    credited = sum(min(n, rules.patrols_per_day) for n in per_day.values())
    met = sum(1 for n in per_day.values() if n >= rules.patrols_per_day)
    return len(counted), met, ratio(credited, rules.patrols_per_day * days)


class WorkerTallies:
    """Every grid worker's measures for `period`, from cases and patrol check-ins."""

    def __init__(self, period: Period, now: datetime, tz: ZoneInfo, rules: Rules) -> None:
        self.period = period
        self.as_of = period.as_of(now)
        self.tz = tz
        self.rules = rules
        self.tally: dict[str, _WorkerTally] = defaultdict(_WorkerTally)

    def within(self, at: datetime | None) -> bool:
        return at is not None and self.period.contains(at) and at <= self.as_of

    def add(self, case: CaseFacts) -> None:
        tally, within, as_of, rules = self.tally, self.within, self.as_of, self.rules
        worker = case.reporter_staff
        if worker is not None:
            t = tally[worker] if within(case.reported_at) else None
            if t is not None:
                registered = case.registered_at is not None and case.registered_at <= as_of
                t.reports_filed += 1
                t.reports_registered += registered
                major = (case.category_code or "").split(".", 1)[0]
                t.services_on_behalf += registered and major in rules.service_majors
            if any(c.self_handled and within(c.at) for c in case.closures):
                tally[worker].self_handled += 1
            rated = [e.rating for e in case.evaluations if not e.is_default and within(e.at)]
            if rated:
                tally[worker].ratings.append(rated[-1])
        for check in case.verifications:
            if not within(check.assigned_at):
                continue
            t = tally[check.staff_code]
            t.verifications_assigned += 1
            due = check.due_at or check.assigned_at + rules.verification_limit
            done = check.done_at if check.done_at is not None and check.done_at <= as_of else None
            if done is not None:
                t.verifications_done += 1
                t.verifications_decided += 1
                t.verifications_on_time += done <= due
            elif due <= as_of:
                t.verifications_decided += 1

    def add_checkin(self, checkin: Checkin) -> None:
        if self.within(checkin.at):
            self.tally[checkin.staff_code].checkins.append(checkin.at)

    def measures(self) -> dict[str, Measures]:
        result: dict[str, Measures] = {}
        for code, t in sorted(self.tally.items()):
            n_patrols, days_met, rate = patrol_rate(
                t.checkins, self.period, self.as_of, self.tz, self.rules
            )
            average = mean(t.ratings)
            result[code] = {
                "reports_filed": count(t.reports_filed),
                "reports_registered": count(t.reports_registered),
                "valid_report_rate": ratio(t.reports_registered, t.reports_filed),
                "self_handled": count(t.self_handled),
                "services_on_behalf": count(t.services_on_behalf),
                "verifications_assigned": count(t.verifications_assigned),
                "verifications_done": count(t.verifications_done),
                "verifications_on_time": count(t.verifications_on_time),
                "on_time_verification_rate": ratio(
                    t.verifications_on_time, t.verifications_decided
                ),
                "patrol_checkins": count(len(t.checkins)),
                "patrols": count(n_patrols),
                "patrol_days_met": count(days_met),
                "patrol_rate": rate,
                "ratings": count(len(t.ratings)),
                "average_rating": average,
                "rating_score": None if average is None else dec((average - 1) / 4),
            }
        return result


def worker_measures(
    cases: Iterable[CaseFacts],
    checkins: Iterable[Checkin],
    period: Period,
    now: datetime,
    tz: ZoneInfo,
    rules: Rules,
) -> dict[str, Measures]:
    tallies = WorkerTallies(period, now, tz, rules)
    for case in cases:
        tallies.add(case)
    for checkin in checkins:
        tallies.add_checkin(checkin)
    return tallies.measures()


# --- grids (monthly) --------------------------------------------------------------------


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (lon, lat) points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


@dataclass(frozen=True, slots=True)
class Sighting:
    """Where and when a registered case was reported: what a repeat is judged by."""

    case_id: UUID
    category_code: str
    reported_at: datetime
    location: tuple[float, float]


def sighting(case: CaseFacts) -> Sighting | None:
    if case.registered_at and case.location and case.category_code and case.reported_at:
        return Sighting(case.case_id, case.category_code, case.reported_at, case.location)
    return None


def repeated(sightings: Iterable[Sighting], rules: Rules) -> set[UUID]:
    """Ids of registered cases that repeat an earlier registered case of the same category
    within `hotspot_radius_m` metres and `hotspot_window` (the same place again)."""
    by_category: dict[str, list[Sighting]] = defaultdict(list)
    for seen in sightings:
        by_category[seen.category_code].append(seen)
    found: set[UUID] = set()
    for group in by_category.values():
        group.sort(key=lambda s: (s.reported_at, str(s.case_id)))
        for i, case in enumerate(group):
            for earlier in reversed(group[:i]):
                if case.reported_at - earlier.reported_at > rules.hotspot_window:
                    break
                if distance_m(case.location, earlier.location) <= rules.hotspot_radius_m:
                    found.add(case.case_id)
                    break
    return found


def repeats(cases: Iterable[CaseFacts], rules: Rules) -> set[UUID]:
    """`repeated` over the registered cases among `cases`."""
    return repeated((s for c in cases if (s := sighting(c)) is not None), rules)


class GridTallies:
    """Every grid's measures for `period`; cases of the hotspot window before the period
    count only as earlier sightings of a repeat."""

    def __init__(
        self, households: Mapping[str, int], period: Period, now: datetime, rules: Rules
    ) -> None:
        self.households = households
        self.period = period
        self.as_of = period.as_of(now)
        self.rules = rules
        self.sightings: list[Sighting] = []
        self.registered: dict[str, list[UUID]] = defaultdict(list)
        self.closed: dict[str, int] = defaultdict(int)
        self.in_grid: dict[str, int] = defaultdict(int)

    def within(self, at: datetime | None) -> bool:
        return at is not None and self.period.contains(at) and at <= self.as_of

    def add(self, case: CaseFacts) -> None:
        registered = case.registered_at is not None and case.registered_at <= self.as_of
        if registered and (seen := sighting(case)) is not None:
            self.sightings.append(seen)
        grid = case.grid_code
        if grid is None:
            return
        if self.within(case.registered_at):
            self.registered[grid].append(case.case_id)
        closure = case.closure
        if closure is not None and self.within(closure.at):
            self.closed[grid] += 1
            self.in_grid[grid] += closure.tier is Tier.GRID

    def measures(self) -> dict[str, Measures]:
        again = repeated(self.sightings, self.rules)
        result: dict[str, Measures] = {}
        for grid in sorted(set(self.registered) | set(self.closed)):
            homes = self.households.get(grid) or 0
            cases = len(self.registered[grid])
            repeats_here = sum(1 for case_id in self.registered[grid] if case_id in again)
            closed = self.closed[grid]
            result[grid] = {
                "households": count(homes) if homes else None,
                "cases": count(cases),
                "cases_per_1000_households": (
                    dec(Decimal(cases) * 1000 / homes) if homes else None
                ),
                "repeat_hotspot_cases": count(repeats_here),
                "repeat_case_rate": ratio(repeats_here, cases),
                "cases_closed": count(closed),
                "in_grid_resolution_share": ratio(self.in_grid[grid], closed),
            }
        return result


def grid_measures(
    cases: Iterable[CaseFacts],
    households: Mapping[str, int],
    period: Period,
    now: datetime,
    rules: Rules,
) -> dict[str, Measures]:
    tallies = GridTallies(households, period, now, rules)
    for case in cases:
        tallies.add(case)
    return tallies.measures()


__all__ = [
    "Checkin",
    "GridTallies",
    "Measures",
    "Rules",
    "UnitTallies",
    "WorkerTallies",
    "grid_measures",
    "mean",
    "p90",
    "patrol_rate",
    "patrols",
    "ratio",
    "repeated",
    "repeats",
    "sighting",
    "unit_measures",
    "worker_measures",
]
