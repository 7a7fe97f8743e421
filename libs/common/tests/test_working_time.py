from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onegrid_common.working_time import (
    CHINA_TZ,
    CalendarError,
    NaiveDatetimeError,
    WorkingCalendar,
    WorkingTimeUnit,
    YearCalendar,
    seed_years_from_chinese_calendar,
)

HOURS = WorkingTimeUnit.WORKING_HOURS
DAYS = WorkingTimeUnit.WORKING_DAYS
SEEDED = seed_years_from_chinese_calendar(range(2024, 2027))
CAL = WorkingCalendar(SEEDED)


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=CHINA_TZ)


# --- the calendar data ---------------------------------------------------------------


def test_seed_reads_holidays_and_adjusted_working_days_of_2026() -> None:
    year = SEEDED[2026]
    assert date(2026, 10, 1) in year.holidays
    assert date(2026, 2, 17) in year.holidays
    # 调休: Saturday 14 February and Saturday 28 February 2026 are working days.
    assert {date(2026, 2, 14), date(2026, 2, 28)} <= year.adjusted_working_days


def test_seed_refuses_a_year_the_package_does_not_know() -> None:
    with pytest.raises(CalendarError, match="2027"):
        seed_years_from_chinese_calendar([2026, 2027])


def test_seed_without_years_gives_every_known_year() -> None:
    seeded = seed_years_from_chinese_calendar()
    assert min(seeded) == 2004
    assert max(seeded) == 2026


def test_national_day_week_2026_is_not_working_but_its_adjusted_days_are() -> None:
    for day in range(1, 8):
        assert not CAL.is_working_day(date(2026, 10, day))
    assert CAL.is_working_day(date(2026, 9, 20))  # Sunday, 调休
    assert CAL.is_working_day(date(2026, 10, 10))  # Saturday, 调休
    assert CAL.is_working_day(date(2026, 10, 8))


def test_year_without_data_counts_weekends_only() -> None:
    assert CAL.is_working_day(date(2027, 1, 1))  # a Friday; its holiday is not known yet
    assert not CAL.is_working_day(date(2027, 1, 2))  # Saturday
    assert CAL.missing_years(date(2026, 12, 1), date(2027, 1, 5)) == frozenset({2027})


def test_year_calendar_refuses_a_date_of_another_year() -> None:
    with pytest.raises(CalendarError, match="not in year 2026"):
        YearCalendar(2026, holidays=frozenset({date(2025, 10, 1)}))


def test_year_calendar_refuses_a_day_that_is_both_holiday_and_working_day() -> None:
    day = date(2026, 10, 1)
    with pytest.raises(CalendarError, match="both"):
        YearCalendar(2026, holidays=frozenset({day}), adjusted_working_days=frozenset({day}))


def test_calendar_refuses_a_year_filed_under_the_wrong_key() -> None:
    with pytest.raises(CalendarError, match="year key 2025"):
        WorkingCalendar({2025: SEEDED[2026]})


def test_calendar_refuses_overlapping_or_inverted_office_hours() -> None:
    with pytest.raises(CalendarError, match="overlap"):
        WorkingCalendar({}, work_hours=(((9, 0), (12, 0)), ((11, 0), (17, 0))))
    with pytest.raises(CalendarError, match="valid span"):
        WorkingCalendar({}, work_hours=(((17, 0), (9, 0)),))


def test_edited_calendar_data_is_used() -> None:
    # City IT enters 2027 once it is announced: New Year's Day becomes a holiday.
    edited = WorkingCalendar(
        {**SEEDED, 2027: YearCalendar(2027, holidays=frozenset({date(2027, 1, 1)}))}
    )
    assert not edited.is_working_day(date(2027, 1, 1))
    deadline = edited.add_working_time(at(2026, 12, 31, 16), 1, DAYS)
    assert deadline.at == at(2027, 1, 4, 16)
    assert not deadline.calendar_incomplete


# --- working days ----------------------------------------------------------------------


def test_one_working_day_from_friday_afternoon_is_same_time_next_working_day() -> None:
    deadline = CAL.add_working_time(at(2026, 3, 13, 16), 1, DAYS)  # Friday
    assert deadline.at == at(2026, 3, 16, 16)
    assert not deadline.calendar_incomplete


def test_working_days_skip_the_national_day_week() -> None:
    # Wednesday 30 September 2026, 10:00: 1 October-7 October are holidays.
    deadline = CAL.add_working_time(at(2026, 9, 30, 10), 2, DAYS)
    assert deadline.at == at(2026, 10, 9, 10)


def test_working_days_count_the_adjusted_saturday_after_national_day() -> None:
    # Friday 9 October + 1 working day = Saturday 10 October (调休 working day).
    assert CAL.add_working_time(at(2026, 10, 9, 11), 1, DAYS).at == at(2026, 10, 10, 11)


def test_working_days_across_spring_festival_with_adjusted_saturdays() -> None:
    # Friday 13 Feb 2026 + 1 day = Saturday 14 Feb (调休); + 2 days jumps the festival
    # (15-23 Feb) to Tuesday 24 Feb.
    start = at(2026, 2, 13, 15)
    assert CAL.add_working_time(start, 1, DAYS).at == at(2026, 2, 14, 15)
    assert CAL.add_working_time(start, 2, DAYS).at == at(2026, 2, 24, 15)


def test_working_days_from_a_holiday_are_due_at_the_end_of_the_nth_working_day() -> None:
    deadline = CAL.add_working_time(at(2026, 10, 3, 10), 1, DAYS)
    assert deadline.at == at(2026, 10, 9, 0)  # the end of Thursday 8 October


def test_deadline_crossing_into_2027_counts_weekends_only_and_says_so() -> None:
    deadline = CAL.add_working_time(at(2026, 12, 31, 16), 2, DAYS)  # Thursday
    assert deadline.at == at(2027, 1, 4, 16)  # Friday 1 Jan counted, weekend skipped
    assert deadline.calendar_incomplete
    assert deadline.missing_years == frozenset({2027})


def test_deadline_within_a_known_year_is_complete() -> None:
    deadline = CAL.add_working_time(at(2026, 12, 30, 9), 1, DAYS)
    assert deadline.at == at(2026, 12, 31, 9)
    assert deadline.missing_years == frozenset()


def test_elapsed_time_into_2027_does_not_fail() -> None:
    seconds = CAL.working_time_between(at(2026, 12, 31, 9), at(2027, 1, 5, 9), HOURS)
    assert seconds == 3 * 7 * 3600  # 31 Dec, 1 Jan (no 2027 data), 4 Jan; 5 Jan not yet


# --- working hours ---------------------------------------------------------------------


def test_working_hours_skip_lunch() -> None:
    assert CAL.add_working_time(at(2026, 3, 10, 11), 2, HOURS).at == at(2026, 3, 10, 14, 30)


def test_working_hours_ending_at_noon_are_due_at_noon() -> None:
    assert CAL.add_working_time(at(2026, 3, 10, 11), 1, HOURS).at == at(2026, 3, 10, 12)


def test_working_hours_carry_overnight_and_over_the_weekend() -> None:
    # Friday 17:00 + 2 hours: 30 minutes Friday, 1.5 hours Monday morning.
    assert CAL.add_working_time(at(2026, 3, 13, 17), 2, HOURS).at == at(2026, 3, 16, 10, 30)


def test_working_hours_reported_at_night_start_next_morning() -> None:
    assert CAL.add_working_time(at(2026, 3, 10, 22), 1, HOURS).at == at(2026, 3, 11, 10)


def test_working_hours_skip_national_day() -> None:
    assert CAL.add_working_time(at(2026, 9, 30, 17), 1, HOURS).at == at(2026, 10, 8, 9, 30)


def test_custom_office_hours() -> None:
    cal = WorkingCalendar(SEEDED, work_hours=(((8, 0), (18, 0)),))
    assert cal.hours_per_working_day == 10
    assert cal.add_working_time(at(2026, 3, 10, 17), 2, HOURS).at == at(2026, 3, 11, 9)


def test_utc_input_is_counted_in_local_time() -> None:
    start = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai
    assert CAL.add_working_time(start, 1, HOURS).at == at(2026, 3, 10, 12)


def test_working_time_between_counts_office_hours_only() -> None:
    seconds = CAL.working_time_between(at(2026, 3, 13, 11), at(2026, 3, 16, 10), HOURS)
    assert seconds == (1 + 4 + 1) * 3600


def test_working_time_between_is_negative_backwards() -> None:
    assert CAL.working_time_between(at(2026, 3, 10, 10), at(2026, 3, 10, 9), HOURS) == -3600


def test_zero_amount_is_due_at_the_start() -> None:
    start = at(2026, 10, 3, 22)
    assert CAL.add_working_time(start, 0, HOURS).at == start


def test_minutes_count_around_the_clock_even_on_holidays() -> None:
    deadline = CAL.add_working_time(at(2026, 10, 1, 23, 30), 60, WorkingTimeUnit.MINUTES)
    assert deadline.at == at(2026, 10, 2, 0, 30)
    assert not deadline.calendar_incomplete


# --- fraction elapsed ------------------------------------------------------------------


def test_fraction_elapsed_reaches_0_8_at_the_warning_point() -> None:
    start = at(2026, 3, 10, 9)
    deadline = CAL.add_working_time(start, 10, HOURS).at
    warn = CAL.add_working_time(start, 8, HOURS).at
    assert CAL.fraction_elapsed(start, deadline, warn) == pytest.approx(0.8)
    assert CAL.fraction_elapsed(start, deadline, deadline) == 1.0
    assert CAL.fraction_elapsed(start, deadline, start - timedelta(hours=1)) == 0.0
    assert CAL.fraction_elapsed(start, deadline, deadline + timedelta(days=1)) > 1.0


def test_fraction_elapsed_stands_still_over_a_holiday() -> None:
    start = at(2026, 9, 30, 9)
    deadline = CAL.add_working_time(start, 14, HOURS).at
    assert CAL.fraction_elapsed(start, deadline, at(2026, 10, 2, 12)) == 0.5
    assert CAL.fraction_elapsed(start, deadline, at(2026, 10, 6, 12)) == 0.5


# --- bad input -------------------------------------------------------------------------


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(NaiveDatetimeError, match="timezone-aware"):
        CAL.add_working_time(datetime(2026, 3, 10, 9), 1, HOURS)
    with pytest.raises(NaiveDatetimeError):
        CAL.working_time_between(at(2026, 3, 10), datetime(2026, 3, 11), HOURS)


@pytest.mark.parametrize("amount", [-1, float("nan"), float("inf"), 10_000])
def test_bad_amounts_are_refused(amount: float) -> None:
    with pytest.raises(CalendarError, match="amount"):
        CAL.add_working_time(at(2026, 3, 10), amount, DAYS)


def test_unknown_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="fortnights"):
        CAL.add_working_time(at(2026, 3, 10), 1, "fortnights")


def test_is_working_day_refuses_a_datetime() -> None:
    with pytest.raises(CalendarError, match="takes a date"):
        CAL.is_working_day(at(2026, 3, 10))


# --- properties ------------------------------------------------------------------------

starts = st.datetimes(
    min_value=datetime(2025, 12, 1), max_value=datetime(2027, 2, 1), timezones=st.just(CHINA_TZ)
)
units = st.sampled_from(list(WorkingTimeUnit))
amounts = st.integers(min_value=0, max_value=40 * 60).map(lambda minutes: minutes / 60)


@settings(max_examples=300, deadline=None)
@given(start=starts, amount=amounts, unit=units)
def test_deadline_is_never_before_start(start: datetime, amount: float, unit: str) -> None:
    assert CAL.add_working_time(start, amount, unit).at >= start


@settings(max_examples=300, deadline=None)
@given(start=starts, a=amounts, b=amounts, unit=units)
def test_deadline_is_monotonic_in_amount(start: datetime, a: float, b: float, unit: str) -> None:
    small, large = sorted((a, b))
    assert (
        CAL.add_working_time(start, small, unit).at <= CAL.add_working_time(start, large, unit).at
    )


@settings(max_examples=300, deadline=None)
@given(start=starts, amount=amounts, unit=units)
def test_elapsed_time_to_the_deadline_is_the_amount(
    start: datetime, amount: float, unit: str
) -> None:
    deadline = CAL.add_working_time(start, amount, unit)
    per_unit = {HOURS: 3600, DAYS: 86400, WorkingTimeUnit.MINUTES: 60}[WorkingTimeUnit(unit)]
    expected = timedelta(seconds=amount * per_unit).total_seconds()
    assert CAL.working_time_between(start, deadline.at, unit) == expected
