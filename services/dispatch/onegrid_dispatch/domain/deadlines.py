"""Deadline clocks: due time, the 80% warning point, traffic light, timers that fire once.

A clock runs from dispatch until it is met (response: the lead unit accepts; resolution: the
case is handled). Its `total` is the limit in working seconds (plus approved extensions),
counted by the WorkingCalendar in the limit's unit, so the share used at any moment is
`1 - working_time_between(now, due_at) / total`, which stays right after a suspension moved
the due time. Green below 80%, yellow from 80% to the due time, red from the due time on:
`due_at` is the instant the limit is used up, and at it the case is overdue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from onegrid_common.working_time import WorkingCalendar, WorkingTimeUnit
from onegrid_contracts.cases import CalendarBasis, DeadlineKind
from onegrid_contracts.cases import Deadline as DeadlinePayload

WARNING_FRACTION = 0.8
_UNIT_SECONDS = {
    WorkingTimeUnit.WORKING_HOURS: 3600,
    WorkingTimeUnit.WORKING_DAYS: 86400,
    WorkingTimeUnit.MINUTES: 60,
}


class TrafficLight(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


@dataclass(frozen=True)
class TimeLimit:
    """A category's limit: amount of a unit (mirrors the registry's TimeLimit)."""

    amount: int
    unit: WorkingTimeUnit

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError(f"a time limit must be positive, got {self.amount}")

    @property
    def seconds(self) -> float:
        return float(self.amount * _UNIT_SECONDS[self.unit])


@dataclass(frozen=True)
class DeadlineCheck:
    """What a timer tick at `now` must emit for one clock; each is due once."""

    kind: DeadlineKind
    warning_due: bool
    breach_due: bool


def _add_seconds(
    calendar: WorkingCalendar, start: datetime, seconds: float, unit: WorkingTimeUnit
) -> tuple[datetime, bool]:
    deadline = calendar.add_working_time(start, max(0.0, seconds) / _UNIT_SECONDS[unit], unit)
    return deadline.at, deadline.calendar_incomplete


@dataclass
class DeadlineClock:
    kind: DeadlineKind
    limit: TimeLimit
    started_at: datetime
    due_at: datetime
    warn_at: datetime
    total: float  # working seconds in the limit's unit, extensions included
    calendar_incomplete: bool = False
    met_at: datetime | None = None
    paused_at: datetime | None = None
    warning_emitted: bool = False
    breach_emitted: bool = False

    @classmethod
    def start(
        cls, kind: DeadlineKind, limit: TimeLimit, at: datetime, calendar: WorkingCalendar
    ) -> DeadlineClock:
        due = calendar.add_working_time(at, limit.amount, limit.unit)
        warn_at, warn_incomplete = _add_seconds(
            calendar, at, limit.seconds * WARNING_FRACTION, limit.unit
        )
        return cls(
            kind=kind,
            limit=limit,
            started_at=at,
            due_at=due.at,
            warn_at=warn_at,
            total=limit.seconds,
            calendar_incomplete=due.calendar_incomplete or warn_incomplete,
        )

    @property
    def running(self) -> bool:
        return self.met_at is None and self.paused_at is None

    def fraction(self, now: datetime, calendar: WorkingCalendar) -> float:
        """Share of the limit used at `now` (frozen when met or paused): 1.0 at the due time."""
        at = self.met_at or self.paused_at or now
        if at < self.started_at:
            return 0.0
        left = calendar.working_time_between(at, self.due_at, self.limit.unit)
        return 1.0 - left / self.total

    def traffic_light(self, now: datetime) -> TrafficLight:
        at = self.met_at or self.paused_at or now
        if at >= self.due_at:
            return TrafficLight.RED
        if at >= self.warn_at:
            return TrafficLight.YELLOW
        return TrafficLight.GREEN

    def check(self, now: datetime) -> DeadlineCheck:
        """A warning is due from the 80% point until the due time; a breach from the due
        time. A warning not sent before the breach is skipped (the breach says more)."""
        if not self.running:
            return DeadlineCheck(self.kind, warning_due=False, breach_due=False)
        breach = now >= self.due_at and not self.breach_emitted
        warning = self.warn_at <= now < self.due_at and not self.warning_emitted
        return DeadlineCheck(self.kind, warning_due=warning, breach_due=breach)

    def next_timer_at(self) -> datetime | None:
        """When a timer should next look at this clock (None: nothing left to fire)."""
        if not self.running:
            return None
        if not self.warning_emitted and self.warn_at < self.due_at:
            return self.warn_at
        if not self.breach_emitted:
            return self.due_at
        return None

    def pause(self, at: datetime) -> None:
        if self.running:
            self.paused_at = at

    def resume(self, at: datetime, calendar: WorkingCalendar) -> None:
        """The working time left when paused is left again from `at`."""
        if self.paused_at is None:
            return
        unit = self.limit.unit
        left = calendar.working_time_between(self.paused_at, self.due_at, unit)
        to_warning = calendar.working_time_between(self.paused_at, self.warn_at, unit)
        self.paused_at = None
        if left > 0:
            self.due_at, incomplete = _add_seconds(calendar, at, left, unit)
            self.calendar_incomplete |= incomplete
        if to_warning > 0:
            self.warn_at, incomplete = _add_seconds(calendar, at, to_warning, unit)
            self.calendar_incomplete |= incomplete

    def extend_to(self, new_due: datetime, now: datetime, calendar: WorkingCalendar) -> None:
        """Move the due time later; the warning point and the timers follow."""
        if new_due <= self.due_at:
            raise ValueError("an extension must move the deadline later")
        unit = self.limit.unit
        self.total += calendar.working_time_between(self.due_at, new_due, unit)
        self.due_at = new_due
        # The warning point is where 20% of the (new) total is left.
        before_due = calendar.working_time_between(now, new_due, unit) - (
            self.total * (1 - WARNING_FRACTION)
        )
        if before_due > 0:
            self.warn_at, _ = _add_seconds(calendar, now, before_due, unit)
            self.warning_emitted = False
        if now < new_due:
            self.breach_emitted = False

    def meet(self, at: datetime) -> None:
        if self.met_at is None:
            self.met_at = at

    def as_payload(self) -> DeadlinePayload:
        minutes = max(1, min(525_600, round(self.total / 60)))
        basis = CalendarBasis.WEEKENDS_ONLY if self.calendar_incomplete else CalendarBasis.OFFICIAL
        return DeadlinePayload(
            kind=self.kind, due_at=self.due_at, limit_minutes=minutes, basis=basis
        )


def default_evaluation_due(
    closed_at: datetime, now: datetime, window: timedelta = timedelta(days=7)
) -> bool:
    """No evaluation in `window` (calendar days) after closure: the default applies."""
    return now >= closed_at + window


def within_reopen_window(
    closed_at: datetime, now: datetime, window: timedelta = timedelta(days=7)
) -> bool:
    return closed_at <= now < closed_at + window
