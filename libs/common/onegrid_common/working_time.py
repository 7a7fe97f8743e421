"""Working time under the Chinese working-day calendar: deadlines, elapsed time, 80% warnings.

The calendar is data the city owns. `YearCalendar` holds one year's statutory holidays and
its adjusted working days (调休: weekend days that are working days); the registry keeps
them, editable, seeded from `chinese_calendar` for the years that package knows
(`seed_years_from_chinese_calendar`). For a year without data the calendar counts weekends
only and says so: every `Deadline` carries `missing_years` / `calendar_incomplete`, so a
deadline set in late December for a year not yet announced never fails.

The rule
--------
* A date is a working day if it is an adjusted working day of its year; else not if it is a
  holiday of its year; else if it is Monday to Friday. A year without data: Monday to Friday.
* All counting happens in the calendar's local wall-clock time (`tz`, Asia/Shanghai by
  default). Inputs must be timezone-aware; naive datetimes are refused (`NaiveDatetimeError`).
* `working_hours`: only office hours on working days count (default 09:00–12:00 and
  13:30–17:30, 7 hours a day). A report at 11:00 with 2 working hours is due at 14:30; at
  17:00 Friday with 2 hours, due at 10:30 on the next working day. A deadline that uses up
  the last minute of a period is that period's end (12:00, not 13:30).
* `working_days`: whole working days count, the whole 24 hours of each, and no time on
  non-working days. So N working days from a start on a working day is the same time of day
  on the N-th next working day (16:00 Friday + 1 working day = 16:00 Monday, or Tuesday when
  Monday is a holiday). A start on a non-working day begins counting at 00:00 of the next
  working day, so it is due at the end (24:00) of the N-th working day.
* `working_time_between(a, b, unit)` counts the same time in the same way, so
  `working_time_between(s, add_working_time(s, x, unit).at, unit) == x` always.
* `minutes`: plain clock time around the clock, calendar ignored (emergencies).
* An amount of zero is due at the start itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo

__all__ = [
    "CHINA_TZ",
    "DEFAULT_WORK_HOURS",
    "CalendarError",
    "Deadline",
    "NaiveDatetimeError",
    "WorkingCalendar",
    "WorkingTimeUnit",
    "YearCalendar",
    "seed_years_from_chinese_calendar",
]

CHINA_TZ = ZoneInfo("Asia/Shanghai")

# ((start hour, minute), (end hour, minute)) per office period, in order.
WorkHours = tuple[tuple[tuple[int, int], tuple[int, int]], ...]
DEFAULT_WORK_HOURS: WorkHours = (((9, 0), (12, 0)), ((13, 30), (17, 30)))

# Bounds that keep a bad amount from scanning the calendar for ever.
MAX_AMOUNT = {"working_hours": 24.0 * 366, "working_days": 366.0, "minutes": 60.0 * 24 * 366}
_MAX_SCAN_DAYS = 366 * 12
_DAY = timedelta(days=1)


class WorkingTimeUnit(StrEnum):
    WORKING_HOURS = "working_hours"
    WORKING_DAYS = "working_days"
    MINUTES = "minutes"  # clock minutes around the clock: emergencies do not wait for Monday


class CalendarError(ValueError):
    """Calendar data or a working-time request that makes no sense."""


class NaiveDatetimeError(CalendarError):
    def __init__(self, name: str, value: datetime) -> None:
        super().__init__(
            f"{name} must be timezone-aware (e.g. 2026-10-08T09:00:00+08:00), got naive {value}"
        )


@dataclass(frozen=True)
class YearCalendar:
    """One year as announced by the State Council: holidays and adjusted working days."""

    year: int
    holidays: frozenset[date] = frozenset()
    adjusted_working_days: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        for kind, days in (
            ("holiday", self.holidays),
            ("adjusted working day", self.adjusted_working_days),
        ):
            strays = sorted(d for d in days if d.year != self.year)
            if strays:
                raise CalendarError(f"{kind} {strays[0].isoformat()} is not in year {self.year}")
        both = sorted(self.holidays & self.adjusted_working_days)
        if both:
            raise CalendarError(
                f"{both[0].isoformat()} is both a holiday and an adjusted working day"
            )


@dataclass(frozen=True)
class Deadline:
    """When a limit is used up, and whether the calendar knew every year it crossed."""

    start: datetime
    amount: float
    unit: WorkingTimeUnit
    at: datetime
    # Years crossed for which no calendar data exists: only weekends were skipped there.
    missing_years: frozenset[int] = field(default_factory=frozenset)

    @property
    def calendar_incomplete(self) -> bool:
        return bool(self.missing_years)


def _require_aware(name: str, value: datetime) -> None:
    if not isinstance(value, datetime):
        raise CalendarError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(name, value)


def _amount_as_timedelta(amount: float, unit: WorkingTimeUnit) -> timedelta:
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise CalendarError(f"amount must be a number, got {amount!r}")
    if not math.isfinite(amount) or amount < 0:
        raise CalendarError(f"amount must be a finite number >= 0, got {amount!r}")
    if amount > MAX_AMOUNT[unit.value]:
        raise CalendarError(f"amount {amount} {unit.value} exceeds {MAX_AMOUNT[unit.value]}")
    if unit is WorkingTimeUnit.WORKING_HOURS:
        return timedelta(hours=amount)
    if unit is WorkingTimeUnit.MINUTES:
        return timedelta(minutes=amount)
    return timedelta(days=amount)


class WorkingCalendar:
    """Working days and office hours; see the module docstring for the counting rule."""

    def __init__(
        self,
        years: Mapping[int, YearCalendar],
        *,
        work_hours: WorkHours = DEFAULT_WORK_HOURS,
        tz: tzinfo = CHINA_TZ,
    ) -> None:
        for key, year in years.items():
            if key != year.year:
                raise CalendarError(f"year key {key} holds the calendar of {year.year}")
        self._years = dict(years)
        self._tz = tz
        self._periods = self._parse_work_hours(work_hours)

    @staticmethod
    def _parse_work_hours(work_hours: WorkHours) -> tuple[tuple[timedelta, timedelta], ...]:
        if not work_hours:
            raise CalendarError("work_hours needs at least one office period")
        periods: list[tuple[timedelta, timedelta]] = []
        for (sh, sm), (eh, em) in work_hours:
            start, end = timedelta(hours=sh, minutes=sm), timedelta(hours=eh, minutes=em)
            if not (timedelta(0) <= start < end <= _DAY) or not (0 <= sm < 60 and 0 <= em < 60):
                raise CalendarError(
                    f"office period {sh:02d}:{sm:02d}-{eh:02d}:{em:02d} is not a valid span "
                    "within one day"
                )
            if periods and start < periods[-1][1]:
                raise CalendarError("office periods must be in order and must not overlap")
            periods.append((start, end))
        return tuple(periods)

    @property
    def tz(self) -> tzinfo:
        return self._tz

    @property
    def years(self) -> Mapping[int, YearCalendar]:
        return dict(self._years)

    @property
    def hours_per_working_day(self) -> float:
        return sum((e - s for s, e in self._periods), timedelta(0)) / timedelta(hours=1)

    def has_year(self, year: int) -> bool:
        return year in self._years

    def missing_years(self, first: date, last: date) -> frozenset[int]:
        """Years between two dates (inclusive) that the calendar has no data for."""
        return frozenset(y for y in range(first.year, last.year + 1) if y not in self._years)

    def is_working_day(self, day: date) -> bool:
        if isinstance(day, datetime):
            raise CalendarError("is_working_day takes a date; pass value.date() in local time")
        year = self._years.get(day.year)
        if year is not None:
            if day in year.adjusted_working_days:
                return True
            if day in year.holidays:
                return False
        return day.weekday() < 5

    def _counted(self, day: date, unit: WorkingTimeUnit) -> tuple[tuple[timedelta, timedelta], ...]:
        """The spans of one day (offsets from local midnight) that count in `unit`."""
        if unit is WorkingTimeUnit.MINUTES:
            return ((timedelta(0), _DAY),)
        if not self.is_working_day(day):
            return ()
        if unit is WorkingTimeUnit.WORKING_DAYS:
            return ((timedelta(0), _DAY),)
        return self._periods

    def _local(self, value: datetime) -> tuple[date, timedelta]:
        local = value.astimezone(self._tz).replace(tzinfo=None)
        return local.date(), local - datetime.combine(local.date(), time())

    def _at(self, day: date, offset: timedelta) -> datetime:
        return (datetime.combine(day, time()) + offset).replace(tzinfo=self._tz)

    def add_working_time(
        self, start: datetime, amount: float, unit: WorkingTimeUnit | str
    ) -> Deadline:
        """The instant at which `amount` working hours/days from `start` are used up."""
        _require_aware("start", start)
        unit = WorkingTimeUnit(unit)
        remaining = _amount_as_timedelta(amount, unit)
        day, offset = self._local(start)
        missing: set[int] = set()
        if unit is WorkingTimeUnit.MINUTES or remaining == timedelta(0):
            at = (start + remaining).astimezone(self._tz)
            return Deadline(start, amount, unit, at, frozenset())
        for _ in range(_MAX_SCAN_DAYS):
            if day.year not in self._years:
                missing.add(day.year)
            for span_start, span_end in self._counted(day, unit):
                if span_end <= offset:
                    continue
                begin = max(span_start, offset)
                available = span_end - begin
                if remaining <= available:
                    at = self._at(day, begin + remaining)
                    return Deadline(start, amount, unit, at, frozenset(missing))
                remaining -= available
            day, offset = day + _DAY, timedelta(0)
        raise CalendarError(
            f"no working time found within {_MAX_SCAN_DAYS} days of {start.isoformat()}"
        )

    def working_time_between(
        self,
        a: datetime,
        b: datetime,
        unit: WorkingTimeUnit | str = WorkingTimeUnit.WORKING_HOURS,
    ) -> float:
        """Working seconds from `a` to `b` counted in `unit` (negative when b is before a)."""
        _require_aware("a", a)
        _require_aware("b", b)
        unit = WorkingTimeUnit(unit)
        if b < a:
            return -self.working_time_between(b, a, unit)
        if unit is WorkingTimeUnit.MINUTES:
            return (b - a).total_seconds()
        return self._between(a, b, unit).total_seconds()

    def _between(self, a: datetime, b: datetime, unit: WorkingTimeUnit) -> timedelta:
        day, offset = self._local(a)
        last_day, last_offset = self._local(b)
        total = timedelta(0)
        while day <= last_day:
            until = last_offset if day == last_day else _DAY
            for span_start, span_end in self._counted(day, unit):
                begin, end = max(span_start, offset), min(span_end, until)
                if end > begin:
                    total += end - begin
            day, offset = day + _DAY, timedelta(0)
        return total

    def fraction_elapsed(
        self,
        start: datetime,
        deadline: datetime,
        now: datetime,
        unit: WorkingTimeUnit | str = WorkingTimeUnit.WORKING_HOURS,
    ) -> float:
        """How much of the limit from `start` to `deadline` is used at `now`: 0 before the
        start, 1.0 at the deadline, above 1 when overdue (0.8 is the warning point)."""
        _require_aware("now", now)
        if deadline < start:
            raise CalendarError("deadline is before start")
        total = self.working_time_between(start, deadline, unit)
        used = max(0.0, self.working_time_between(start, now, unit))
        if total == 0:
            return 1.0 if now >= deadline else 0.0
        return used / total


def seed_years_from_chinese_calendar(years: Iterable[int] | None = None) -> dict[int, YearCalendar]:
    """Year calendars from the `chinese_calendar` package (holidays and 调休 working days).

    `years=None` gives every year the package knows. Asking for a year it does not know
    raises CalendarError: an empty year would wrongly claim there are no holidays.
    """
    try:
        import chinese_calendar
        from chinese_calendar import constants
    except ImportError as exc:  # pragma: no cover - a deployment problem, not logic
        raise CalendarError("the chinese_calendar package is not installed") from exc

    holidays: dict[int, set[date]] = {}
    workdays: dict[int, set[date]] = {}
    for day in constants.holidays:
        holidays.setdefault(day.year, set()).add(day)
    for day in constants.workdays:
        workdays.setdefault(day.year, set()).add(day)
    known = sorted(set(holidays) | set(workdays))
    wanted = known if years is None else sorted(set(years))
    unknown = []
    for year in wanted:
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
        except NotImplementedError:
            unknown.append(year)
    if unknown:
        raise CalendarError(
            f"chinese_calendar {chinese_calendar.__version__} has no data for "
            f"{', '.join(map(str, unknown))}; it knows {known[0]}-{known[-1]}. "
            "Enter those years in the registry when the State Council announces them."
        )
    return {
        year: YearCalendar(
            year,
            frozenset(holidays.get(year, ())),
            frozenset(workdays.get(year, ())),
        )
        for year in wanted
    }
