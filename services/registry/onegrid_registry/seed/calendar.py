"""The working-day calendar years the `chinese-calendar` package knows (2004-2026 in 1.11.0).

Later years are entered by city IT once the State Council announces them (source `edited`).
"""

from __future__ import annotations

from datetime import date

import chinese_calendar

from onegrid_contracts.registry import CalendarSource, CalendarYear


def calendar_years() -> list[CalendarYear]:
    holidays: dict[int, list[date]] = {}
    workdays: dict[int, list[date]] = {}
    for day in chinese_calendar.holidays:
        holidays.setdefault(day.year, []).append(day)
    for day in chinese_calendar.workdays:
        workdays.setdefault(day.year, []).append(day)
    return [
        CalendarYear(
            year=year,
            holidays=sorted(holidays.get(year, [])),
            workdays=sorted(workdays.get(year, [])),
            source=CalendarSource.SEEDED,
        )
        for year in sorted(holidays.keys() | workdays.keys())
    ]
