"""Human case numbers: <city code>-<yyyymmdd>-<6-digit daily sequence>."""

from __future__ import annotations

import re
from datetime import date

MAX_DAILY_SEQUENCE = 999_999
_CITY_CODE = re.compile(r"^[A-Za-z0-9]{2,12}$")


class SequenceExhaustedError(Exception):
    """More than 999,999 new cases in one day: the number format cannot hold it."""


def format_case_no(city_code: str, day: date, sequence: int) -> str:
    if not _CITY_CODE.fullmatch(city_code):
        raise ValueError(f"city code {city_code!r} must be 2-12 letters or digits")
    if sequence < 1:
        raise ValueError("the daily sequence starts at 1")
    if sequence > MAX_DAILY_SEQUENCE:
        raise SequenceExhaustedError(f"daily sequence {sequence} exceeds {MAX_DAILY_SEQUENCE}")
    return f"{city_code}-{day:%Y%m%d}-{sequence:06d}"
