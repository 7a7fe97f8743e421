"""Scoring periods: '2026-11' (a month) and '2026-Q4' (a quarter), in the city's local time.

Units are scored by quarter, grid workers and grids by month (the source documents:
departments quarterly, grid workers monthly). A period is the half-open interval
[start, end) of local midnights, so every instant belongs to exactly one period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from onegrid_contracts.scores import SubjectKind

_MONTH = re.compile(r"^(?P<year>[0-9]{4})-(?P<month>0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^(?P<year>[0-9]{4})-Q(?P<quarter>[1-4])$")

# Which granularity each kind of subject is scored by.
QUARTERLY: frozenset[SubjectKind] = frozenset({SubjectKind.UNIT})


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime
    end: datetime

    @property
    def quarterly(self) -> bool:
        return "Q" in self.label

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end

    def as_of(self, now: datetime) -> datetime:
        """The instant the period is judged at: now while it runs, its end afterwards."""
        return min(now, self.end)


class PeriodError(ValueError):
    """A period label that is not 'YYYY-MM' or 'YYYY-Qn', or the wrong one for a subject."""


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def parse_period(label: str, tz: ZoneInfo) -> Period:
    if m := _MONTH.fullmatch(label):
        year, month = int(m["year"]), int(m["month"])
        ny, nm = _next_month(year, month)
        return Period(
            label, _local_midnight(date(year, month, 1), tz), _local_midnight(date(ny, nm, 1), tz)
        )
    if m := _QUARTER.fullmatch(label):
        year, quarter = int(m["year"]), int(m["quarter"])
        first = 3 * (quarter - 1) + 1
        ny, nm = (year + 1, 1) if quarter == 4 else (year, first + 3)
        return Period(
            label, _local_midnight(date(year, first, 1), tz), _local_midnight(date(ny, nm, 1), tz)
        )
    raise PeriodError(f"period {label!r} must be a month 'YYYY-MM' or a quarter 'YYYY-Qn'")


def period_label(kind: SubjectKind, at: datetime, tz: ZoneInfo) -> str:
    local = at.astimezone(tz)
    if kind in QUARTERLY:
        return f"{local.year:04d}-Q{(local.month - 1) // 3 + 1}"
    return f"{local.year:04d}-{local.month:02d}"


def period_for(kind: SubjectKind, label: str, tz: ZoneInfo) -> Period:
    """The period `label` for subjects of `kind`; PeriodError if the granularity is wrong."""
    period = parse_period(label, tz)
    if period.quarterly != (kind in QUARTERLY):
        want = "a quarter 'YYYY-Qn'" if kind in QUARTERLY else "a month 'YYYY-MM'"
        raise PeriodError(f"{kind.value} scores are by {want}, not {label!r}")
    return period


def periods_touching(kind: SubjectKind, first: datetime, last: datetime, tz: ZoneInfo) -> list[str]:
    """Every period label of `kind` from the one holding `first` to the one holding `last`."""
    if last < first:
        first, last = last, first
    labels: list[str] = []
    label = period_label(kind, first, tz)
    final = period_label(kind, last, tz)
    while True:
        labels.append(label)
        if label == final or len(labels) > 240:
            return labels
        label = period_label(kind, period_for(kind, label, tz).end, tz)


def local_days(start: datetime, end: datetime, tz: ZoneInfo) -> int:
    """Local calendar days that have begun in [start, end)."""
    if end <= start:
        return 0
    first = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    return (last - first).days + 1
